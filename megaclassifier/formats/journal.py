"""The resume journal of ``classify`` and ``run``: an append-only file beside the output.

``OUTPUT.journal`` is JSON Lines. The first line is a header holding the
run's *fingerprint*: what the output depends on (the model's SHA-256, the
input size, the input files' size and modification time, the options)::

    {"journal": 1, "fingerprint": {"model_sha256": "...", "image_size": 300, ...}}

Each further line is one record of finished work, as the command defines it
(``classify``: CSV rows as written; ``run``: an image's classifications). Records
are buffered and written out every :data:`FLUSH_SECONDS` or
:data:`FLUSH_RECORDS` records, whichever comes first, and when the command ends
in any way (Ctrl-C, SIGTERM, an error). A process killed with ``kill -9`` loses
at most the records of those last seconds, and perhaps leaves half a line, which
the next run ignores and cuts off.

The next run with the same fingerprint reads the records back and does only the
rest; a different fingerprint (or ``--restart``) discards the journal and says
why in one log line. The journal is removed when the output is complete.
Temporary files of the output left by a killed run (``.OUTPUT.*.tmp``) are
removed when the journal is opened.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from megaclassifier.errors import NothingWorkedError

logger = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal"
JOURNAL_VERSION = 1
#: Write buffered records at least this often (seconds) ...
FLUSH_SECONDS = 2.0
#: ... or once this many records are waiting.
FLUSH_RECORDS = 64

#: What the output depends on; compared key by key.
Fingerprint = dict[str, Any]


def journal_path(output: str | Path) -> Path:
    """The journal of ``output``: ``OUTPUT.journal`` beside it."""
    return Path(f"{output}{JOURNAL_SUFFIX}")


def file_stamp(path: str | Path | None) -> list[Any] | None:
    """A cheap stand-in for a file's content: its absolute path, size and modification time (None: no file)."""
    if path is None:
        return None
    stat = os.stat(path)
    return [str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns]


def remove_stale_temporaries(output: str | Path) -> int:
    """Remove the temporary files (``.OUTPUT.*.tmp``) a killed run left beside ``output``; how many."""
    dest = Path(output)
    folder = dest.parent if str(dest.parent) else Path(".")
    removed = 0
    with contextlib.suppress(OSError):
        for stale in folder.glob(f".{_glob_escape(dest.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed += 1
    if removed:
        logger.info("%s: removed %d temporary file(s) left by an interrupted run", output, removed)
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


class Journal:
    """An open journal: the records of an earlier run with the same fingerprint, and a place to add more.

    Use :func:`open_journal`. As a context manager it writes out what is buffered
    when the block ends, however it ends (it removes the file when every image
    failed: :class:`~megaclassifier.errors.NothingWorkedError`); :meth:`finish`
    removes the file after success.

    Attributes:
        path: the journal file.
        records: the earlier run's records, in order (empty when starting afresh).
    """

    def __init__(self, path: Path, records: list[Any], file: IO[str]) -> None:
        self.path = path
        self.records = records
        self._file = file
        self._buffer: list[str] = []
        self._last_flush = time.monotonic()

    def append(self, record: Any) -> None:
        """Add one record; written out when :data:`FLUSH_SECONDS` have passed or :data:`FLUSH_RECORDS` wait."""
        self._buffer.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
        if len(self._buffer) >= FLUSH_RECORDS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records to the file (the operating system keeps them if this process is killed)."""
        if self._buffer and not self._file.closed:
            self._file.write("".join(f"{line}\n" for line in self._buffer))
            self._file.flush()
        self._buffer.clear()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Write out what is buffered and close the file (it stays for the next run)."""
        with contextlib.suppress(OSError):
            self.flush()
        self._file.close()

    def finish(self) -> None:
        """The output is complete: close and remove the journal."""
        self._buffer.clear()
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, NothingWorkedError):  # every image failed: nothing to resume from
            self.finish()
        elif not self._file.closed:
            self.close()


def open_journal(output: str | Path, fingerprint: Fingerprint, *, restart: bool = False) -> Journal:
    """Open ``output``'s journal: resume from it when its fingerprint matches, else start afresh.

    Stale temporary files of ``output`` are removed first. One log line says what
    happened (resuming, or why the journal was discarded).

    Args:
        output: the command's output file.
        fingerprint: what the output depends on (JSON-serialisable).
        restart: ignore (and discard) an existing journal.
    """
    path = journal_path(output)
    remove_stale_temporaries(output)
    fingerprint = json.loads(json.dumps(fingerprint, default=str))  # as it reads back
    records = _previous_records(path, fingerprint, restart=restart)
    if records is None:
        records = []
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"journal": JOURNAL_VERSION, "fingerprint": fingerprint}) + "\n")
    return Journal(path, records, open(path, "a", encoding="utf-8"))  # noqa: SIM115 - Journal closes it


def _previous_records(path: Path, fingerprint: Fingerprint, *, restart: bool) -> list[Any] | None:
    """The records of a journal made with ``fingerprint`` (its torn last line cut off), else None."""
    if not path.exists():
        return None
    if restart:
        logger.info("%s: --restart: ignoring the journal of an earlier run; starting afresh", path)
        return None
    lines = _complete_lines(path)
    reason = _mismatch(lines[0] if lines else None, fingerprint)
    if reason is not None:
        logger.info("%s: %s; starting afresh", path, reason)
        return None
    records = list(_parsed(lines[1:]))
    logger.info("%s: resuming an interrupted run (%d records done)", path, len(records))
    return records


def _complete_lines(path: Path) -> list[str]:
    """The journal's complete lines; a torn last line (the process was killed mid-write) is cut off the file."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return data[:end].decode("utf-8", errors="replace").splitlines()


def _parsed(lines: list[str]) -> Iterator[Any]:
    """The records of lines up to the first that is not JSON (a damaged journal keeps what came before)."""
    for line in lines:
        try:
            yield json.loads(line)
        except (ValueError, RecursionError):
            return


def _mismatch(header_line: str | None, fingerprint: Fingerprint) -> str | None:
    """Why a journal's header does not fit this run, or None when it does."""
    try:
        header = json.loads(header_line) if header_line else None
    except (ValueError, RecursionError):
        header = None
    if not isinstance(header, dict) or header.get("journal") != JOURNAL_VERSION:
        return "not a journal this version can read"
    old = header.get("fingerprint")
    if not isinstance(old, dict):
        return "not a journal this version can read"
    for key in [*fingerprint, *(key for key in old if key not in fingerprint)]:  # the first that differs
        if old.get(key) != fingerprint.get(key):
            return f"{key.replace('_', ' ')} changed since the interrupted run"
    return None
