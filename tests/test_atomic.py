"""Atomic writes: umask modes, one-line errors for OS failures, strict JSON, unique names, no symlinks."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from megaclassifier.errors import MegaClassifierError, OutputFileError
from megaclassifier.formats import atomic
from megaclassifier.formats.atomic import (
    atomic_output,
    current_umask,
    write_bytes_atomic,
    write_json_atomic,
    write_json_unique,
)
from megaclassifier.formats.outputs import check_writable, check_writable_folder
from megaclassifier.formats.probabilities import ProbabilityCsvWriter


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask_027):
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_outputs_get_the_mode_a_plain_open_gives(tmp_path, umask_027):
    import numpy as np

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    write_json_atomic(tmp_path / "a.json", {"a": 1})
    with atomic_output(tmp_path / "b.csv.gz") as f:
        f.write("path\n")
    with ProbabilityCsvWriter(tmp_path / "p.csv", ["deer"]) as w:
        w.write_rows(["a.jpg___crop00.jpg"], np.array([[1.0]], np.float32))
    write_bytes_atomic(tmp_path / "c.jpg", b"jpeg")
    log = write_json_unique(tmp_path, "log", {})
    assert mode(plain) == 0o640
    for name in ("a.json", "b.csv.gz", "p.csv", "c.jpg", log.name):
        assert mode(tmp_path / name) == 0o640, name


def test_json_refuses_nan_and_infinity_and_writes_nothing(tmp_path):
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(OutputFileError, match=r"out.json: not written: Out of range float values"):
            write_json_atomic(tmp_path / "out.json", {"conf": value})
        with pytest.raises(OutputFileError, match=r"log.json: not written: Out of range float values"):
            write_json_unique(tmp_path, "log", {"conf": value})
    assert list(tmp_path.iterdir()) == []


def test_log_names_are_unique(tmp_path):
    paths = [write_json_unique(tmp_path, "run_log_20261126_070000", {"n": i}) for i in range(3)]
    assert [p.name for p in paths] == [
        "run_log_20261126_070000.json",
        "run_log_20261126_070000_1.json",
        "run_log_20261126_070000_2.json",
    ]
    assert [json.loads(p.read_text()) for p in paths] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary file left


def test_log_names_are_unique_without_hard_links(tmp_path, monkeypatch):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    paths = [write_json_unique(tmp_path, "log", {"n": i}) for i in range(2)]
    assert [p.name for p in paths] == ["log.json", "log_1.json"]
    assert [json.loads(p.read_text()) for p in paths] == [{"n": 0}, {"n": 1}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json", "log_1.json"]


def test_check_writable_accepts_a_new_folder(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "out.json")
    assert list(tmp_path.iterdir()) == []  # the folders made for the check are gone again: nothing written


def test_check_writable_folder_leaves_nothing(tmp_path):
    check_writable_folder(tmp_path / "logs" / "deeper")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "logs").mkdir()
    check_writable_folder(tmp_path / "logs")
    assert list((tmp_path / "logs").iterdir()) == []


def test_a_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub" / "out.json"
    with pytest.raises(OutputFileError) as info:
        check_writable(out)
    assert str(info.value) == f"{out}: cannot write in {out.parent} (a part of the path is a file, not a folder)"
    with pytest.raises(OutputFileError) as info:
        write_json_atomic(out, {})
    assert str(info.value) == f"{out}: cannot write in {out.parent} (a part of the path is a file, not a folder)"
    assert isinstance(info.value, MegaClassifierError)


def test_a_folder_as_output_file(tmp_path):
    with pytest.raises(OutputFileError, match=r": is a folder; give a file name$"):
        check_writable(tmp_path)


@pytest.mark.parametrize(("code", "words"), [(errno.EACCES, "Permission denied"), (errno.EROFS, "Read-only")])
def test_an_unwritable_folder_is_one_line(tmp_path, monkeypatch, code, words):
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    out = tmp_path / "out.json"
    with pytest.raises(OutputFileError, match=rf"^{out}: cannot write in {tmp_path} \({words}"):
        check_writable(out)
    with pytest.raises(OutputFileError, match=rf"^{out}: cannot write in {tmp_path} \({words}"):
        write_json_atomic(out, {})


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "probs.csv"
    out.write_text("old")

    with pytest.raises(OutputFileError) as info, atomic_output(out) as f:
        f.write("path,deer\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write(2) raises it: no file name
    assert str(info.value) == f"{out}: cannot write (No space left on device)"
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["probs.csv"]


def test_a_full_disk_while_writing_json(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "open", _failing_open(open), raising=False)
    out = tmp_path / "x.json"
    with pytest.raises(OutputFileError, match=r"x.json: cannot write \(No space left on device\)$"):
        write_json_atomic(out, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def _failing_open(real_open):
    """``open`` whose files fail to write with ENOSPC, as on a full disk."""

    class Full:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    def fake_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Full(f) if "w" in mode else f

    return fake_open


def test_errors_of_reading_inside_the_block_pass_through(tmp_path):
    out = tmp_path / "out.csv"
    with pytest.raises(FileNotFoundError), atomic_output(out) as f:
        f.write("x")
        open(tmp_path / "missing.csv")  # noqa: SIM115 - an input error, not the output's
    assert list(tmp_path.iterdir()) == []


def test_crop_writes_never_go_through_a_symlink(tmp_path):
    crops = tmp_path / "crops"
    outside = tmp_path / "outside"
    outside.mkdir()
    crops.mkdir()
    (crops / "cam").symlink_to(outside)
    with pytest.raises(OSError) as info:
        write_bytes_atomic(crops / "cam" / "a.jpg", b"x", root=crops)
    assert info.value.errno == errno.ELOOP and info.value.filename == str(crops / "cam")
    assert list(outside.iterdir()) == []
    # a link at the crop path itself is replaced, never written through
    target = outside / "victim.jpg"
    target.write_bytes(b"keep")
    (crops / "b.jpg").symlink_to(target)
    write_bytes_atomic(crops / "b.jpg", b"new", root=crops)
    assert target.read_bytes() == b"keep"
    assert not (crops / "b.jpg").is_symlink() and (crops / "b.jpg").read_bytes() == b"new"


def test_crops_dir_itself_may_be_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "crops").symlink_to(real)
    write_bytes_atomic(tmp_path / "crops" / "sub" / "a.jpg", b"x", root=tmp_path / "crops")
    assert (real / "sub" / "a.jpg").read_bytes() == b"x"
