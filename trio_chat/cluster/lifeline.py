"""What ``--workers`` starts ends with it, even when it is killed with SIGKILL.

A supervisor that is killed cannot clean up, so nothing here relies on it:

* Each child it starts (the nodes, the private redis-server) asks the kernel,
  between fork and exec, for SIGKILL when its parent dies (Linux's
  ``PR_SET_PDEATHSIG``). The kernel sends it when the *thread* that forked the
  child ends, so children are started only from the main thread, and before
  any other thread exists: code run between fork and exec must not meet a lock
  another thread held (``subprocess``'s warning about ``preexec_fn``).
* The private redis-server's temporary directory is removed by a keeper: a
  shell in a session of its own that waits for the end of a pipe whose write
  end only the supervisor holds. However the supervisor ends, the kernel then
  closes that end, the keeper sees EOF, removes the directory and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Waits for EOF on stdin (nobody ever writes), then removes "$1".
KEEPER_SCRIPT = 'read -r _; rm -rf -- "$1"'


def die_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child die when this process does (None
    where the kernel offers no such thing: the children then outlive a
    supervisor killed with SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    assert threading.current_thread() is threading.main_thread()
    assert threading.active_count() == 1, "children are started before any thread"
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def in_child() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the request was made

    return in_child


class DirectoryKeeper:
    """Removes ``directory`` once this process has ended, however it ends."""

    def __init__(self, directory: Path) -> None:
        reading, self._writing = os.pipe()  # neither end is inherited by others
        try:
            self.process = subprocess.Popen(
                ["sh", "-c", KEEPER_SCRIPT, "trio-chat-keeper", str(directory)],
                stdin=reading,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Out of the terminal's reach: Ctrl-C there must not end it early.
                start_new_session=True,
            )
        except OSError:
            os.close(self._writing)
            raise
        finally:
            os.close(reading)

    def release(self) -> None:
        """Let the keeper remove the directory now and end."""
        if self._writing >= 0:
            os.close(self._writing)
            self._writing = -1
            self.process.wait()
