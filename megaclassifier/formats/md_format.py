"""Facts of the MegaDetector results format that its readers and converters share: the format
version this toolkit writes, and what a number in a box or a confidence must be.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

#: format_version written by this package when it has to choose one.
CURRENT_FORMAT_VERSION = "1.6"


def is_finite_number(value: Any) -> TypeGuard[float]:
    """A JSON number that is finite as a float (an integer of 400 digits is not: it has no float)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
