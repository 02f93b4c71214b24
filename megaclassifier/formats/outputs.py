"""Checks, before any work, that the outputs can be written (a folder that takes a new file).

Every command checks its outputs here first, so a read-only folder or a full disk stops it
at once with the file's name, not after an hour of classifying.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from megaclassifier.errors import OutputFileError


def describe_os_error(error: OSError) -> str:
    """The cause of an OS error in words, as ``strerror`` gives it (``No space left on device``)."""
    return error.strerror or str(error)


def check_writable(path: str | Path) -> None:
    """Check, before any work, that the file ``path`` can be written.

    Its folder must exist or be creatable, be a folder, and take a new file (a
    real file is created and removed, so a read-only mount or a full disk shows
    up too; folders made for the check are removed again). ``path`` itself must
    not be a folder.

    Raises:
        OutputFileError: naming ``path`` and the cause.
    """
    dest = Path(path)
    if dest.is_dir():
        raise OutputFileError(dest, "is a folder; give a file name")
    folder = dest.parent if str(dest.parent) else Path(".")
    try:
        _probe(folder, f".{dest.name}.")
    except OSError as e:
        raise OutputFileError(dest, f"cannot write in {folder} ({os_error_cause(e)})") from None


def check_writable_folder(folder: str | Path) -> None:
    """Check, before any work, that files can be created in ``folder`` (when missing: that it can be made).

    Raises:
        OutputFileError: naming ``folder`` and the cause.
    """
    path = Path(folder)
    try:
        _probe(path, ".megaclassifier.")
    except OSError as e:
        raise OutputFileError(path, f"cannot write in this folder ({os_error_cause(e)})") from None


def _probe(folder: Path, prefix: str) -> None:
    """Create and remove a file in ``folder``; folders made for it are removed again (nothing is left).

    Raises:
        OSError: as raised.
    """
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=prefix, suffix=".check", dir=folder)
        os.close(fd)
        os.unlink(probe)
    finally:
        for made in missing:  # deepest first
            with contextlib.suppress(OSError):
                made.rmdir()


def check_outputs(files: Iterable[str | Path | None] = (), folders: Iterable[str | Path | None] = ()) -> None:
    """:func:`check_writable` on each file and :func:`check_writable_folder` on each folder (None: skipped)."""
    for file in files:
        if file is not None:
            check_writable(file)
    for folder in folders:
        if folder is not None:
            check_writable_folder(folder)


def os_error_cause(error: OSError) -> str:
    """The cause of an OS error on a path, in words (a file where a folder should be, or ``strerror``)."""
    if error.errno == errno.EEXIST or error.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return describe_os_error(error)
