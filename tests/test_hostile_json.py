"""Issue 22, items 1 and 2: JSON made to hurt gets one line naming the file, exit 1, and bounded memory.

A value nested thousands of levels deep (Python's parser ends in ``RecursionError``; the
streamed reader's per-level prefixes took gigabytes) and an integer of 5,000 digits (Python's
``int()`` refuses it; ijson's C parser crashes on it) in every JSON input of every command:
detections and results files, label indexes, mappings, sequence files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import invoke
from models import DETECTOR, TINY_NAMES
from PIL import Image
from report_data import DEMO_DATA, write_classified_demo

from megaclassifier.constants import MAX_JSON_DEPTH

DEEP = "nested deeper than 64 levels; not a file this toolkit reads"
LONG = "holds a number of more than 4300 digits; not a file this toolkit reads"
DEMO_IMAGES = DEMO_DATA / "images"
GOOD = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}


def deep_value(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile(path: Path, good: object, kind: str) -> Path:
    """``good`` as JSON text with a hostile value in a field of its own (first key of an object)."""
    bad = deep_value(20_000) if kind == "deep" else "9" * 5000
    text = json.dumps(good)
    opening = '{"zz_hostile": ' if text.startswith("{") else "["
    text = opening + bad + ", " + text[1:]
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path: Path, tiny_model: Path, tiny_categories: Path) -> dict[str, Path]:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (64, 48), (90, 120, 150)).save(images / name)
    md = {
        "info": {"format_version": "1.4", "detector": DETECTOR},
        "detection_categories": {"1": "animal"},
        "images": [{"file": "a.jpg", "detections": [GOOD]}, {"file": "b.jpg", "detections": [GOOD]}],
    }
    (tmp_path / "md.json").write_text(json.dumps(md))
    crops = tmp_path / "crops"
    crops.mkdir()
    Image.new("RGB", (20, 20), (90, 120, 150)).save(crops / f"a.jpg___crop00_{DETECTOR}.jpg")
    (tmp_path / "probs.csv").write_text(f"path,{','.join(TINY_NAMES)}\na.jpg___crop00_{DETECTOR}.jpg,0.1,0.2,0.3,0.4\n")
    (tmp_path / "mapping.json").write_text(json.dumps({"cervid": ["deer", "elk"], "other": ["cow", "bear"]}))
    write_classified_demo(tmp_path / "results.json")
    categories = tmp_path / "categories.json"  # a copy: the fixture's file is shared by the session
    categories.write_text(tiny_categories.read_text())
    (tmp_path / "cct.json").write_text(json.dumps({"images": [{"file_name": "ocelot.jpg", "seq_id": "s1"}]}))
    (tmp_path / "out").mkdir()
    (tmp_path / "deployments.csv").write_text("folder,latitude,longitude\n.,-2.333,34.833\n")
    return {
        "root": tmp_path, "images": images, "md": tmp_path / "md.json", "crops": crops,
        "probs": tmp_path / "probs.csv", "mapping": tmp_path / "mapping.json", "model": tiny_model,
        "categories": categories, "results": tmp_path / "results.json", "cct": tmp_path / "cct.json",
        "deployments": tmp_path / "deployments.csv",
    }  # fmt: skip


def command(w: dict[str, Path], which: str) -> tuple[str, list[object]]:
    """The input made hostile and the command line that reads it."""
    out = w["root"] / "out"
    run = [
        "run", w["md"], w["model"], "--images-dir", w["images"], "--classifier-categories", w["categories"],
        "--image-size", "32", "--num-workers", "0", "--output-json", out / "o.json", "--logdir", out,
    ]  # fmt: skip
    classify = ["classify", w["model"], w["crops"], out / "p.csv", "--image-size", "32", "--num-workers", "0"]
    merge = ["merge", w["probs"], w["categories"], "--output-json", out / "m.json", "--classifier-name", "c"]
    table: dict[str, tuple[str, list[object]]] = {
        "crop": ("md", ["crop", w["md"], out / "crops", "--images-dir", w["images"], "--logdir", out]),
        "run": ("md", run),
        "run -c": ("categories", run),
        "classify -d": ("md", [*classify, "-d", w["md"]]),
        "classify -c": ("categories", [*classify, "-c", w["categories"]]),
        "merge -j": ("md", [*merge, "--detection-json", w["md"]]),
        "merge label index": ("categories", [*merge, "--detection-json", w["md"]]),
        "aggregate -t": ("mapping", ["aggregate", w["probs"], "-t", w["mapping"], "-o", out / "a.csv", "-i",
                                       out / "a.json"]),
        "report": ("results", ["report", w["results"], out / "report", "--images-dir", DEMO_IMAGES]),
        "export csv": ("results", ["export", w["results"], out / "x.csv", "--format", "csv"]),
        "export camtrap-dp": ("results", ["export", w["results"], out / "pkg", "--format", "camtrap-dp",
                                           "--images-dir", DEMO_IMAGES, "--deployments", w["deployments"],
                                           "--contributor", "Jane Doe"]),
        "combine": ("results", ["combine", out / "c.json", w["results"]]),
        "smooth": ("results", ["smooth", w["results"], out / "s.json"]),
        "smooth --sequences": ("cct", ["smooth", w["results"], out / "s.json", "--level", "sequence",
                                       "--sequences", w["cct"]]),
        "rollup": ("results", ["rollup", w["results"], out / "r.json", "-t", "0.8"]),
    }  # fmt: skip
    return table[which]


COMMANDS = [
    "crop", "run", "run -c", "classify -d", "classify -c", "merge -j", "merge label index", "aggregate -t",
    "report", "export csv", "export camtrap-dp", "combine", "smooth", "smooth --sequences", "rollup",
]  # fmt: skip


@pytest.mark.parametrize("kind", ["deep", "long"])
@pytest.mark.parametrize("which", COMMANDS)
def test_hostile_json_is_one_line_in_every_command(which: str, kind: str, world: dict[str, Path]) -> None:
    slot, args = command(world, which)
    target = world[slot]
    hostile(target, json.loads(target.read_text()), kind)
    result = invoke(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    error = f"Error: {target}: {DEEP if kind == 'deep' else LONG}"
    assert (result.exit_code, result.output.splitlines()[-1]) == (1, error), result.output
    assert [line for line in result.output.splitlines() if "Error" in line or "Traceback" in line] == [error]
    assert sorted(p.name for p in (world["root"] / "out").iterdir()) == []  # nothing written


def test_the_limit_is_the_documented_one() -> None:
    assert MAX_JSON_DEPTH == 64
    assert DEEP.startswith(f"nested deeper than {MAX_JSON_DEPTH} levels")


def test_a_file_nested_at_the_limit_is_read(world: dict[str, Path]) -> None:
    """64 levels (the top object is level 1) are read by both readers; 65 are not."""
    from megaclassifier.formats.detections_stream import StreamedResults
    from megaclassifier.formats.json_input import read_json

    for depth, ok in ((MAX_JSON_DEPTH, True), (MAX_JSON_DEPTH + 1, False)):
        path = world["root"] / f"d{depth}.json"
        path.write_text('{"images": [], "x": ' + deep_value(depth - 1) + "}")
        for reader in (read_json, StreamedResults):
            if ok:
                reader(path)
            else:
                with pytest.raises(Exception, match="nested deeper than 64 levels"):
                    reader(path)


STREAM_UNDER_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from megaclassifier.formats.detections_stream import StreamedResults
from megaclassifier.errors import InputFileError
try:
    results = StreamedResults(sys.argv[1])
    print(sum(1 for _ in results.images()))
except InputFileError as e:
    print("refused:", e.problem)
# VmHWM: this process's own peak (ru_maxrss would count the forking parent's)
print("peak MiB", next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024)
"""

#: what the streamed reader may take (address space) for a 200 KB file of any shape
STREAM_MEMORY_LIMIT = 1 << 30


@pytest.mark.parametrize("shape", ["deep-in-header", "deep-in-image", "wide"])
def test_the_streamed_reader_stays_lean_whatever_the_shape(shape: str, tmp_path: Path) -> None:
    """The 200 KB file that took 22 GB: refused in one line, under a 1 GiB address-space limit."""
    depth = 100_000
    image = '{"file": "a.jpg", "detections": [], "x": ' + ("[" * depth + "]" * depth if shape != "wide" else "1") + "}"
    if shape == "deep-in-header":
        text = '{"info": ' + "[" * depth + "]" * depth + ', "images": []}'
    elif shape == "deep-in-image":
        text = '{"images": [' + image + "]}"
    else:  # 20,000 small images: read, not refused
        text = '{"images": [' + ", ".join(image.replace("a.jpg", f"{i}.jpg") for i in range(20_000)) + "]}"
    path = tmp_path / "r.json"
    path.write_text(text)
    code = textwrap.dedent(STREAM_UNDER_LIMIT.format(limit=STREAM_MEMORY_LIMIT))
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, peak = done.stdout.splitlines()
    assert first == ("20000" if shape == "wide" else f"refused: {DEEP}")
    assert int(peak.split()[-1]) < 200  # MiB: the interpreter, ijson and one image
