"""Print this script's arguments as one JSON list, so a test sees exactly what it received."""

import json
import sys

if __name__ == "__main__":
    sys.stdout.write(json.dumps(sys.argv[1:]) + "\n")
