"""One writer per output: an exclusive lock beside it, for ``run`` and ``classify``.

Beside ``OUTPUT``, while a command writes it::

    OUTPUT.lock       the lock file, held with the operating system's lock (``filelock``: fcntl on
                      Linux and macOS, msvcrt on Windows), so a killed process's lock goes with it
    OUTPUT.lock.pid   the holder's PID and host, one line: ``12345 myhost``

A second process on the same output does not wait: it stops at once with one line
naming the first's PID (:class:`~megaclassifier.errors.OutputLockedError`, exit 1),
before it touches the journal or the temporary files. A lock left by a killed process
is no longer held (the system dropped it with the process), so the next command takes it
over and writes its own PID; the PID file only names the holder. Both files are
removed when the command ends, however it ends (``kill -9`` aside: then the next
command takes them over).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from megaclassifier.errors import OutputLockedError

if TYPE_CHECKING:
    from filelock import BaseFileLock

LOCK_SUFFIX = ".lock"
PID_SUFFIX = ".lock.pid"
#: How long a refused process looks for the holder's PID file (the holder writes it just after locking).
PID_WAIT_SECONDS = 1.0


def lock_path(output: str | Path) -> Path:
    """``OUTPUT.lock``."""
    return Path(f"{output}{LOCK_SUFFIX}")


def pid_path(output: str | Path) -> Path:
    """``OUTPUT.lock.pid``."""
    return Path(f"{output}{PID_SUFFIX}")


@contextlib.contextmanager
def output_locks(outputs: Iterable[str | Path | None]) -> Iterator[None]:
    """Hold the lock of each output (None: skipped) for the block, in the order given (the main output first).

    Locks are tried, never waited for, so two commands cannot deadlock whatever their order.

    Raises:
        OutputLockedError: another process holds one (the first such is named); the locks taken are let go.
    """
    unique = {str(Path(output).absolute()): Path(output) for output in outputs if output is not None}
    with contextlib.ExitStack() as stack:
        for output in unique.values():
            stack.enter_context(output_lock(output))
        yield


@contextlib.contextmanager
def output_lock(output: str | Path) -> Iterator[None]:
    """Hold ``output``'s lock for the block; both lock files are removed after.

    Raises:
        OutputLockedError: another process holds it.
    """
    from filelock import FileLock, Timeout

    output = Path(output)
    folder = output.parent
    made = [p for p in [folder, *folder.parents] if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(output), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        raise OutputLockedError(f"{output}: {_holder(output)} is writing it; wait for it to end, or stop it") from None
    try:
        _write_pid(output)
        yield
    finally:
        _release(lock, output)
        for path in made:  # folders made for the lock, left empty (deepest first)
            with contextlib.suppress(OSError):
                path.rmdir()


def _release(lock: BaseFileLock, output: Path) -> None:
    try:
        with contextlib.suppress(OSError):
            pid_path(output).unlink()
        if sys.platform != "win32":  # removed while held, so a process that opened it retries (filelock does)
            with contextlib.suppress(OSError):
                lock_path(output).unlink()
    finally:
        lock.release()  # on Windows filelock removes the file as it lets go


def _write_pid(output: Path) -> None:
    path = pid_path(output)
    tmp = path.with_name(f"{path.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {socket.gethostname()}\n", encoding="utf-8")
    os.replace(tmp, path)


def _holder(output: Path) -> str:
    """Who holds the lock, in words: ``another process (PID 123)``, with its host when it is another."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while True:
        pid, host = _read_pid(output)
        here = host in (None, socket.gethostname())
        if pid is not None and (not here or pid_alive(pid)):
            return f"another process (PID {pid}{'' if here else f' on {host}'})"
        if time.monotonic() >= deadline:  # the holder has not written its PID yet, or it was replaced
            return "another process" + (f" (PID {pid}?)" if pid is not None else "")
        time.sleep(0.05)


def _read_pid(output: Path) -> tuple[int | None, str | None]:
    try:
        words = pid_path(output).read_text(encoding="utf-8").split()
        return int(words[0]), (words[1] if len(words) > 1 else None)
    except (OSError, ValueError, IndexError):
        return None, None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (Linux, macOS and Windows)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - Windows
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: a check only
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - Windows
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
