"""Atomic output: write to a temporary file beside the destination, then rename.

A crash or an error never leaves a file that looks complete::

    with atomic_output(Path("out.csv.gz"), "wt") as f:
        f.write("path,deer\\n")

Files get the mode a plain ``open`` would give them (``0666`` less the umask).
An operating-system error while writing a whole output (read-only folder, full
disk, a path under a regular file) becomes an
:class:`~megaclassifier.errors.OutputFileError` naming the file and the cause.
JSON is written strictly: NaN and Infinity are refused.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import io
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from megaclassifier import platform
from megaclassifier.errors import OutputFileError
from megaclassifier.formats.outputs import describe_os_error, os_error_cause

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:  # elsewhere: set and restore it (briefly process-wide)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def apply_umask(fd: int) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) the mode a plain ``open`` would give it."""
    platform.give_open_mode(fd, current_umask())


#: errors of a write(2) or close(2), which carry no file name
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _writing_error(error: OSError, tmp: Path, dest: Path) -> bool:
    """Whether an OSError raised inside an atomic block comes from writing the output (not from reading)."""
    if error.filename is None:
        return error.errno in _WRITE_ERRNOS
    return error.filename in (str(tmp), str(dest))


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    Parent folders are created. On any exception the temporary file is removed
    and ``path`` is left as it was.

    Raises:
        OutputFileError: the folder cannot be created or written, or writing
            failed (a full disk), naming ``path`` and the cause.
    """
    dest = Path(path)
    tmp = _new_temp(dest)
    try:
        yield tmp
        os.replace(tmp, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if _writing_error(e, tmp, dest):
            raise OutputFileError(dest, f"cannot write ({describe_os_error(e)})") from None
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "w", *, gzip_level: int = 6) -> Iterator[IO[Any]]:
    """Open a temporary file for writing and rename it to ``path`` when the block ends.

    A ``.gz`` suffix writes gzip. Text modes use UTF-8 and ``\\n`` line endings.
    """
    with atomic_path(path) as tmp:
        binary = "b" in mode
        gz = str(path).endswith(".gz")
        raw = cast(IO[bytes], gzip.open(tmp, "wb", compresslevel=gzip_level) if gz else open(tmp, "wb"))  # noqa: SIM115
        try:
            if binary:
                yield raw
            else:
                # a file name that is not UTF-8 is written as the bytes the file system holds (formats/naming.py)
                text = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="\n")
                try:
                    yield text
                finally:
                    text.flush()
                    text.detach()
        finally:
            raw.close()


def make_folders_below(root: str | Path, folder: str | Path) -> None:
    """Create ``folder`` (inside ``root``) and its parents, refusing symbolic links below ``root``.

    ``root`` (created if missing) may itself be a link; no folder between it and ``folder`` may be.

    Raises:
        OSError: ``ELOOP`` naming the link, or the error of ``mkdir``.
    """
    current = Path(root)
    current.mkdir(parents=True, exist_ok=True)
    for part in Path(folder).relative_to(root).parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(current)
        if os.path.islink(current):
            raise OSError(errno.ELOOP, "is a symbolic link; crops are never written through one", str(current))


def write_bytes_atomic(path: str | Path, data: bytes, *, root: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename.

    Without ``root`` the parent folder must exist. With ``root`` (a folder
    above ``path``) the folders in between are created, and none of them may be
    a symbolic link (see :func:`make_folders_below`). A symbolic link at
    ``path`` itself is replaced, never written through; the temporary file is
    never opened through a link. Cheaper than :func:`atomic_path` (no
    ``mkstemp``): the temporary name is unique per process and thread, which is
    all that concurrent writers of distinct files need.

    Raises:
        OSError: as raised; callers that write one image's file record it as
            that image's failure.
    """
    dest = Path(path)
    if root is not None:
        make_folders_below(root, dest.parent)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        with open(os.open(tmp, flags, 0o666), "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json_atomic(path: str | Path, obj: Any, *, indent: int | None = 1, ensure_ascii: bool = True) -> None:
    """Write ``obj`` as JSON (indent 1, ASCII-escaped, key order kept) atomically.

    Raises:
        OutputFileError: ``obj`` holds NaN or Infinity (invalid JSON; nothing is
            written), or the file cannot be written.
    """
    try:
        with atomic_output(path, "w") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=ensure_ascii, allow_nan=False)
    except ValueError as e:
        raise OutputFileError(path, f"not written: {e} (NaN or Infinity is not valid JSON)") from None


def write_json_unique(folder: str | Path, stem: str, obj: Any, *, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to a new file ``folder/stem.json`` that no other writer gets.

    The name is created exclusively; when it exists (a run started in the same
    second), ``stem_1.json``, ``stem_2.json`` ... are tried. The file appears
    complete or not at all.

    Returns:
        The path written.

    Raises:
        OutputFileError: the folder cannot be written, or ``obj`` holds NaN or Infinity.
    """
    first = Path(folder, f"{stem}.json")
    try:
        text = json.dumps(obj, indent=indent, ensure_ascii=True, allow_nan=False)
    except ValueError as e:
        raise OutputFileError(first, f"not written: {e} (NaN or Infinity is not valid JSON)") from None
    tmp = _new_temp(first)
    try:
        tmp.write_text(text, encoding="utf-8")
        for n in range(10_000):
            dest = first if n == 0 else Path(folder, f"{stem}_{n}.json")
            if _link_exclusive(tmp, dest):
                return dest
        raise OutputFileError(first, "10,000 files of that name exist already")
    except OSError as e:
        raise OutputFileError(first, f"cannot write ({describe_os_error(e)})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _new_temp(dest: Path) -> Path:
    """Create an empty temporary file beside ``dest`` (folders made), with the umask's mode."""
    parent = dest.parent if str(dest.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise OutputFileError(dest, f"cannot write in {parent} ({os_error_cause(e)})") from None
    try:
        apply_umask(fd)
    finally:
        os.close(fd)
    return Path(tmp_name)


def _link_exclusive(tmp: Path, dest: Path) -> bool:
    """Give ``tmp``'s content the name ``dest`` unless ``dest`` exists; whether it did."""
    try:
        os.link(tmp, dest)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here: reserve the name, then rename over the reservation
        try:
            os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            return False
        os.replace(tmp, dest)
        return True
