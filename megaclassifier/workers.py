"""Worker processes that die with their parent.

``run``'s decoding workers and ``classify``'s crop-reading workers call
:func:`worker_setup` first thing. Afterwards:

- when the parent dies, even by ``kill -9``, the worker dies too: on Linux the
  kernel sends it ``SIGKILL`` (``prctl(PR_SET_PDEATHSIG)``); elsewhere (Windows,
  or ``MEGACLASSIFIER_PORTABLE=1``) a daemon thread waits on the parent's
  sentinel, which breaks when the parent dies
  (:func:`megaclassifier.platform.die_with_parent`). With the workers gone,
  multiprocessing's resource tracker reads the end of its pipe and exits too;
- Ctrl-C (``SIGINT``, sent by a terminal to the whole process group) is ignored:
  the parent alone handles it and shuts its pool down, so no worker prints a
  traceback; the parent starts them with Ctrl-C held back (:func:`sigint_held`,
  :class:`QuietStartPool`), so that not even a worker still starting up sees
  it. ``SIGTERM`` simply ends a worker (a forked one does not inherit the CLI's
  handler, which unwinds the parent). A worker's helper thread that loses its
  connection to the stopping parent (multiprocessing's file-descriptor sharer)
  ends without a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from megaclassifier import platform

R = TypeVar("R")


def worker_setup(parent: int, *_: Any) -> None:
    """Make this worker process die with its parent and leave Ctrl-C to the parent.

    Args:
        parent: the parent's process id, as the parent saw it (``os.getpid()`` there).
            Further arguments are ignored, so a ``functools.partial`` of it can be a
            DataLoader's ``worker_init_fn``.
    """
    with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked worker inherits the CLI's handler: drop it
    sys.excepthook = _quiet_hangup
    platform.die_with_parent(parent)


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Hold Ctrl-C back while worker processes are started, so that they never see it.

    SIGINT is blocked in this thread (``pthread_sigmask``, POSIX): a process started
    meanwhile inherits the blocked signal across ``fork`` and ``exec`` and keeps
    it blocked (then :func:`worker_setup` ignores it too), which closes the gap
    before it can set itself up. Another thread may still receive a Ctrl-C that
    comes meanwhile: it is noted, not raised, and raised (as the previous
    handler does it, a KeyboardInterrupt) once the workers are started. Outside
    the main thread nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        with platform.sigint_blocked():  # a pending Ctrl-C arrives when it ends ...
            yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):  # ... or was noted: hand it on
        previous(signal.SIGINT, None)


class QuietStartPool(ProcessPoolExecutor):
    """A process pool whose workers (and resource tracker) start with Ctrl-C held back (:func:`sigint_held`).

    Python starts the workers as tasks are submitted, so :meth:`submit` is covered too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with sigint_held():
            super().__init__(*args, **kwargs)

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        with sigint_held():
            return super().submit(fn, *args, **kwargs)


def _quiet_hangup(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook`` of a worker: a lost connection to the stopping parent ends quietly.

    multiprocessing's file-descriptor sharer (which torch uses to hand batches
    over) reports errors of its helper thread here.
    """
    if isinstance(value, (ConnectionError, EOFError)):
        return
    sys.__excepthook__(kind, value, tb)
