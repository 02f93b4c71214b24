"""Shared fixtures.

Tests that read the real camera-trap images in ``../shared/testdata`` use the
``testdata`` fixture: it skips with a reason where that folder is absent, and
fails instead when ``MEGACLASSIFIER_REQUIRE_TESTDATA=1`` (as ``.ci/run`` sets).
``MEGACLASSIFIER_TESTDATA`` points at another copy.

The engine, classify, features, run and chain tests use ``photos`` instead:
the real ``cameratrap`` set where it is, else the downscaled copies bundled in
``demo/data`` (a fresh clone), so that a contributor runs them too. They derive
their expected counts from the set's ``detections.json``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class PhotoSet:
    """A folder of camera-trap photos with their MegaDetector results: ``detections.json`` and ``images/``."""

    name: str
    root: Path

    @property
    def detections(self) -> Path:
        return self.root / "detections.json"

    @property
    def images(self) -> Path:
        return self.root / "images"

    def animal_boxes(self, threshold: float = 0.15) -> list[tuple[str, int]]:
        """``(file, detection index)`` of each animal box with conf >= threshold, in the file's order."""
        data = json.loads(self.detections.read_text(encoding="utf-8"))
        animal = {k for k, v in data["detection_categories"].items() if v == "animal"}
        return [
            (image["file"], i)
            for image in data["images"]
            for i, det in enumerate(image.get("detections") or [])
            if det["category"] in animal and det["conf"] >= threshold
        ]


@pytest.fixture(scope="session")
def photos() -> PhotoSet:
    """The real ``cameratrap`` images, else (no ``../shared/testdata``) the bundled demo copies.

    With ``MEGACLASSIFIER_REQUIRE_TESTDATA=1`` the real images are mandatory.
    """
    if (TESTDATA / "cameratrap" / "detections.json").is_file():
        return PhotoSet("cameratrap", TESTDATA / "cameratrap")
    if REQUIRE_TESTDATA:
        pytest.fail(f"real test images not found at {TESTDATA}; MEGACLASSIFIER_REQUIRE_TESTDATA=1 makes them mandatory")
    return PhotoSet("demo", DEMO_DATA)
