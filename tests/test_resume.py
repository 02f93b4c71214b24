"""Issue 12, item 12: ``classify`` and ``run`` resume from their journal after an interruption.

An interruption is simulated in-process (a KeyboardInterrupt after some rows:
what Ctrl-C or SIGTERM do; ``kill -9`` is in ``test_chaos.py``). The rerun with
the same arguments must give files byte-identical to an uninterrupted run
(``run``'s JSON: except ``info.classification_completion_time``), classify only
what was not journaled, and remove the journal; a changed model, size, input or
option starts afresh and says why; ``--restart`` ignores the journal; stale
temporary files of the output are removed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import invoke
from workload import Workload, make_workload

import megaclassifier.classify.classify as classify_module
import megaclassifier.run.pipeline as pipeline_module

IMAGE_SIZE = "32"


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return make_workload(tmp_path_factory.mktemp("workload"), copies=10)


@pytest.fixture(scope="module")
def crops(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from megaclassifier.crop import crop_detections

    out = tmp_path_factory.mktemp("crops")
    crop_detections(
        workload.detections, out / "crops", images_dir=workload.images, square_crops=True, threshold=0.15, logdir=out
    )
    return out / "crops"


def classify(model: Path, crops: Path, output: Path, *extra: object):  # noqa: ANN201 - a click Result
    return invoke(
        "classify", model, crops, output, "--image-size", IMAGE_SIZE, "--batch-size", "8", "--num-workers", "0",
        "--backend", "torch", *extra, quiet=False,
    )  # fmt: skip


def run(workload: Workload, model: Path, out: Path, *extra: object):  # noqa: ANN201
    return invoke(
        "run", workload.detections, model, "--images-dir", workload.images, "--square-crops", "--threshold", "0.15",
        "--output-json", out / "out.json", "--output-csv", out / "out.csv", "--image-size", IMAGE_SIZE,
        "--batch-size", "8", "--num-workers", "0", "--logdir", out / "logs", *extra, quiet=False,
    )  # fmt: skip


def interrupt_classify(monkeypatch: pytest.MonkeyPatch, after_batches: int) -> None:
    """Make the next ``classify`` stop with Ctrl-C after ``after_batches`` batches were written."""
    original = classify_module.journaled_writer

    def journaled_writer(writer, journal):  # noqa: ANN001, ANN202
        write = original(writer, journal)
        calls = []

        def interrupted(paths, values):  # noqa: ANN001, ANN202
            if len(calls) == after_batches:
                raise KeyboardInterrupt
            calls.append(1)
            write(paths, values)

        return interrupted

    monkeypatch.setattr(classify_module, "journaled_writer", journaled_writer)


def interrupt_run(monkeypatch: pytest.MonkeyPatch, after_rows: int) -> None:
    """Make the next ``run`` stop with Ctrl-C after ``after_rows`` crops were classified."""
    original = pipeline_module.classified_rows

    def classified_rows(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        for n, row in enumerate(original(*args, **kwargs)):
            if n == after_rows:
                raise KeyboardInterrupt
            yield row

    monkeypatch.setattr(pipeline_module, "classified_rows", classified_rows)


def journal_records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["journal"] == 1
    return [json.loads(line) for line in lines[1:]]


def without_time(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    del data["info"]["classification_completion_time"]
    return data


def test_classify_resumes_byte_identical(tiny_model, crops, tmp_path, monkeypatch):
    clean = classify(tiny_model, crops, tmp_path / "clean.csv")
    assert clean.exit_code == 0, clean.output
    out = tmp_path / "probs.csv"
    with monkeypatch.context() as m:
        interrupt_classify(m, after_batches=5)
        stopped = classify(tiny_model, crops, out)
    assert stopped.exit_code == 130
    assert stopped.output.splitlines()[-1] == "Interrupted (Ctrl-C); temporary files removed."
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv", "probs.csv.journal"]
    records = journal_records(tmp_path / "probs.csv.journal")
    assert [len(r["rows"]) for r in records] == [8] * 5
    resumed = classify(tiny_model, crops, out)
    assert resumed.exit_code == 0, resumed.output
    assert "probs.csv.journal: resuming an interrupted run (5 records done)" in resumed.output
    total = len(list(crops.rglob("*.jpg")))
    assert f"classifying {total - 40} crops with" in resumed.output
    assert f"{total} of {total} crops classified into {out}" in resumed.output
    assert out.read_bytes() == (tmp_path / "clean.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.csv", "probs.csv"]  # journal removed


def test_classify_journal_with_a_torn_last_line(tiny_model, crops, tmp_path, monkeypatch):
    assert classify(tiny_model, crops, tmp_path / "clean.csv").exit_code == 0
    out = tmp_path / "probs.csv"
    with monkeypatch.context() as m:
        interrupt_classify(m, after_batches=3)
        classify(tiny_model, crops, out)
    journal = tmp_path / "probs.csv.journal"
    with journal.open("a", encoding="utf-8") as f:
        f.write('{"rows": [["half')  # killed mid-write
    resumed = classify(tiny_model, crops, out)
    assert "resuming an interrupted run (3 records done)" in resumed.output
    assert out.read_bytes() == (tmp_path / "clean.csv").read_bytes()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (["--image-size", "40"], "image size changed since the interrupted run; starting afresh"),
        (["--batch-size", "4"], "batch size changed since the interrupted run; starting afresh"),
        (["--restart"], "--restart: ignoring the journal of an earlier run; starting afresh"),
    ],
)
def test_classify_starts_afresh_when_something_changed(tiny_model, crops, tmp_path, monkeypatch, change, reason):
    out = tmp_path / "probs.csv"
    with monkeypatch.context() as m:
        interrupt_classify(m, after_batches=2)
        classify(tiny_model, crops, out)
    args = {"--image-size": IMAGE_SIZE, "--batch-size": "8"}
    rerun = invoke(
        "classify", tiny_model, crops, out, *[a for k, v in args.items() if k not in change for a in (k, v)],
        "--num-workers", "0", "--backend", "torch", *change, quiet=False,
    )  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    assert f"{out}.journal: {reason}" in rerun.output
    assert "resuming" not in rerun.output
    total = len(list(crops.rglob("*.jpg")))
    assert f"classifying {total} crops with" in rerun.output


def test_classify_starts_afresh_with_another_model(tiny_model, b0_torchscript, crops, tmp_path, monkeypatch):
    out = tmp_path / "probs.csv"
    with monkeypatch.context() as m:
        interrupt_classify(m, after_batches=2)
        classify(tiny_model, crops, out)
    rerun = invoke(
        "classify", b0_torchscript, crops, out, "--image-size", "64", "--batch-size", "8", "--num-workers", "0",
        "--backend", "torch", quiet=False,
    )  # fmt: skip
    assert rerun.exit_code == 0, rerun.output
    assert f"{out}.journal: model sha256 changed since the interrupted run; starting afresh" in rerun.output


def test_classify_removes_stale_temporary_files(tiny_model, crops, tmp_path):
    stale = tmp_path / ".probs.csv.k3j4h5.tmp"
    stale.write_bytes(b"\x1f\x8b half a gzip")
    other = tmp_path / ".other.csv.k3j4h5.tmp"  # another output's: kept
    other.write_bytes(b"x")
    result = classify(tiny_model, crops, tmp_path / "probs.csv")
    assert result.exit_code == 0, result.output
    assert "probs.csv: removed 1 temporary file(s) left by an interrupted run" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.csv.k3j4h5.tmp", "probs.csv"]


def test_run_resumes_byte_identical(tiny_model, workload, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    assert run(workload, tiny_model, clean).exit_code == 0
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_run(m, after_rows=100)
        stopped = run(workload, tiny_model, out)
    assert stopped.exit_code == 130
    assert sorted(p.name for p in out.iterdir()) == ["out.json.journal"]
    records = journal_records(out / "out.json.journal")
    done = sum(len(r["crops"]) for r in records)
    assert 90 <= done <= 100  # whole images only: those whose every crop was classified
    with_crops = [r["file"] for r in records if r["crops"]]  # in input order: a prefix of the images with crops
    assert with_crops == _files_with_crops(workload)[: len(with_crops)]
    resumed = run(workload, tiny_model, out)
    assert resumed.exit_code == 0, resumed.output
    assert f"out.json.journal: resuming an interrupted run ({len(records)} records done)" in resumed.output
    assert f"{workload.crops} crops classified" in resumed.output
    assert (out / "out.csv").read_bytes() == (clean / "out.csv").read_bytes()
    assert without_time(out / "out.json") == without_time(clean / "out.json")
    assert sorted(p.name for p in out.iterdir()) == ["logs", "out.csv", "out.json"]


def _files_with_crops(workload: Workload) -> list[str]:
    images = json.loads(workload.detections.read_text())["images"]
    return [i["file"] for i in images if any(d["category"] == "1" and d["conf"] >= 0.15 for d in i["detections"])]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (["--classification-threshold", "0.5"], "options changed since the interrupted run"),
        ("touch", "input file changed since the interrupted run"),
    ],
)
def test_run_starts_afresh_when_something_changed(tiny_model, workload, tmp_path, monkeypatch, change, reason):
    local = make_workload(tmp_path / "w", copies=2)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_run(m, after_rows=20)
        run(local, tiny_model, out)
    assert journal_records(out / "out.json.journal")
    if change == "touch":
        local.detections.write_text(local.detections.read_text() + "\n")
        change = []
    rerun = run(local, tiny_model, out, *change)
    assert rerun.exit_code == 0, rerun.output
    assert f"out.json.journal: {reason}; starting afresh" in rerun.output
    assert not (out / "out.json.journal").exists()
