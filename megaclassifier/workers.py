"""Worker processes that die with their parent.

``run``'s decoding workers and ``classify``'s crop-reading workers call
:func:`worker_setup` first thing. Afterwards:

- when the parent dies, even by ``kill -9``, the worker dies too: on Linux the
  kernel sends it ``SIGKILL`` (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon
  thread polls :func:`os.getppid` every :data:`POLL_SECONDS` and exits when the
  parent is gone. With the workers gone, multiprocessing's resource tracker
  reads the end of its pipe and exits too;
- Ctrl-C (``SIGINT``, sent by a terminal to the whole process group) is ignored:
  the parent alone handles it and shuts its pool down, so no worker prints a
  traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Any

#: How often the portable fallback checks that the parent is alive.
POLL_SECONDS = 1.0

_PR_SET_PDEATHSIG = 1


def worker_setup(parent: int, *_: Any) -> None:
    """Make this worker process die with its parent and leave Ctrl-C to the parent.

    Args:
        parent: the parent's process id, as the parent saw it (``os.getpid()`` there).
            Further arguments are ignored, so a ``functools.partial`` of it can be a
            DataLoader's ``worker_init_fn``.
    """
    with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; whether that worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    os._exit(1)
