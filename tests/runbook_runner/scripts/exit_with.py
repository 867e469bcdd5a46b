"""Print a line on each stream, then exit with the status given as the first argument."""

import sys

if __name__ == "__main__":
    sys.stdout.write("doing the work\n")
    sys.stdout.flush()
    sys.stderr.write(f"failing with status {sys.argv[1]}\n")
    sys.exit(int(sys.argv[1]))
