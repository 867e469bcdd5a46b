"""Print a line on each stream, then exit with the status given as the first argument."""

import sys

if __name__ == "__main__":
    print("doing the work")
    print(f"failing with status {sys.argv[1]}", file=sys.stderr)
    sys.exit(int(sys.argv[1]))
