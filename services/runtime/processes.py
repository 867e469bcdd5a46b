"""Child processes that must not outlive the process that started them."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this (child) process when its parent dies; a no-op elsewhere.

    Meant as ``preexec_fn`` of ``subprocess.Popen``: a crashed or killed parent then leaves no
    orphaned broker or service behind holding ports.
    """
    if not sys.platform.startswith("linux"):
        return
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return
    libc = ctypes.CDLL(libc_name, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
