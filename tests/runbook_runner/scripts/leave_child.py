"""Start a child that sleeps, print its process id, and exit at once, leaving the child behind."""

import subprocess
import sys

if __name__ == "__main__":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    sys.stdout.write(f"{child.pid}\n")
