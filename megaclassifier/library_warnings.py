"""Warnings of the libraries we call (Pillow about a corrupt EXIF block, say) as our own log lines.

Python prints a warning with its source file and line, on two lines, and ``-q`` cannot
stop it. :func:`route_warnings` sends each one through the ``megaclassifier.warnings``
logger instead, on one line at INFO level (so ``-q`` hides them), and counts them:
:func:`warning_count`. A spawned worker process that calls it logs nothing (its logging is
not set up), so a worker's warnings are silent.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any, TextIO

logger = logging.getLogger("megaclassifier.warnings")

_lock = threading.Lock()
_count = 0


def route_warnings() -> None:
    """Send every warning through :data:`logger`, one line each, and count it (from zero: one command)."""
    global _count
    with _lock:
        _count = 0
    warnings.showwarning = _log_warning


def warning_count() -> int:
    """How many warnings were routed since :func:`route_warnings` was last called."""
    return _count


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
    **_: Any,
) -> None:
    global _count
    with _lock:
        _count += 1
    text = " ".join(str(message).split()) or category.__name__
    logger.info("warning (%s): %s", category.__name__, text)
