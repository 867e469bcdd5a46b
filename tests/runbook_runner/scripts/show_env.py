"""Print this script's environment as one JSON object, so a test sees exactly what it inherited."""

import json
import os
import sys

if __name__ == "__main__":
    sys.stdout.write(json.dumps(dict(os.environ)) + "\n")
