"""Issue 22, item 5: a library's warning (Pillow about a corrupt EXIF block) is one log line, and ``-q`` hides it.

The photo is a real one of ``../shared/testdata`` with its EXIF block replaced by one whose
tag points past the end of the file: Pillow warns "Tag data larger than file" when it reads it.
"""

from __future__ import annotations

import io
import json
import struct
import warnings
from pathlib import Path

import pytest
from helpers import invoke
from PIL import Image

from megaclassifier.library_warnings import warning_count

PILLOW_SAYS = "warning (UserWarning): Tag data larger than file. Skipping tag 270"


def corrupt_exif() -> bytes:
    """A little-endian TIFF block with one ImageDescription tag whose 100 bytes lie past the end."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x010E, 2, 100, 1000) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd


@pytest.fixture
def photo(cameratrap: Path, tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    buf = io.BytesIO()
    with Image.open(cameratrap / "images" / "ocelot.jpg") as image:
        image.save(buf, "JPEG", exif=corrupt_exif())
    (tmp_path / "images" / "ocelot.jpg").write_bytes(buf.getvalue())
    md = {
        "info": {"detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal"},
        "images": [
            {"file": "ocelot.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]}
        ],
    }
    (tmp_path / "md.json").write_text(json.dumps(md))
    return tmp_path


@pytest.fixture(autouse=True)
def every_warning_shown():
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # not once per place: each test sees its warning
        yield


def crop(photo: Path, *, quiet: bool) -> list[str]:
    result = invoke(
        "crop", photo / "md.json", photo / "crops", "--images-dir", photo / "images", "--logdir", photo, quiet=quiet
    )
    assert result.exit_code == 0, result.output
    (log,) = photo.glob("crop_detections_log_*.json")
    assert result.output.replace("\r", "\n").splitlines()[-1 if quiet else -2] == (
        f"1 crops written, 0 existed, 0 images failed: see {log}"
    )
    return result.output.replace("\r", "\n").splitlines()


def test_pillow_really_warns(photo: Path) -> None:
    with (
        pytest.warns(UserWarning, match="Tag data larger than file"),
        Image.open(photo / "images" / "ocelot.jpg") as im,
    ):
        im.getexif()


def test_quiet_crop_prints_only_its_summary(photo: Path) -> None:
    before = warning_count()
    lines = crop(photo, quiet=True)
    assert len(lines) == 1  # no warning, no source file and line number
    assert warning_count() > before  # counted all the same


def test_crop_shows_the_warning_on_one_line_and_counts_it(photo: Path) -> None:
    lines = crop(photo, quiet=False)
    assert [line.split("]")[-1] for line in lines if PILLOW_SAYS in line] == [PILLOW_SAYS]  # after a progress bar
    assert lines[-1].endswith("warnings from libraries")
    assert not any(".py" in line for line in lines)  # no source file


def test_quiet_export_reads_exif_times_silently(photo: Path) -> None:
    data = json.loads((photo / "md.json").read_text())
    data["images"][0]["detections"][0]["classifications"] = [["0", 0.9]]
    data["classification_categories"] = {"0": "ocelot"}
    (photo / "results.json").write_text(json.dumps(data))
    result = invoke("export", photo / "results.json", photo / "x.csv", "-f", "csv", "--images-dir", photo / "images")
    assert result.exit_code == 0, result.output
    assert (
        result.output
        == f"Wrote 1 detections of 1 images (0 with EXIF time) to {photo / 'x.csv'}, {photo / 'x_images.csv'}\n"
    )
