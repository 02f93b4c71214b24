"""``run`` never opens an image that has no box to classify, under every executor.

On the full-size photos of ``../shared/testdata`` (``cameratrap``: 14 images, 5 without an animal
box at conf >= 0.15, 3 without any animal box; ``lila31``: 31 images, 14 without a box at 0.15):

* in this process, a spy on the image decoder (:func:`megaclassifier.images.loading.decode_image`)
  lists the files opened: exactly the images with a box;
* in a worker pool, in shards (and under Ray, in ``test_ray``): the images without a box are deleted
  from a copy of the photos, and no image fails (had one been looked for, it would be a failure);
* the summary line counts both kinds; the output keeps the blank images' entries as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cluster_data import RunInputs, make_inputs, run_args
from conftest import PhotoSet
from helpers import invoke

from megaclassifier.images import loading


@pytest.fixture(scope="module")
def cameratrap_inputs(cameratrap: Path, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> RunInputs:
    return make_inputs(PhotoSet("cameratrap", cameratrap), b0_checkpoint, tmp_path_factory.mktemp("blank_inputs"))


def images_without_boxes(detections: Path, threshold: float) -> list[str]:
    """The images whose animal boxes all fall below ``threshold`` (or that have none)."""
    data = json.loads(detections.read_text(encoding="utf-8"))
    animal = {k for k, v in data["detection_categories"].items() if v == "animal"}
    return sorted(
        image["file"]
        for image in data["images"]
        if not any(d["category"] in animal and d["conf"] >= threshold for d in image["detections"])
    )


def spy_on_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files the image decoder opens from now on, in order."""
    opened: list[str] = []
    real = loading.decode_image

    def spy(source: Any, draft: Any = None) -> Any:
        opened.append(Path(source).name)
        return real(source, draft)

    monkeypatch.setattr(loading, "decode_image", spy)
    return opened


def with_threshold(args: list[object], threshold: float) -> list[object]:
    at = args.index("--threshold")
    return [*args[: at + 1], threshold, *args[at + 2 :]]


@pytest.mark.parametrize(("threshold", "opened_count", "skipped"), [(0.15, 9, 5), (0.0, 11, 3)])
def test_images_without_a_box_are_never_opened(
    cameratrap_inputs: RunInputs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    threshold: float,
    opened_count: int,
    skipped: int,
) -> None:
    inputs = cameratrap_inputs
    blank = images_without_boxes(inputs.detections, threshold)
    assert len(blank) == skipped
    if threshold:
        assert blank == ["blank.jpg", "blank2.jpg", "blank3.jpg", "human.jpg", "vehicle.jpg"]
    opened = spy_on_decoding(monkeypatch)
    result = invoke(*with_threshold(run_args(inputs, tmp_path), threshold))  # --num-workers 0: in this process
    assert result.exit_code == 0, result.output
    everything = sorted(p.name for p in inputs.images.iterdir())
    assert sorted(opened) == [f for f in everything if f not in blank] and len(opened) == opened_count
    assert f", {opened_count} images with boxes ({skipped} without, not opened), 0 images failed: " in result.output
    source = {im["file"]: im for im in json.loads(inputs.detections.read_text(encoding="utf-8"))["images"]}
    merged = {im["file"]: im for im in json.loads((tmp_path / "merged.json").read_text(encoding="utf-8"))["images"]}
    assert sorted(merged) == everything
    for file in blank:  # still there, as they were: no classifications
        assert merged[file] == source[file]
        assert not any("classifications" in d for d in merged[file]["detections"])


def test_lila31_opens_only_its_images_with_boxes(
    lila31: Path, b0_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = make_inputs(PhotoSet("lila31", lila31), b0_checkpoint, tmp_path)
    blank = images_without_boxes(inputs.detections, 0.15)
    opened = spy_on_decoding(monkeypatch)
    result = invoke(*run_args(inputs, tmp_path))
    assert result.exit_code == 0, result.output
    assert len(opened) == 17 and len(blank) == 14 and not set(opened) & {Path(f).name for f in blank}
    assert ", 30 detections merged, 17 images with boxes (14 without, not opened), 0 images failed: " in result.output


def photos_without_blanks(inputs: RunInputs, folder: Path) -> RunInputs:
    """A copy of ``inputs`` whose images folder lacks every image with no box at 0.15."""
    images = Path(shutil.copytree(inputs.images, folder / "images"))
    for file in images_without_boxes(inputs.detections, 0.15):
        (images / file).unlink()
    return RunInputs(inputs.detections, images, inputs.model, inputs.categories, inputs.mapping, inputs.crops)


def test_a_worker_pool_does_not_look_for_them(cameratrap_inputs: RunInputs, tmp_path: Path) -> None:
    inputs = photos_without_blanks(cameratrap_inputs, tmp_path)
    result = invoke(*run_args(inputs, tmp_path, "--num-workers", 1))
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"{inputs.crops} crops classified (")
    assert f", {inputs.crops} detections merged, 9 images with boxes (5 without, not opened), 0 images failed: " in line
    log = json.loads(next(tmp_path.glob("run_log_*.json")).read_text(encoding="utf-8"))
    assert log["failure_reasons"] == {}


def test_shards_do_not_look_for_them(cameratrap_inputs: RunInputs, tmp_path: Path) -> None:
    inputs = photos_without_blanks(cameratrap_inputs, tmp_path)
    counts = []
    for shard in (0, 1):
        out = tmp_path / f"part{shard}"
        out.mkdir()
        result = invoke(*run_args(inputs, out, "--shard", f"{shard}/2"))
        assert result.exit_code == 0, result.output
        line = result.output.strip().splitlines()[-1]
        assert ", 0 images failed: " in line
        counts.append(line.split(" images with boxes (")[0].rsplit(", ", 1)[1])
        counts.append(line.split(" images with boxes (")[1].split(" without")[0])
    with_boxes, without = int(counts[0]) + int(counts[2]), int(counts[1]) + int(counts[3])
    assert (with_boxes, without) == (9, 5)
