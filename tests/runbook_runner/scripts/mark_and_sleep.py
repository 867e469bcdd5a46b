"""Append one line to the marker file (one per execution), then sleep the given seconds."""

import os
import sys
import time

if __name__ == "__main__":
    with open(sys.argv[1], "a") as marker:
        marker.write(f"started {os.getpid()}\n")
    time.sleep(float(sys.argv[2]))
    sys.stdout.write("woke up\n")
