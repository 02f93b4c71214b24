"""Shared fixtures.

Tests that read the real camera-trap images in ``../shared/testdata`` use the
``testdata`` fixture: it skips with a reason where that folder is absent, and
fails instead when ``MEGACLASSIFIER_REQUIRE_TESTDATA=1`` (as ``.ci/run`` sets).
``MEGACLASSIFIER_TESTDATA`` points at another copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["models"]  # test models and crops for classify, features, engines (tests/models.py)

REPO = Path(__file__).resolve().parents[1]
TESTDATA = Path(os.environ.get("MEGACLASSIFIER_TESTDATA", REPO.parent / "shared" / "testdata"))
REQUIRE_TESTDATA = os.environ.get("MEGACLASSIFIER_REQUIRE_TESTDATA") == "1"
DEMO_DATA = REPO / "demo" / "data"


@pytest.fixture(scope="session")
def testdata() -> Path:
    """The shared real test data folder (``cameratrap/``, ``lila31/``)."""
    if not (TESTDATA / "cameratrap" / "detections.json").is_file():
        message = f"real test images not found at {TESTDATA} (set MEGACLASSIFIER_TESTDATA)"
        if REQUIRE_TESTDATA:
            pytest.fail(message + "; MEGACLASSIFIER_REQUIRE_TESTDATA=1 makes them mandatory")
        pytest.skip(message)
    return TESTDATA


@pytest.fixture(scope="session")
def cameratrap(testdata: Path) -> Path:
    """``../shared/testdata/cameratrap``: 14 images, MD v5a results, format 1.4."""
    return testdata / "cameratrap"


@pytest.fixture(scope="session")
def lila31(testdata: Path) -> Path:
    """``../shared/testdata/lila31``: 31 images, MD v5 results, format 1.1."""
    return testdata / "lila31"
