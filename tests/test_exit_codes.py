"""Issue 22, item 6: the exit codes mean what README says, on the real photos with their blank images.

``3`` ("every image failed") is counted over the images with work to do: those with a box to
crop (an animal at or above ``--threshold``). Blank photos have nothing to fail, so a set of
blank photos plus unreadable photos with animals exits 3, which a script can rely on; a set
with nothing to crop at all is a success with nothing done (0).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import invoke

#: cameratrap's images with an animal box at conf >= 0.15 (the others: blank*, human, vehicle)
WITH_WORK = [
    "african_elephants.jpg", "african_elephants_bw.jpg", "african_elephants_cmyk.jpg",
    "african_elephants_truncated_file.jpg", "african_elephants_with_exif_orientation.jpg",
    "american_black_bear.jpg", "domestic_cattle.jpg", "domestic_dog.jpg", "ocelot.jpg",
]  # fmt: skip
BLANK_OR_NOT_ANIMAL = ["blank.jpg", "blank2.jpg", "blank3.jpg", "human.jpg", "vehicle.jpg"]


@pytest.fixture
def photos_without_animals(cameratrap: Path, tmp_path: Path) -> Path:
    """The blank and non-animal photos are there; the ones with animals are missing."""
    images = tmp_path / "images"
    images.mkdir()
    for name in BLANK_OR_NOT_ANIMAL:
        shutil.copy(cameratrap / "images" / name, images / name)
    return images


def crop(cameratrap: Path, images: Path, tmp_path: Path, md: Path | None = None):  # noqa: ANN201 - a Result
    out = tmp_path / "crops"
    md = md or cameratrap / "detections.json"
    return invoke("crop", md, out, "--images-dir", images, "--threshold", "0.15", "--logdir", tmp_path)


def test_the_photo_set_is_as_described(cameratrap: Path, photos) -> None:  # noqa: ANN001 - a PhotoSet
    if photos.name != "cameratrap":
        pytest.skip("needs ../shared/testdata/cameratrap")
    assert sorted({file for file, _ in photos.animal_boxes(0.15)}) == sorted(WITH_WORK)
    assert sorted(WITH_WORK + BLANK_OR_NOT_ANIMAL) == sorted(p.name for p in (cameratrap / "images").iterdir())


def test_crop_exits_0_when_all_goes_well(cameratrap: Path, tmp_path: Path) -> None:
    result = crop(cameratrap, cameratrap / "images", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("38 crops written, 0 existed, 0 images failed")


def test_crop_exits_3_when_every_image_with_a_box_fails_among_blank_ones(
    cameratrap: Path, photos_without_animals: Path, tmp_path: Path
) -> None:
    result = crop(cameratrap, photos_without_animals, tmp_path)
    assert result.exit_code == 3, result.output
    (log_path,) = tmp_path.glob("crop_detections_log_*.json")
    assert result.output.splitlines()[-1] == (
        f"Error: all 9 images with a box to crop failed (first: african_elephants.jpg: image not found under "
        f"{photos_without_animals}); no crop written; see {log_path}"
    )
    assert json.loads(log_path.read_text())["images_failed_download_or_crop"] == sorted(WITH_WORK)


def test_crop_exits_0_when_one_image_with_a_box_works(
    cameratrap: Path, photos_without_animals: Path, tmp_path: Path
) -> None:
    shutil.copy(cameratrap / "images" / "ocelot.jpg", photos_without_animals / "ocelot.jpg")
    result = crop(cameratrap, photos_without_animals, tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("1 crops written, 0 existed, 8 images failed")


def test_crop_exits_0_on_a_set_with_nothing_to_crop(
    cameratrap: Path, photos_without_animals: Path, tmp_path: Path
) -> None:
    data = json.loads((cameratrap / "detections.json").read_text())
    data["images"] = [image for image in data["images"] if image["file"] in BLANK_OR_NOT_ANIMAL]
    md = tmp_path / "blank.json"
    md.write_text(json.dumps(data))
    shutil.rmtree(photos_without_animals)  # not even the photos: nothing is opened
    photos_without_animals.mkdir()
    result = crop(cameratrap, photos_without_animals, tmp_path, md)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("0 crops written, 0 existed, 0 images failed")


def test_run_exits_3_when_every_image_with_a_box_fails_among_blank_ones(
    cameratrap: Path, photos_without_animals: Path, tmp_path: Path, tiny_model: Path, tiny_categories: Path
) -> None:
    out = tmp_path / "out.json"
    result = invoke(
        "run", cameratrap / "detections.json", tiny_model, "--images-dir", photos_without_animals,
        "--classifier-categories", tiny_categories, "--image-size", "32", "--num-workers", "0",
        "--output-json", out, "--logdir", tmp_path, "--threshold", "0.15",
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    (log_path,) = tmp_path.glob("run_log_*.json")
    assert result.output.splitlines()[-1] == (
        f"Error: all 9 images with a box to crop failed (first: african_elephants.jpg: image not found under "
        f"{photos_without_animals}); nothing classified, {out} not written; see {log_path}"
    )
    assert not out.exists()


def test_exit_1_for_a_bad_file_and_2_for_a_usage_error(cameratrap: Path, tmp_path: Path) -> None:
    bad = tmp_path / "md.json"
    bad.write_text('{"images": 3}')
    result = crop(cameratrap, cameratrap / "images", tmp_path, bad)
    assert (result.exit_code, result.output) == (
        1,
        f'Error: {bad}: no "images" list; is this a MegaDetector output file?\n',
    )
    result = invoke("crop", bad, tmp_path / "crops", "--threshold", "2")
    assert result.exit_code == 2 and "Invalid value for '-t' / '--threshold'" in result.output
