"""Issue 19: one run identity (every option tagged), model identity by content, and one writer per output.

* every ``RunOptions`` field says what it does to the output; a journal made with any other value of
  an ``output``, ``content`` or ``local`` field (or another model, image size, detections file or
  engine) is never replayed, while the ``neutral`` fields leave it in use;
* a model is known by its content: a copy is the same model, a changed byte or label another;
* the output lock: a second writer stops at once naming the first's PID; a lock left by a killed
  process is taken over; nothing of the lock is left after.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from speciesnet_data import build_release

from megaclassifier.errors import OutputLockedError
from megaclassifier.formats.journal import open_journal
from megaclassifier.formats.lock import lock_path, output_lock, pid_alive, pid_path
from megaclassifier.models.resolved import names_release, resolve
from megaclassifier.postprocess.options import SmoothOptions
from megaclassifier.run.identity import journal_fingerprint, run_identity
from megaclassifier.run.options import NEUTRAL, ROLES, RunOptions, identity_role
from megaclassifier.run.shards import Shard

FIELDS = dataclasses.fields(RunOptions)


def test_every_option_is_tagged() -> None:
    untagged = [f.name for f in FIELDS if identity_role(f) not in ROLES]
    assert untagged == [], "tag each RunOptions field with output, content, local or neutral"


def test_the_options_that_change_the_output_are_not_neutral() -> None:
    neutral = sorted(f.name for f in FIELDS if identity_role(f) == NEUTRAL)
    assert neutral == ["logdir", "num_workers", "output_json", "restart", "timeout"]


def _other_value(name: str, tmp_path: Path) -> tuple[Any, Any]:
    """Two values of option ``name``: the default, and another."""
    content = tmp_path / f"{name}.json"
    content.write_text('{"a": 1}', encoding="utf-8")
    changed = tmp_path / f"{name}.changed.json"
    changed.write_text('{"a": 2}', encoding="utf-8")
    special: dict[str, tuple[Any, Any]] = {
        "classifier_categories": (content, changed),
        "target_mapping": (content, changed),
        "taxonomy": (content, changed),
        "smooth": (None, SmoothOptions()),
        "shard": (Shard(0, 2), Shard(1, 2)),
        "exact": (False, True),
        "square_crops": (False, True),
        "allow_outside_images_dir": (False, True),
        "jpeg_roundtrip": (True, False),
        "decoder": ("auto", "cpu"),
        "device": ("auto", "cpu"),
        "precision": ("fp32", "bf16"),
        "backend": ("auto", "torch"),
        "batch_size": (8, 16),
        "image_size": (None, 64),
        "threshold": (0.0, 0.15),
        "classification_threshold": (0.1, 0.2),
        "typical_classification_threshold": (None, 0.5),
        "max_classifications": (None, 3),
        "video_summary": (None, "best-frame"),
        "video_summary_nth": (1, 2),
    }
    return special.get(name, (None, f"other-{name}"))


def _fingerprint(options: RunOptions, **identity: Any) -> dict[str, Any]:
    base = {"model_sha256": "m" * 64, "image_size": 64, "detections_sha256": "d" * 64}
    return journal_fingerprint(run_identity(**{**base, **identity}, options=options), options, ["onnxruntime", "cpu"])


def _journal_with_a_record(output: Path, fingerprint: dict[str, Any]) -> None:
    with open_journal(output, fingerprint) as journal:
        journal.append({"file": "a.jpg", "cut": {}, "crops": []})


@pytest.mark.parametrize("name", [f.name for f in FIELDS if f.name != "output_json"])
def test_a_journal_of_another_option_value_is_never_replayed(name: str, tmp_path: Path) -> None:
    before, after = _other_value(name, tmp_path)
    output = tmp_path / "out.json"
    _journal_with_a_record(output, _fingerprint(RunOptions(output_json=output, **{name: before})))
    again = open_journal(output, _fingerprint(RunOptions(output_json=output, **{name: after})))
    replayed = len(again.records)
    again.close()
    role = identity_role(next(f for f in FIELDS if f.name == name))
    assert replayed == (1 if role == NEUTRAL else 0), f"{name} ({role})"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"model_sha256": "n" * 64}, "model sha256 changed"),
        ({"image_size": 32}, "image size changed"),
        ({"detections_sha256": "e" * 64}, "input file changed"),
    ],
)
def test_a_journal_of_another_model_size_or_input_is_never_replayed(
    change: dict[str, Any], reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    output = tmp_path / "out.json"
    options = RunOptions(output_json=output)
    _journal_with_a_record(output, _fingerprint(options))
    with caplog.at_level("INFO", logger="megaclassifier"):
        again = open_journal(output, _fingerprint(options, **change))
    assert again.records == []
    again.close()
    assert f"{output}.journal: {reason} since the interrupted run; starting afresh" in caplog.text


def test_a_model_is_known_by_its_content(tmp_path: Path) -> None:
    (tmp_path / "a.pt").write_bytes(b"weights")
    shutil.copyfile(tmp_path / "a.pt", tmp_path / "copy.pt")
    (tmp_path / "b.pt").write_bytes(b"weightz")
    assert resolve(tmp_path / "a.pt").identity == resolve(tmp_path / "copy.pt").identity
    assert resolve(tmp_path / "a.pt").identity != resolve(tmp_path / "b.pt").identity
    assert len(resolve(tmp_path / "a.pt").identity) == 64


def test_a_release_is_known_by_its_files(tmp_path: Path) -> None:
    release = build_release(tmp_path / "release")
    shutil.copytree(release, tmp_path / "copy")
    model = resolve(release)
    assert names_release(release) and names_release(model) and not names_release(tmp_path / "nothing")
    assert model.release is not None and model.preprocessing.image_size == 480
    assert model.identity == resolve(tmp_path / "copy").identity
    labels = tmp_path / "copy" / "always_crop_test.labels.txt"
    labels.write_text(labels.read_text(encoding="utf-8").replace("coyote", "coyotes"), encoding="utf-8")
    assert resolve(tmp_path / "copy").identity != model.identity  # a label changed: another model
    assert model.class_names(None)[0] == "coyote"
    assert model.descriptions is not None and model.descriptions["0"].endswith(";coyote")


# -- the output lock

HOLD = """
import sys, time
from megaclassifier.formats.lock import output_lock
with output_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def _holder(output: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_second_writer_stops_at_once_naming_the_first(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    first = _holder(output)
    try:
        began = time.monotonic()
        with pytest.raises(OutputLockedError) as e, output_lock(output):
            pass
        assert time.monotonic() - began < 5
        assert str(e.value) == (
            f"{output}: another process (PID {first.pid}) is writing it; wait for it to end, or stop it"
        )
    finally:
        first.terminate()
        first.wait(timeout=30)


def test_a_killed_writers_lock_is_taken_over(tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    first = _holder(output)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert lock_path(output).exists() and pid_path(output).read_text(encoding="utf-8").split()[0] == str(first.pid)
    assert not pid_alive(first.pid)
    with output_lock(output):
        assert pid_path(output).read_text(encoding="utf-8").split()[0] == str(os.getpid())
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing of the lock is left


def test_the_lock_goes_with_an_error_and_lets_the_next_in(tmp_path: Path) -> None:
    output = tmp_path / "sub" / "out.csv"
    with pytest.raises(RuntimeError), output_lock(output):
        raise RuntimeError("boom")
    assert not (tmp_path / "sub").exists()  # the folder made for the lock goes too
    with output_lock(output):
        assert json.dumps(sorted(p.name for p in output.parent.iterdir())) == '["out.csv.lock", "out.csv.lock.pid"]'


def test_one_public_all_imported_lazily() -> None:
    code = (
        "import sys, megaclassifier as m\n"
        "assert 'torch' not in sys.modules\n"
        "assert sorted(m.__all__) == sorted(['__version__', *m._PUBLIC]), 'list each public name in both'\n"
        "missing = [n for n in m.__all__ if getattr(m, n, None) is None]\n"
        "print(missing, m.resolve.__module__, m.run_pipeline.__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "megaclassifier.models.resolved", "megaclassifier.run.pipeline"]
