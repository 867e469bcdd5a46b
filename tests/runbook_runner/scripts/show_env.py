"""Print this script's environment as one JSON object, so a test sees exactly what it inherited."""

import json
import os

if __name__ == "__main__":
    print(json.dumps(dict(os.environ)))
