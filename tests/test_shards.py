"""``run --shard I/N`` and ``combine``: shards of a run join into the unsharded run's file, byte for byte.

No Ray here: shards are for batch schedulers (SLURM array jobs, Kubernetes indexed jobs).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from cluster_data import RunInputs, make_inputs, run_args, without_time
from conftest import PhotoSet
from helpers import invoke

from megaclassifier.run.shards import SHARD_KEY, Shard, shard_of

# -- the shard rule


@pytest.mark.parametrize(
    ("text", "shard"), [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)), (" 2 / 10 ", Shard(2, 10)), ("0/4", Shard(0, 4))]
)
def test_parse(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("4/4", "'4/4': the shard number must be 0 to 3 (counting from 0)"),
        ("0/0", "'0/0': the shard number must be 0 to -1 (counting from 0)"),
        ("1", "'1' is not I/N (shard I of N, counting from 0, e.g. 0/4)"),
        ("-1/4", "'-1/4' is not I/N (shard I of N, counting from 0, e.g. 0/4)"),
        ("a/b", "'a/b' is not I/N (shard I of N, counting from 0, e.g. 0/4)"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        Shard.parse(text)
    assert str(e.value) == message


def test_shard_of_is_a_fixed_rule() -> None:
    # pinned: shards written by one version must combine with shards written by the next
    assert [shard_of(f, 4) for f in ("a.jpg", "cam1/IMG_0001.JPG", "cam1/IMG_0002.JPG", "x/y/z.png")] == [2, 1, 1, 2]
    assert [shard_of(f"cam1/IMG_{i:04d}.JPG", 7) for i in range(8)] == [3, 1, 2, 3, 6, 2, 6, 6]
    assert shard_of("a.jpg", 1) == 0


def test_shards_are_balanced_across_uneven_folders() -> None:
    # one big folder and many small ones: by folder, one shard would get 90 % of the images
    files = [f"big/IMG_{i:05d}.JPG" for i in range(9000)] + [f"cam{i // 10}/IMG_{i:05d}.JPG" for i in range(1000)]
    counts = Counter(shard_of(f, 8) for f in files)
    assert sorted(counts) == list(range(8))
    assert max(counts.values()) < 1250 * 1.1 and min(counts.values()) > 1250 * 0.9


# -- run --shard and combine on the real photos


@pytest.fixture(scope="module")
def inputs(photos: PhotoSet, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> RunInputs:
    return make_inputs(photos, b0_checkpoint, tmp_path_factory.mktemp("shard_inputs"))


@pytest.fixture(scope="module")
def unsharded(inputs: RunInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unsharded")
    result = invoke(*run_args(inputs, out))
    assert result.exit_code == 0, result.output
    return out / "merged.json"


@pytest.fixture(scope="module")
def shards(inputs: RunInputs, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The three shards of the same run, each in its own folder (as three jobs would write them)."""
    paths = []
    for index in range(3):
        out = tmp_path_factory.mktemp(f"shard{index}")
        result = invoke(*run_args(inputs, out, "--shard", f"{index}/3"))
        assert result.exit_code == 0, result.output
        paths.append(out / "merged.json")
    return paths


def test_each_shard_holds_its_own_images(inputs: RunInputs, shards: list[Path]) -> None:
    files = [image["file"] for image in json.loads(inputs.detections.read_text(encoding="utf-8"))["images"]]
    for index, path in enumerate(shards):
        data = json.loads(path.read_text(encoding="utf-8"))
        record = data["info"][SHARD_KEY]
        expected = [i for i, f in enumerate(files) if shard_of(f, 3) == index]
        assert (record["index"], record["count"], record["images_total"]) == (index, 3, len(files))
        assert record["positions"] == expected and expected
        assert [image["file"] for image in data["images"]] == [files[i] for i in expected]
        assert record["run"]["options"]["threshold"] == 0.15
        assert len(record["run"]["model_sha256"]) == 64 and record["run"]["options"]["exact"] is False


def test_combine_equals_the_unsharded_run(tmp_path: Path, unsharded: Path, shards: list[Path]) -> None:
    result = invoke("combine", tmp_path / "combined.json", *reversed(shards))  # any order
    assert result.exit_code == 0, result.output
    images = len(json.loads(unsharded.read_text(encoding="utf-8"))["images"])
    assert result.output.strip() == f"{images} images from 3 shards: wrote {tmp_path / 'combined.json'}"
    assert without_time(tmp_path / "combined.json") == without_time(unsharded)
    times = [json.loads(p.read_text(encoding="utf-8"))["info"]["classification_completion_time"] for p in shards]
    combined = json.loads((tmp_path / "combined.json").read_text(encoding="utf-8"))
    assert combined["info"]["classification_completion_time"] == max(times)


def test_combine_refuses_a_missing_shard(tmp_path: Path, shards: list[Path]) -> None:
    result = invoke("combine", tmp_path / "out.json", shards[0], shards[2])
    assert result.exit_code == 1
    assert result.output == "Error: shards missing: 1/3; combine needs all 3 shards of the run\n"
    assert not (tmp_path / "out.json").exists()


def test_combine_refuses_a_shard_twice(tmp_path: Path, shards: list[Path]) -> None:
    result = invoke("combine", tmp_path / "out.json", *shards, shards[1])
    assert result.exit_code == 1
    assert result.output == f"Error: {shards[1]}: shard 1/3 is also {shards[1]}; give each shard once\n"


def test_combine_refuses_shards_of_another_run(inputs: RunInputs, tmp_path: Path, shards: list[Path]) -> None:
    result = invoke(*run_args(inputs, tmp_path, "--shard", "1/3", "--classification-threshold", 0.2))
    assert result.exit_code == 0, result.output
    other = tmp_path / "merged.json"
    result = invoke("combine", tmp_path / "out.json", shards[0], other, shards[2])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {other}: not the same run as {shards[0]}: options (classification_threshold (0.2 vs 0.05)); "
        "combine only the shards of one run (same detections file, model and options)\n"
    )


def test_combine_refuses_an_exact_shard_beside_fast_ones(inputs: RunInputs, tmp_path: Path, shards: list[Path]) -> None:
    result = invoke(*run_args(inputs, tmp_path, "--shard", "1/3", "--exact"))
    assert result.exit_code == 0, result.output
    exact = tmp_path / "merged.json"
    result = invoke("combine", tmp_path / "out.json", shards[0], exact, shards[2])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {exact}: not the same run as {shards[0]}: options (exact (true vs false)); "
        "combine only the shards of one run (same detections file, model and options)\n"
    )
    assert not (tmp_path / "out.json").exists()


def test_combine_refuses_a_file_that_is_no_shard(tmp_path: Path, unsharded: Path, shards: list[Path]) -> None:
    result = invoke("combine", tmp_path / "out.json", unsharded, *shards[1:])
    assert result.exit_code == 1
    assert result.output == f"Error: {unsharded}: no info.{SHARD_KEY}; is this the output of run --shard?\n"


def test_combine_refuses_an_image_in_the_wrong_shard(tmp_path: Path, shards: list[Path]) -> None:
    data = json.loads(shards[0].read_text(encoding="utf-8"))
    moved = json.loads(shards[1].read_text(encoding="utf-8"))["images"][0]
    data["images"][0] = moved
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data, indent=1), encoding="utf-8")
    result = invoke("combine", tmp_path / "out.json", edited, *shards[1:])
    assert result.exit_code == 1
    assert result.output == f"Error: {edited}: image {moved['file']!r} does not belong to shard 0/3\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shard", "3/3"], "Invalid value for '--shard': '3/3': the shard number must be 0 to 2 (counting from 0)"),
        (["--shard", "0/2", "--smooth", "image"], "--smooth needs all the images: smooth the combined shards"),
        (["--ray-address", "auto"], "--ray-address needs --ray"),
        (["--ray", "--num-workers", "2"], "--num-workers is for one machine; with --ray, Ray runs the decoding tasks"),
    ],
)
def test_run_usage_errors(inputs: RunInputs, tmp_path: Path, extra: list[str], message: str) -> None:
    result = invoke(*run_args(inputs, tmp_path, *extra))
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "merged.json").exists()
