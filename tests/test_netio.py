"""Timeouts and retries of ``--container-url`` fetches and ``download`` (issue 12 item 4).

Two local servers on 127.0.0.1: one accepts connections and never answers
(it is closed by the fixture, so the test ends by itself), one answers
HTTP 503 a given number of times before it serves the file.
"""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from megaclassifier import netio
from megaclassifier.cli import cli
from megaclassifier.images.loading import ImageLoadError, fetch_bytes
from megaclassifier.netio import is_transient, with_retries

DET = "md_v5a.0.0.pt"
BOX = [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Retries wait 10 ms, 20 ms ... instead of 0.5 s, 1 s ... (the count of tries is unchanged)."""
    monkeypatch.setattr(netio, "RETRY_BACKOFF", 0.01)


@pytest.fixture
def silent_server():
    """A server that accepts every connection and never sends a byte; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


class FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, but answers 503 to the first ``failures`` GETs of each path."""

    failures = 0
    counts: dict[str, int] = {}

    def do_GET(self) -> None:
        seen = self.counts.get(self.path, 0)
        self.counts[self.path] = seen + 1
        if seen < self.failures:
            self.send_error(503, "Service Unavailable")
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server(tmp_path):
    """Yields (served folder, URL, handler class); set ``handler.failures``."""
    root = tmp_path / "served"
    root.mkdir()
    handler = type("Handler", (FlakyHandler,), {"counts": {}, "failures": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def jpeg(path: Path) -> bytes:
    Image.fromarray(np.full((40, 60, 3), 90, np.uint8)).save(path)
    return path.read_bytes()


def write_md(path: Path, files: list[str]) -> Path:
    data = {
        "info": {"detector": DET},
        "detection_categories": {"1": "animal"},
        "images": [{"file": f, "detections": BOX} for f in files],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_silent_server_times_out_and_the_image_fails(silent_server, tmp_path):
    md = write_md(tmp_path / "md.json", ["a.jpg"])
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "crop",
            str(md),
            str(tmp_path / "crops"),
            "--container-url",
            silent_server,
            "--timeout",
            "0.2",
            "--logdir",
            str(tmp_path),
        ],
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 3, result.output  # its only image failed: nothing worked
    (log,) = tmp_path.glob("crop_detections_log_*.json")
    assert result.output.splitlines()[-1].startswith("Error: all 1 images failed (first: a.jpg: download failed: ")
    reasons = json.loads(log.read_text())["failure_reasons"]
    assert reasons == {"a.jpg": f"download failed: {silent_server}/a.jpg: timed out (no answer within --timeout)"}
    assert elapsed < 5  # 3 tries of 0.2 s and a little backoff, not forever


def test_transient_errors_are_retried_then_succeed(flaky_server, tmp_path):
    root, url, handler = flaky_server
    handler.failures = 2
    data = jpeg(root / "a.jpg")
    assert fetch_bytes(f"{url}/a.jpg", timeout=5) == data
    assert handler.counts == {"/a.jpg": 3}

    handler.failures = 2
    jpeg(root / "b.jpg")
    md = write_md(tmp_path / "md.json", ["b.jpg"])
    result = CliRunner().invoke(
        cli, ["-q", "crop", str(md), str(tmp_path / "crops"), "--container-url", url, "--logdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1 crops written, 0 existed, 0 images failed")
    assert Image.open(tmp_path / "crops" / f"b.jpg___crop00_{DET}.jpg").size == (30, 20)


def test_retries_are_bounded_and_permanent_errors_are_not_retried(flaky_server):
    root, url, handler = flaky_server
    handler.failures = 10
    jpeg(root / "a.jpg")
    with pytest.raises(ImageLoadError, match=r"download failed: .*/a.jpg: HTTP 503 Service Unavailable$"):
        fetch_bytes(f"{url}/a.jpg", timeout=5)
    assert handler.counts["/a.jpg"] == 3  # the first try and two retries
    handler.failures = 0
    with pytest.raises(ImageLoadError, match=r"^not found at .*/missing.jpg$"):
        fetch_bytes(f"{url}/missing.jpg", timeout=5)
    assert handler.counts["/missing.jpg"] == 1


def test_with_retries_backs_off_exponentially(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    calls = []

    def attempt() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise TimeoutError("timed out")
        return "done"

    assert with_retries(attempt, what="x", retries=3, backoff=0.5) == "done"
    assert sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (urllib.error.URLError(ConnectionRefusedError()), True),
        (urllib.error.HTTPError("u", 503, "x", {}, None), True),
        (urllib.error.HTTPError("u", 429, "x", {}, None), True),
        (urllib.error.HTTPError("u", 404, "x", {}, None), False),
        (urllib.error.URLError("unknown url type"), False),
        (ValueError(), False),
    ],
)
def test_is_transient(error, transient):
    assert is_transient(error) is transient


def test_download_times_out_on_a_silent_server(silent_server, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "-q",
            "download",
            "idfg-classifier",
            "--output-dir",
            str(tmp_path),
            "--base-url",
            silent_server + "/",
            "--timeout",
            "0.2",
            "--no-check",
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {silent_server}/idfg_classifier/")
    assert result.output.endswith(
        ": timed out (no answer within --timeout); check the connection and run download again\n"
    )


def test_download_retries_transient_errors(flaky_server, tmp_path):
    root, url, handler = flaky_server
    handler.failures = 2
    folder = root / "idfg_classifier" / "idfg_classifier_20200905_042558"
    folder.mkdir(parents=True)
    (folder / "idfg_classifier_ckpt_14_compiled.pt").write_bytes(b"model bytes")
    (folder / "label_index.json").write_text('{"0": "deer"}')
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["-q", "download", "idfg-classifier", "--output-dir", str(out), "--base-url", url + "/", "--no-check"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "idfg_classifier_ckpt_14_compiled.pt").read_bytes() == b"model bytes"
    assert sorted(handler.counts.values()) == [3, 3]
