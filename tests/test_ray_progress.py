"""The progress file of ``run --ray`` (no Ray needed): exact round trip, a line cut short, another run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from megaclassifier.cluster.progress import Classified, ProgressWriter, progress_path, read_progress
from megaclassifier.crop.core import CutImage
from megaclassifier.errors import MegaClassifierError

RUN = {"run": {"detections_sha256": "ab", "model": {"name": "m.pt"}, "options": {"threshold": 0.15}}, "shard": None}


def items() -> list[Classified]:
    rng = np.random.default_rng(1)
    ok = Classified(
        CutImage("cam1/a.jpg", planned=3, size_zero=1, warnings=["truncated"]),
        [(0, "cam1/a.jpg___crop00_md.jpg"), (2, "cam1/a.jpg___crop02_md.jpg")],
        rng.dirichlet(np.ones(5), 2).astype(np.float32),
    )
    failed = Classified(CutImage("cam1/b.jpg", planned=1, failure="cannot open"), [], np.zeros((0, 5), np.float32))
    return [ok, failed]


def test_round_trip_is_exact_and_a_cut_line_is_ignored(tmp_path: Path) -> None:
    path = progress_path(tmp_path / "out.json")
    assert path == tmp_path / "out.json.ray-progress.jsonl"
    writer = ProgressWriter(path, RUN, [])
    assert [item.image.file for item in writer.record(items())] == ["cam1/a.jpg", "cam1/b.jpg"]
    writer.close(finished=False)
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"file": "cam1/c.jpg", "planned": 1, "wr')  # the driver died mid-line
    done = read_progress(path, RUN)
    assert list(done) == ["cam1/a.jpg", "cam1/b.jpg"]
    for expected in items():
        got = done[expected.image.file]
        assert got.image == expected.image and got.crops == expected.crops
        assert got.probabilities.dtype == np.float32
        assert got.probabilities.tobytes() == expected.probabilities.tobytes()  # bit for bit


def test_a_rerun_rewrites_the_file_and_success_removes_it(tmp_path: Path) -> None:
    path = progress_path(tmp_path / "out.json")
    writer = ProgressWriter(path, RUN, [])
    list(writer.record(items()[:1]))
    writer.close(finished=False)
    again = ProgressWriter(path, RUN, read_progress(path, RUN).values())
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # header and the finished image
    again.close(finished=True)
    assert not path.exists()


def test_nothing_finished_leaves_no_file(tmp_path: Path) -> None:
    path = progress_path(tmp_path / "out.json")
    ProgressWriter(path, RUN, []).close(finished=False)
    assert not path.exists() and read_progress(path, RUN) == {}


def test_another_run_is_refused(tmp_path: Path) -> None:
    path = progress_path(tmp_path / "out.json")
    writer = ProgressWriter(path, RUN, [])
    list(writer.record(items()))
    writer.close(finished=False)
    other = {**RUN, "shard": "1/4"}
    with pytest.raises(MegaClassifierError) as e:
        read_progress(path, other)
    assert str(e.value) == (
        f"{path}: progress of another run (detections file, model, options or shard differ); remove it to start afresh"
    )
