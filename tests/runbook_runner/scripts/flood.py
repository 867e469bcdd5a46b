"""Write the given number of bytes to stdout and to stderr (a runbook that floods its output)."""

import sys


def flood(size: int) -> None:
    block = b"x" * 65536
    for stream in (sys.stdout.buffer, sys.stderr.buffer):
        stream.write(b"first line\n")
        left = size
        while left > 0:
            stream.write(block[: min(left, len(block))])
            left -= len(block)
        stream.write(b"\nlast line\n")
        stream.flush()


if __name__ == "__main__":
    flood(int(sys.argv[1]))
