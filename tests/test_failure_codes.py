"""Issue 12, items 2, 5 and 10: refusals before any work, and the exit code when nothing worked.

* item 5: every output (file or folder) is checked before the work starts: a
  path under a regular file, or a folder that refuses a new file (made to fail
  by a patched ``mkstemp``, since the tests run as root), ends in one line naming
  the path and the cause, exit 1, nothing written;
* item 10: when every image fails, ``crop`` and ``run`` exit 3 with a closing
  line that says so, and ``run`` writes no results file;
* item 2: a results file that repeats a ``file`` is refused by ``crop``, ``run``,
  ``merge`` and ``classify -d`` with the same one line, and nothing is written.
"""

from __future__ import annotations

import errno
import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from models import DETECTOR, TINY_NAMES
from PIL import Image

from megaclassifier.cli import cli
from megaclassifier.errors import EXIT_NOTHING_WORKED

GOOD = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}
UNDER_A_FILE = "a part of the path is a file, not a folder"


def invoke(*args: object) -> Result:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture
def inputs(tmp_path: Path, tiny_model: Path, tiny_categories: Path) -> dict[str, Path]:
    """Two photos and their results, a crops folder, a probability CSV and a mapping, under ``tmp_path/in``."""
    folder = tmp_path / "in"
    (folder / "images").mkdir(parents=True)
    (tmp_path / "unused").mkdir()  # where the other outputs of a command go
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (64, 48), (90, 120, 150)).save(folder / "images" / name)
    md = {
        "info": {"format_version": "1.4", "detector": DETECTOR},
        "detection_categories": {"1": "animal"},
        "images": [{"file": "a.jpg", "detections": [GOOD]}, {"file": "b.jpg", "detections": [GOOD]}],
    }
    (folder / "md.json").write_text(json.dumps(md), encoding="utf-8")
    crops = folder / "crops"
    (crops / "x").mkdir(parents=True)
    Image.new("RGB", (20, 20), (90, 120, 150)).save(crops / "x" / f"a.jpg___crop00_{DETECTOR}.jpg")
    probs = folder / "probs.csv"
    probs.write_text(f"path,{','.join(TINY_NAMES)}\na.jpg___crop00_{DETECTOR}.jpg,0.1,0.2,0.3,0.4\n")
    mapping = folder / "mapping.json"
    mapping.write_text(json.dumps({"cervid": ["deer", "elk"], "other": ["cow", "bear"]}))
    return {
        "md": folder / "md.json", "images": folder / "images", "crops": crops, "probs": probs,
        "mapping": mapping, "model": tiny_model, "categories": tiny_categories,
    }  # fmt: skip


def commands(i: dict[str, Path], target: Path, which: str) -> list[object]:
    """The command line with ``target`` as its output ``which``."""
    out = i["md"].parent.parent / "unused"
    run = [
        "run", i["md"], i["model"], "--images-dir", i["images"], "--classifier-categories", i["categories"],
        "--image-size", "32", "--num-workers", "0",
    ]  # fmt: skip
    table: dict[str, list[object]] = {
        "run -o": [*run, "--output-json", target, "--logdir", out],
        "run --output-csv": [*run, "--output-json", out / "o.json", "--output-csv", target, "--logdir", out],
        "run --logdir": [*run, "--output-json", out / "o.json", "--logdir", target],
        "crop --logdir": ["crop", i["md"], out / "crops", "--images-dir", i["images"], "--logdir", target],
        "crop CROPS_DIR": ["crop", i["md"], target, "--images-dir", i["images"], "--logdir", out],
        "classify OUTPUT": ["classify", i["model"], i["crops"], target, "--image-size", "32", "--num-workers", "0"],
        "merge -o": [
            "merge", i["probs"], i["categories"], "--output-json", target, "--classifier-name", "c",
            "--detection-json", i["md"],
        ],
        "aggregate -o": ["aggregate", i["probs"], "-t", i["mapping"], "-o", target, "-i", out / "l.json"],
        "aggregate -i": ["aggregate", i["probs"], "-t", i["mapping"], "-o", out / "a.csv", "-i", target],
        "features OUTPUT": ["features", i["model"], i["crops"], target, "--image-size", "32", "--num-workers", "0"],
    }  # fmt: skip
    return table[which]


OUTPUTS = {
    "run -o": "out.json", "run --output-csv": "out.csv", "run --logdir": "logs", "crop --logdir": "logs",
    "crop CROPS_DIR": "crops", "classify OUTPUT": "probs.csv", "merge -o": "merged.json",
    "aggregate -o": "agg.csv", "aggregate -i": "labels.json", "features OUTPUT": "features.npz",
}  # fmt: skip
FOLDERS = {"run --logdir", "crop --logdir", "crop CROPS_DIR"}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("which", OUTPUTS)
def test_an_output_under_a_file_is_refused_before_any_work(which, inputs, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    target = blocker / OUTPUTS[which]
    before = files_under(tmp_path)
    result = invoke(*commands(inputs, target, which))
    assert result.exit_code == 1, result.output
    folder_or_file = "this folder" if which in FOLDERS else blocker
    assert result.output == f"Error: {target}: cannot write in {folder_or_file} ({UNDER_A_FILE})\n"
    assert files_under(tmp_path) == before  # nothing written, not even a log


@pytest.mark.parametrize("which", OUTPUTS)
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_folder_that_refuses_files_is_named_before_any_work(which, code, inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    target = out / OUTPUTS[which]
    refused = target if which in FOLDERS else out
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002, ANN002, ANN003, ANN202 - mkstemp's own names
        if dir is not None and Path(dir) == refused:
            raise OSError(code, "refused by the test", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    before = files_under(tmp_path)
    result = invoke(*commands(inputs, target, which))
    assert result.exit_code == 1, result.output
    folder_or_file = "this folder" if which in FOLDERS else out
    assert result.output == f"Error: {target}: cannot write in {folder_or_file} (refused by the test)\n"
    assert files_under(tmp_path) == before  # not even the folder asked for


def test_run_exits_3_and_writes_no_results_when_every_image_fails(inputs, tmp_path):
    out = tmp_path / "out"
    args = commands(inputs, out / "out.json", "run -o")
    args[args.index(inputs["images"])] = tmp_path / "nowhere"
    result = invoke(*args, "--output-csv", out / "out.csv")
    assert result.exit_code == EXIT_NOTHING_WORKED == 3
    (log,) = (tmp_path / "unused").glob("run_log_*.json")
    assert result.output.splitlines()[-1] == (  # after the two images' warnings
        "Error: all 2 images failed (first: a.jpg: image not found under "
        f"{tmp_path / 'nowhere'}); nothing classified, {out / 'out.json'} not written; see {log}"
    )
    assert json.loads(log.read_text())["images_failed_download_or_crop"] == ["a.jpg", "b.jpg"]
    assert not out.exists() or files_under(out) == []  # no results file, no probability CSV
    assert not (out / "out.json.journal").exists()


def test_run_with_one_good_image_exits_0(inputs, tmp_path):
    (inputs["images"] / "b.jpg").unlink()
    result = invoke(*commands(inputs, tmp_path / "out" / "out.json", "run -o"))
    assert result.exit_code == 0, result.output
    assert "1 crops classified" in result.output and "1 images failed" in result.output


def test_crop_exits_3_when_every_image_fails(inputs, tmp_path):
    result = invoke(
        "crop", inputs["md"], tmp_path / "crops", "--images-dir", tmp_path / "nowhere", "--logdir", tmp_path
    )
    assert result.exit_code == 3
    (log,) = tmp_path.glob("crop_detections_log_*.json")
    assert result.output.splitlines() == [
        f"a.jpg: image not found under {tmp_path / 'nowhere'}",
        f"b.jpg: image not found under {tmp_path / 'nowhere'}",
        f"Error: all 2 images failed (first: a.jpg: image not found under {tmp_path / 'nowhere'}); "
        f"no crop written; see {log}",
    ]


REPEATED = (
    'images[1] repeats the file "a.jpg" of images[0]; each file may appear once '
    "(combine their detections into one entry)"
)


def test_a_repeated_file_is_refused_by_every_command(inputs, tmp_path):
    md = json.loads(inputs["md"].read_text())
    md["images"][1]["file"] = "a.jpg"
    inputs["md"].write_text(json.dumps(md))
    out = tmp_path / "out"
    out.mkdir()
    before = files_under(tmp_path)
    lines = {
        which: invoke(*commands(inputs, out / name, which))
        for which, name in [("crop CROPS_DIR", "crops"), ("run -o", "o.json"), ("merge -o", "m.json")]
    }
    lines["classify -d"] = invoke(*commands(inputs, out / "p.csv", "classify OUTPUT"), "-d", inputs["md"])
    for which, result in lines.items():
        assert (which, result.exit_code, result.output) == (which, 1, f"Error: {inputs['md']}: {REPEATED}\n")
    assert files_under(tmp_path) == before
