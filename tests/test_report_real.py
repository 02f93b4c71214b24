"""``report`` on the full-size photos of ../shared/testdata: every thumbnail shows its box.

Each thumbnail is compared with the file ``crop --square-crops`` writes for the
same detection, downscaled to the thumbnail's size: the mean absolute
difference of their RGB values must stay under :data:`MAX_MEAN_DIFF` (the
thumbnail's own JPEG encoding of a noisy 160-pixel scene differs by up to 6; a
wrong region, or the black of a box cut outside a shrunk image, by 39 and more:
the report before thumbnail recipe 2 failed 45 of these 85).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from megaclassifier.crop import crop_detections
from megaclassifier.crop.geometry import crop_box, extract_crop
from megaclassifier.formats.naming import crop_filename
from megaclassifier.formats.results_table import read_results_table
from megaclassifier.report import write_report
from megaclassifier.report.thumbs import THUMB_SIZE, thumb_name

pytestmark = pytest.mark.testdata

#: Largest mean absolute RGB difference between a thumbnail and its crop, downscaled.
MAX_MEAN_DIFF = 10.0
THRESHOLD = 0.01


def mean_diff(thumbnail: Image.Image, crop: Image.Image) -> float:
    """Mean absolute RGB difference of a thumbnail and a crop resized to the thumbnail's size."""
    reference = crop.convert("RGB")
    reference.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    assert reference.size == thumbnail.size
    return float(np.abs(np.asarray(thumbnail.convert("RGB"), float) - np.asarray(reference, float)).mean())


def reference_crop(images: Path, file: str, bbox: tuple[float, float, float, float]) -> Image.Image:
    """The square crop of a box, cut here from the EXIF-rotated full-size photo (no report code)."""
    with Image.open(images / file) as im:
        im.load()
        view = ImageOps.exif_transpose(im).convert("RGB")
    box = crop_box(bbox, view.width, view.height, square=True)
    assert box is not None
    return extract_crop(view, box)


@pytest.fixture(scope="module")
def real_report(cameratrap: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("real_report")
    crop_detections(cameratrap / "detections.json", out / "crops", images_dir=cameratrap / "images",
                    square_crops=True, threshold=THRESHOLD, threads=2, logdir=out)  # fmt: skip
    write_report(cameratrap / "detections.json", out / "report", images_dir=cameratrap / "images",
                 threshold=THRESHOLD, num_workers=2)  # fmt: skip
    return out / "report", out / "crops"


def test_every_thumbnail_is_the_crop_of_its_box(real_report: tuple[Path, Path], cameratrap: Path) -> None:
    report, crops = real_report
    table = read_results_table(cameratrap / "detections.json", threshold=THRESHOLD)
    detector = table.detector
    compared, diffs = 0, {}
    for row in table.rows:
        with Image.open(report / thumb_name(row)) as thumb:
            thumb.load()
        assert max(thumb.size) <= THUMB_SIZE, thumb.size
        crop_file = crops / crop_filename(row.file, row.index, detector)
        if row.category == "animal":  # crop writes animal boxes only
            with Image.open(crop_file) as crop:
                diffs[(row.file, row.index)] = mean_diff(thumb, crop)
        else:
            diffs[(row.file, row.index)] = mean_diff(thumb, reference_crop(cameratrap / "images", row.file, row.bbox))
        compared += 1
    assert compared == len(table.rows) == 85
    print("top diffs", sorted(diffs.values())[-5:])
    wrong = {key: round(d, 1) for key, d in diffs.items() if d >= MAX_MEAN_DIFF}
    assert wrong == {}, f"{len(wrong)} of {compared} thumbnails differ from their crop: {wrong}"


def test_the_photo_with_15_boxes_has_15_labelled_boxes_on_its_page(real_report: tuple[Path, Path]) -> None:
    import re

    from megaclassifier.report.html import image_page_name

    report, _ = real_report
    html = (report / image_page_name("african_elephants.jpg")).read_text()
    labels = re.findall(r'<div class="box[^"]*" id="d(\d+)" style="[^"]+" data-label="([^"]+)">', html)
    assert [int(i) for i, _ in labels] == list(range(15))
    assert labels[0][1] == "animal 0.94 #0" and labels[14][1] == "animal 0.01 #14"
    assert '<span id="species-list">animal 15</span>' in html
    with Image.open(report / re.search(r'<img id="photo" src="../../([^"]+)"', html).group(1)) as preview:
        assert preview.size == (1024, 768)  # the 2048x1536 photo, halved
