"""``download`` against an HTTP server on 127.0.0.1: files, resume, atomic completion, model check, names."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import invoke
from models import B0_CLASSES, TINY_NAMES

from megaclassifier.cli import cli
from megaclassifier.errors import DownloadError
from megaclassifier.models.download import download_model

MC = "megaclassifier/v0.1/"
IDFG = "idfg_classifier/idfg_classifier_20200905_042558/"


class Server(http.server.ThreadingHTTPServer):
    """Serves ``root`` with byte ranges; ``cut`` maps a URL path to a byte count after which to hang up once."""

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/models/"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        rel = self.path.removeprefix("/models/")
        self.server.requests.append((rel, self.headers.get("Range")))
        path = self.server.root / rel
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match[1])
            if start >= len(data):
                self.send_error(416, "Range Not Satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = self.server.cut.pop(rel, None)
        if cut is not None:
            self.wfile.write(data[start:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path, tiny_model, b0_checkpoint, b0_torchscript):
    root = tmp_path / "www" / "models"
    (root / MC).mkdir(parents=True)
    (root / IDFG).mkdir(parents=True)
    shutil.copy(b0_torchscript, root / MC / "megaclassifier_v0.1_efficientnet-b3_compiled.pt")
    shutil.copy(b0_checkpoint, root / MC / "megaclassifier_v0.1_efficientnet-b3.pt")
    names = {str(i): f"class {i}" for i in range(B0_CLASSES)}
    (root / MC / "megaclassifier_v0.1_index_to_name.json").write_text(json.dumps(names))
    mapping = {"deer": ["class 0", "class 1"], "other": ["class 2", "class 3", "class 4"]}
    (root / MC / "idfg_to_megaclassifier_labels.json").write_text(json.dumps(mapping))
    shutil.copy(tiny_model, root / IDFG / "idfg_classifier_ckpt_14_compiled.pt")
    (root / IDFG / "label_index.json").write_text(json.dumps(dict(enumerate(TINY_NAMES))))
    srv = Server(root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_download_megaclassifier(server, tmp_path):
    out = tmp_path / "mc"
    result = invoke("download", "megaclassifier-v0.1", "--output-dir", out, "--base-url", server.base)
    assert result.exit_code == 0, result.output
    files = [
        "megaclassifier_v0.1_efficientnet-b3_compiled.pt",
        "megaclassifier_v0.1_efficientnet-b3.pt",
        "megaclassifier_v0.1_index_to_name.json",
        "idfg_to_megaclassifier_labels.json",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(files)
    for name in files:
        assert (out / name).read_bytes() == (server.root / MC / name).read_bytes()
    size = sum((out / n).stat().st_size for n in files)
    assert result.output == (
        f"megaclassifier-v0.1: 4 files in {out} (4 fetched, {size / 1e6:.1f} MB); "
        f"the model loads ({B0_CLASSES} classes)\n"
    )
    again = invoke("download", "megaclassifier-v0.1", "--output-dir", out, "--base-url", server.base)
    assert again.output == f"megaclassifier-v0.1: 4 files in {out} (0 fetched, 0.0 MB); the model loads (5 classes)\n"


def test_interrupted_download_resumes(server, tmp_path):
    name = "idfg_classifier_ckpt_14_compiled.pt"
    full = (server.root / IDFG / name).read_bytes()
    server.cut[IDFG + name] = 1000
    out = tmp_path / "idfg"
    with pytest.raises(DownloadError, match=r"run download again to resume$"):
        download_model("idfg-classifier", output_dir=out, base_url=server.base, retries=0)
    assert not (out / name).exists()  # never under its final name while incomplete
    assert (out / f"{name}.part").stat().st_size == 1000
    summary = download_model("idfg-classifier", output_dir=out, base_url=server.base)
    assert (out / name).read_bytes() == full
    assert not (out / f"{name}.part").exists()
    assert (IDFG + name, "bytes=1000-") in server.requests
    assert summary.bytes_fetched == len(full) - 1000 + (out / "label_index.json").stat().st_size
    assert summary.num_classes == len(TINY_NAMES)


def test_a_file_that_does_not_load_is_deleted(server, tmp_path):
    (server.root / IDFG / "idfg_classifier_ckpt_14_compiled.pt").write_bytes(b"<html>moved</html>")
    out = tmp_path / "idfg"
    result = invoke("download", "idfg-classifier", "--output-dir", out, "--base-url", server.base)
    assert result.exit_code == 1
    model = out / "idfg_classifier_ckpt_14_compiled.pt"
    assert result.output == (
        f"Error: {model}: downloaded, but unusable (not a PyTorch model file (neither TorchScript nor a torch.save "
        "checkpoint)); deleted it, run download again\n"
    )
    assert not model.exists()


def test_model_that_does_not_fit_its_class_names(server, tmp_path):
    (server.root / IDFG / "label_index.json").write_text(json.dumps({"0": "deer", "1": "elk"}))
    with pytest.raises(DownloadError, match=r"unusable \(the model has 4 outputs but the class names file has 2\)"):
        download_model("idfg-classifier", output_dir=tmp_path / "x", base_url=server.base)


def test_http_error(server, tmp_path):
    (server.root / IDFG / "label_index.json").unlink()
    result = invoke("download", "idfg-classifier", "--output-dir", tmp_path / "x", "--base-url", server.base)
    assert result.exit_code == 1
    assert result.output == f"Error: {server.base}{IDFG}label_index.json: HTTP 404 Not Found\n"


def test_unreachable_server(tmp_path):
    result = invoke("download", "idfg-classifier", "--output-dir", tmp_path, "--base-url", "http://127.0.0.1:9/")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: http://127.0.0.1:9/{IDFG}idfg_classifier_ckpt_14_compiled.pt: ")
    assert result.output.endswith("; check the connection and run download again\n")


def test_unknown_name_is_a_usage_error():
    result = invoke("download", "megadetector")
    assert result.exit_code == 2
    assert "'megadetector' is not one of 'megaclassifier-v0.1', 'idfg-classifier'" in result.output


def test_downloaded_name_works_in_classify(server, tmp_path, monkeypatch, real_crops):
    monkeypatch.setenv("MEGACLASSIFIER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MEGACLASSIFIER_DOWNLOAD_BASE_URL", server.base)
    monkeypatch.chdir(tmp_path)
    assert invoke("download", "idfg-classifier").exit_code == 0
    folder = tmp_path / "cache" / "models" / "idfg-classifier"
    assert sorted(p.name for p in folder.iterdir()) == ["idfg_classifier_ckpt_14_compiled.pt", "label_index.json"]
    out = tmp_path / "probs.csv"
    result = CliRunner().invoke(cli, ["classify", "idfg-classifier", str(real_crops), str(out), "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    assert f"class names from {folder / 'label_index.json'}" in result.output
    assert "image size 300 px (the size idfg-classifier was trained at)" in result.output
    assert out.read_text().splitlines()[0] == "path," + ",".join(TINY_NAMES)
