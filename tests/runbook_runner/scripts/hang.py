"""Start a child that sleeps, print both process ids as JSON, then hang (a stuck runbook)."""

import json
import os
import subprocess
import sys
import time

if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    sys.stdout.write(json.dumps({"pid": os.getpid(), "child": child.pid}) + "\n")
    sys.stdout.flush()
    time.sleep(600)
