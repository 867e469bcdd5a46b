"""A verification: print what it checked, then exit with the status given as the first argument."""

import sys

if __name__ == "__main__":
    sys.stdout.write(f"checked: exiting {sys.argv[1]}\n")
    sys.exit(int(sys.argv[1]))
