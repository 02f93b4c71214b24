"""Folders named the Windows way (``siteA\\cam1``) work wherever a folder is named.

In a results file's ``file`` entries (crop, run, export, merge ``--datasets``), in
``deployments.csv`` of ``export --format camtrap-dp``, and in ``merge -d``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from megaclassifier.cli import cli
from megaclassifier.formats.results_table import folder_key, image_folder

FILES = ["siteA\\cam1\\a.jpg", "siteA\\cam1\\b.jpg", "siteB/cam2/c.jpg"]


def _photos(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "photos"
    for i, file in enumerate(FILES):
        path = images.joinpath(*file.replace("\\", "/").split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        exif = Image.Exif()
        exif[0x0132] = f"2024:05:0{i + 1} 10:00:00"  # DateTime
        Image.new("RGB", (64, 48), (40 * i, 90, 120)).save(path, exif=exif)
    results = {
        "info": {"format_version": "1.4", "detector": "md_v5a"},
        "detection_categories": {"1": "animal"},
        "images": [
            {"file": f, "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.5, 0.5]}]} for f in FILES
        ],
    }
    md = tmp_path / "md.json"
    md.write_text(json.dumps(results), encoding="utf-8")
    return md, images


def _invoke(*args: object) -> str:
    result = CliRunner().invoke(cli, ["-q", *(str(a) for a in args)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("siteA\\cam1", "siteA/cam1"),
        ("siteA\\cam1\\", "siteA/cam1"),
        (".\\siteA/cam1/", "siteA/cam1"),
        ("siteA//cam1", "siteA/cam1"),
        ("", "."),
        (".", "."),
        ("\\", "."),
        ("/data/cam1", "/data/cam1"),
    ],
)
def test_folder_key_reads_backslash_folders(text: str, key: str) -> None:
    assert folder_key(text) == key


def test_folder_key_matches_image_folder() -> None:
    for file in FILES:
        assert folder_key(image_folder(file)) == image_folder(file)
    assert [image_folder(f) for f in FILES] == ["siteA/cam1", "siteA/cam1", "siteB/cam2"]


def test_camtrap_deployments_csv_with_backslash_folders(tmp_path: Path) -> None:
    md, images = _photos(tmp_path)
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("folder,latitude,longitude\nsiteA\\cam1,1.5,2.5\nsiteB\\cam2\\,3.5,4.5\n", encoding="utf-8")
    out = tmp_path / "package"
    printed = _invoke("export", md, out, "--format", "camtrap-dp", "--images-dir", images, "--deployments",
                      deployments, "--contributor", "J", "--utc-offset", "+01:00")  # fmt: skip
    assert "2 deployments, 3 media, 3 observations" in printed
    with (out / "deployments.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["deploymentID"], r["latitude"], r["longitude"]) for r in rows] == [
        ("siteA/cam1", "1.5", "2.5"),
        ("siteB/cam2", "3.5", "4.5"),
    ]
    with (out / "media.csv").open(encoding="utf-8") as f:
        media = list(csv.DictReader(f))
    assert sorted((m["deploymentID"], m["filePath"]) for m in media) == [
        ("siteA/cam1", "siteA/cam1/a.jpg"),
        ("siteA/cam1", "siteA/cam1/b.jpg"),
        ("siteB/cam2", "siteB/cam2/c.jpg"),
    ]


def test_crop_and_export_read_backslash_files_under_images_dir(tmp_path: Path) -> None:
    md, images = _photos(tmp_path)
    crops = tmp_path / "crops"
    printed = _invoke("crop", md, crops, "--images-dir", images, "--logdir", tmp_path)
    assert printed.startswith("3 crops written, 0 existed, 0 images failed")
    assert sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.jpg")) == [
        "siteA/cam1/a.jpg___crop00_md_v5a.jpg",
        "siteA/cam1/b.jpg___crop00_md_v5a.jpg",
        "siteB/cam2/c.jpg___crop00_md_v5a.jpg",
    ]
    table = tmp_path / "detections.csv"
    _invoke("export", md, table, "--format", "csv", "--images-dir", images)
    with table.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["file"], r["folder"], r["datetime"]) for r in rows] == [
        ("siteA\\cam1\\a.jpg", "siteA/cam1", "2024-05-01T10:00:00"),
        ("siteA\\cam1\\b.jpg", "siteA/cam1", "2024-05-02T10:00:00"),
        ("siteB/cam2/c.jpg", "siteB/cam2", "2024-05-03T10:00:00"),
    ]


def test_merge_datasets_with_backslash_files(tmp_path: Path) -> None:
    md, _ = _photos(tmp_path)
    probs = tmp_path / "probs.csv"
    probs.write_text(
        "path,deer,elk\n" + "".join(f"{f}___crop00_md_v5a.jpg,0.75,0.25\n" for f in FILES), encoding="utf-8"
    )
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"0": "deer", "1": "elk"}), encoding="utf-8")
    out = tmp_path / "merged.json"
    _invoke("merge", probs, index, "-o", out, "-n", "m", "-j", md, "-d", "siteA\\")
    merged = json.loads(out.read_text(encoding="utf-8"))
    assert [im["file"] for im in merged["images"]] == FILES[:2]
    assert [im["detections"][0]["classifications"] for im in merged["images"]] == [[["0", 0.75], ["1", 0.25]]] * 2


def test_report_reads_backslash_files_under_images_dir(tmp_path: Path) -> None:
    md, images = _photos(tmp_path)
    printed = _invoke("report", md, tmp_path / "report", "--images-dir", images)
    # the backslash folder siteA\\cam1 and siteB/cam2: two deployments
    assert (
        "Report of 3 detections, 1 species on 1 pages, 2 deployments, 0 blank images "
        "(3 thumbnails made, 0 reused, 0 images failed)" in printed
    )


def test_sequences_match_files_whatever_their_separators(tmp_path: Path) -> None:
    from megaclassifier.postprocess.sequences import sequences_from_cct

    cct = tmp_path / "cct.json"
    names = ["siteA/cam1/a.jpg", "siteA/cam1/b.jpg", "siteB\\cam2\\c.jpg"]
    cct.write_text(json.dumps({"images": [{"file_name": n, "seq_id": n[:5]} for n in names]}), encoding="utf-8")
    sequences = sequences_from_cct(cct, FILES, results="md.json")
    assert not sequences.not_in_file and not sequences.missing_from_results
    assert sequences.count == 2
    assert sorted(sequences.of.values()) == [(0, 0), (0, 1), (1, 0)]
