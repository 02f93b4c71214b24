"""Every call that only POSIX (or only Linux) has, each with the portable way that works on Windows too.

The fast path is taken where the system has it; ``MEGACLASSIFIER_PORTABLE=1`` in
the environment forces the portable one everywhere, so that the tests exercise
on Linux what Windows runs (``tests/test_portable.py``; see docs/windows.md):

============================  ==========================================  =============================================
what                          fast path (where)                           portable path (Windows, or forced)
============================  ==========================================  =============================================
worker dies with its parent   ``prctl(PR_SET_PDEATHSIG)`` (Linux)         a thread waits on the parent's sentinel, a
                                                                          pipe or process handle that breaks when the
                                                                          parent dies (``multiprocessing``)
``run``'s crops to the        one shared-memory block per image, the      pickled through the worker pool's pipe: a
main process                  worker hands its ownership over and drops   Windows block dies with its creator's last
                              it from the resource tracker (POSIX)        handle, and Windows has no resource tracker
worker start method           ``fork`` for ``classify``'s crop readers    ``spawn`` (``run``'s decoders always spawn)
                              (POSIX default)
Ctrl-C held back while        ``pthread_sigmask`` (POSIX)                 the handler notes a Ctrl-C and hands it on
workers start                                                             afterwards (``workers.sigint_held``)
CPUs this process may use     ``sched_getaffinity`` (Linux)               ``os.cpu_count()``
new files' mode               ``fchmod`` to 0666 less the umask (POSIX)   left as the system makes it
============================  ==========================================  =============================================

Functions read the environment variable when called, so a test may set it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: Set to 1 to take the portable paths on every system.
PORTABLE_ENV = "MEGACLASSIFIER_PORTABLE"

_PR_SET_PDEATHSIG = 1


def portable() -> bool:
    """Whether the portable paths are forced (``MEGACLASSIFIER_PORTABLE=1``)."""
    return os.environ.get(PORTABLE_ENV) == "1"


def is_linux() -> bool:
    """Linux, and the fast paths not forced off."""
    return sys.platform.startswith("linux") and not portable()


def is_posix() -> bool:
    """A POSIX system, and the fast paths not forced off."""
    return os.name == "posix" and not portable()


def worker_start_method() -> str | None:
    """The start method for worker processes: None (the system's default) or ``spawn`` when portable."""
    return None if is_posix() else "spawn"


def shared_memory_handover() -> bool:
    """Whether ``run``'s workers hand crops over in shared memory (else through the pool's pipe)."""
    return is_posix()


def untrack_shared_memory(name: str) -> None:
    """Drop a block the worker made from its resource tracker: the main process owns it now (POSIX only)."""
    from multiprocessing import resource_tracker

    resource_tracker.unregister(name, "shared_memory")


def die_with_parent(parent: int) -> None:
    """Make this worker process end when its parent does, even by ``kill -9``.

    Linux: the kernel sends SIGKILL (``PR_SET_PDEATHSIG``), and a parent that
    died before it was armed is noticed by its id. Elsewhere (or when portable):
    a daemon thread waits on the sentinel multiprocessing gives a child of its
    parent (the read end of a pipe only the parent holds, or the parent's
    process handle on Windows) and ends the process when it becomes ready.

    Args:
        parent: the parent's process id, as the parent saw it.
    """
    if is_linux() and _parent_death_signal():
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)
        return
    sentinel = _parent_sentinel()
    if sentinel is not None:
        threading.Thread(target=_wait_then_exit, args=(sentinel,), name="parent-watch", daemon=True).start()


@contextlib.contextmanager
def sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread meanwhile, so processes started now inherit it blocked (POSIX only)."""
    if not is_posix() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending Ctrl-C arrives now


def affinity_cpus() -> list[int] | None:
    """The CPUs this process may run on (Linux), or None where the system does not say."""
    if portable():
        return None
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def give_open_mode(fd: int, umask: int) -> None:
    """Give a file made by ``mkstemp`` (0600) the mode a plain ``open`` gives it (POSIX; elsewhere unchanged)."""
    if hasattr(os, "fchmod") and os.name == "posix":
        os.fchmod(fd, 0o666 & ~umask)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; whether that worked."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _parent_sentinel() -> Any:
    parent = multiprocessing.parent_process()
    return None if parent is None else parent.sentinel


def _wait_then_exit(sentinel: Any) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)
