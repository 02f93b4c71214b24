"""Tests of ``megaclassifier report``: numbers, pages, thumbnails, cache, bad images (no browser here)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from report_data import DEMO_DATA, EXPECTED, demo_detections, write_classified_demo

from megaclassifier.cli import cli
from megaclassifier.crop.geometry import crop_box, extract_crop
from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.report import write_report
from megaclassifier.report.html import PAGE_SIZE
from megaclassifier.report.stats import flag_reason, histogram
from megaclassifier.report.thumbs import thumb_name

IMAGES = DEMO_DATA / "images"


def species_rows(index: Path) -> dict[str, tuple]:
    """species -> (detections, images, mean, median, flagged) as the index shows them."""
    html = index.read_text()
    out = {}
    pattern = (
        r'<tr data-species="([^"]+)">.*?class="detections">(\d+)<.*?class="images">(\d+)<.*?'
        r'class="mean">([\d.]+)<.*?class="median">([\d.]+)<.*?class="review">(\d+)<'
    )
    for name, det, img, mean, median, flagged in re.findall(pattern, html):
        out[name] = (int(det), int(img), float(mean), float(median), int(flagged))
    return out


@pytest.fixture
def classified(tmp_path: Path) -> Path:
    return write_classified_demo(tmp_path / "classified.json")


def test_report_numbers_pages_and_thumbnails(classified: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    summary = write_report(classified, out, images_dir=IMAGES, num_workers=2)
    assert (summary.species, summary.detections, summary.images, summary.pages) == (6, 19, 8, 6)
    assert (summary.thumbnails_made, summary.thumbnails_cached, summary.failed_images) == (19, 0, 0)
    assert species_rows(out / "index.html") == EXPECTED
    assert list(species_rows(out / "index.html")) == ["elephant", "cattle", "bear", "dog", "ocelot", "person"]
    assert sorted(p.relative_to(out).as_posix() for p in (out / "species").rglob("*.html")) == [
        "species/001-elephant/page-0001.html", "species/002-cattle/page-0001.html",
        "species/003-bear/page-0001.html", "species/004-dog/page-0001.html",
        "species/005-ocelot/page-0001.html", "species/006-person/page-0001.html",
    ]  # fmt: skip
    assert len(list((out / "thumbs").rglob("*.jpg"))) == 19
    assert len(list((out / "previews").rglob("*.jpg"))) == 7  # blank.jpg has no detection
    assert json.loads((out / "report_log.json").read_text())["images_failed"] == {}


def test_flagged_first_then_by_score(classified: Path, tmp_path: Path) -> None:
    write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    page = (tmp_path / "r/species/001-elephant/page-0001.html").read_text()
    scores = re.findall(r"<figcaption><b>([\d.]+)</b>", page)
    assert (
        scores == ["0.550", "0.550", "0.400", "0.400"] + ["0.950"] * 2 + ["0.900"] * 2 + ["0.850"] * 2 + ["0.800"] * 2
    )
    assert page.count('<figure class="review">') == 4
    assert page.count("review: close second: cattle 0.50") == 2
    assert page.count("review: low confidence") == 2


def test_thumbnail_is_the_exif_correct_square_crop(classified: Path, tmp_path: Path) -> None:
    """The EXIF-rotated copy of a photo gives the thumbnail of the upright photo; the stored pixels would not."""
    write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    images = demo_detections()["images"]
    upright, rotated = images[1], images[2]
    assert (upright["file"], rotated["file"]) == (
        "african_elephants.jpg",
        "african_elephants_with_exif_orientation.jpg",
    )

    def thumb(image: dict) -> np.ndarray:
        det = image["detections"][0]
        row = DetectionRow(image["file"], 0, "animal", det["conf"], tuple(det["bbox"]))
        return np.asarray(Image.open(tmp_path / "r" / thumb_name(row)), dtype=float)

    a, b = thumb(upright), thumb(rotated)
    assert a.shape == b.shape == (70, 70, 3)  # a 70x60 px box of a 640x480 view, squared
    stored = Image.open(IMAGES / rotated["file"]).convert("RGB")  # ignoring EXIF: the wrong region
    box = crop_box(rotated["detections"][0]["bbox"], *stored.size, square=True)
    wrong = np.asarray(extract_crop(stored, box).resize(a.shape[1::-1]), dtype=float)
    assert np.abs(a - b).mean() < 12.0  # two JPEGs of the same scene, boxes a pixel apart
    assert np.abs(a - wrong).mean() > 3 * np.abs(a - b).mean()


def test_rerun_reuses_thumbnails(classified: Path, tmp_path: Path) -> None:
    write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    again = write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    assert (again.thumbnails_made, again.thumbnails_cached) == (0, 19)


def test_plain_megadetector_file_shows_detection_categories(tmp_path: Path) -> None:
    summary = write_report(DEMO_DATA / "detections.json", tmp_path / "r", images_dir=IMAGES, num_workers=1)
    rows = species_rows(tmp_path / "r/index.html")
    assert {name: row[:2] for name, row in rows.items()} == {"animal": (18, 6), "person": (1, 1)}
    assert summary.species == 2
    assert "classifier: <b>none (detections only)</b>" in (tmp_path / "r/index.html").read_text()


def test_bad_images_are_recorded_not_fatal(classified: Path, tmp_path: Path) -> None:
    images = Path(shutil.copytree(IMAGES, tmp_path / "images"))
    (images / "ocelot.jpg").write_bytes(b"not a jpeg")
    (images / "domestic_dog.jpg").unlink()
    result = CliRunner().invoke(
        cli, ["-q", "report", str(classified), str(tmp_path / "r"), "--images-dir", str(images)]
    )
    assert result.exit_code == 0, result.output
    assert "17 thumbnails made, 0 reused, 2 images failed" in result.output
    log = json.loads((tmp_path / "r/report_log.json").read_text())
    assert sorted(log["images_failed"]) == ["domestic_dog.jpg", "ocelot.jpg"]
    assert log["images_failed"]["domestic_dog.jpg"] == f"image not found under {images}"
    index = (tmp_path / "r/index.html").read_text()
    assert "Images that could not be read (2)" in index
    assert "image unreadable" in (tmp_path / "r/species/005-ocelot/page-0001.html").read_text()


def test_pages_of_page_size(tmp_path: Path) -> None:
    """450 detections of one species: 3 pages of 200, 200 and 50 thumbnails, linked by a pager."""
    boxes = [{"category": "1", "conf": 0.9, "bbox": [i / 500, 0.1, 0.2, 0.3]} for i in range(450)]
    data = {"detection_categories": {"1": "animal"}, "images": [{"file": "ocelot.jpg", "detections": boxes}]}
    (tmp_path / "big.json").write_text(json.dumps(data))
    summary = write_report(tmp_path / "big.json", tmp_path / "r", images_dir=IMAGES, num_workers=2)
    folder = tmp_path / "r/species/001-animal"
    assert sorted(p.name for p in folder.iterdir()) == ["page-0001.html", "page-0002.html", "page-0003.html"]
    counts = [(folder / f"page-000{n}.html").read_text().count("<figure") for n in (1, 2, 3)]
    assert counts == [PAGE_SIZE, PAGE_SIZE, 50]
    assert '<a href="page-0002.html">2</a>' in (folder / "page-0001.html").read_text()
    assert (summary.pages, summary.thumbnails_made) == (3, 450)


def test_not_a_results_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    result = CliRunner().invoke(cli, ["report", str(bad), str(tmp_path / "r"), "--images-dir", str(IMAGES)])
    assert result.exit_code == 1
    assert result.output == f"Error: {bad}: top level is list, not a JSON object; is this a MegaDetector output file?\n"
    assert not (tmp_path / "r" / "index.html").exists()


@pytest.mark.parametrize(
    ("top", "second", "reason"),
    [(0.45, None, "low confidence"), (0.6, 0.55, "close second: elk 0.55"), (0.6, 0.5, None), (0.9, None, None)],
)
def test_flag_reason(top: float, second: float | None, reason: str | None) -> None:
    row = DetectionRow("a.jpg", 0, "animal", 0.9, (0, 0, 1, 1), "deer", top, "elk" if second else None, second)
    assert flag_reason(row, review_below=0.5, margin=0.1) == reason


def test_histogram_bins() -> None:
    assert histogram([0.0, 0.05, 0.1, 0.55, 0.99, 1.0]) == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]


def test_report_of_run_output(tiny_model: Path, tiny_categories: Path, tmp_path: Path) -> None:
    """`run`'s output: one species row per top class, with the counts its JSON holds."""
    merged = tmp_path / "run.json"
    args = ["-q", "run", DEMO_DATA / "detections.json", tiny_model, "--images-dir", IMAGES, "--threshold", "0.15",
            "--square-crops", "--output-json", merged, "--classifier-categories", tiny_categories,
            "--logdir", tmp_path]  # fmt: skip
    result = CliRunner().invoke(cli, list(map(str, args)))
    assert result.exit_code == 0, result.output
    data = json.loads(merged.read_text())
    expected: dict[str, int] = {}
    for image in data["images"]:
        for det in image["detections"]:
            if det["conf"] >= 0.15:
                name = (
                    data["classification_categories"][det["classifications"][0][0]]
                    if "classifications" in det
                    else "person"
                )
                expected[name] = expected.get(name, 0) + 1
    assert sum(expected.values()) == 19
    write_report(merged, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    assert {name: row[0] for name, row in species_rows(tmp_path / "r/index.html").items()} == expected


def test_report_and_export_never_import_torch_or_pandas_for_help(tmp_path: Path) -> None:
    """`report` itself runs without torch; `export --help` without pandas."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        f"for args in (['export', '--help'], ['-q', 'report', {str(DEMO_DATA / 'detections.json')!r},"
        f" {str(tmp_path / 'r')!r}, '--images-dir', {str(IMAGES)!r}, '--num-workers', '1']):\n"
        "    try:\n"
        "        cli.main(args, prog_name='megaclassifier')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"
    assert (tmp_path / "r" / "index.html").is_file()


def test_a_new_thumbnail_recipe_redoes_the_cache(classified: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Thumbnails made by an older recipe (version 1 cut boxes from a shrunk image) are not reused."""
    from megaclassifier.report import thumbs

    monkeypatch.setattr(thumbs, "THUMB_RECIPE", 1)
    old = write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    row = DetectionRow("ocelot.jpg", 0, "animal", 0.9, (0.1, 0.2, 0.3, 0.4))
    old_name = thumb_name(row)
    monkeypatch.setattr(thumbs, "THUMB_RECIPE", 2)
    assert thumb_name(row) != old_name
    again = write_report(classified, tmp_path / "r", images_dir=IMAGES, num_workers=1)
    assert (old.thumbnails_made, again.thumbnails_made, again.thumbnails_cached) == (19, 19, 0)
    assert again.stale_files_removed == 19 + 7  # recipe 1's thumbnails and previews are gone
    assert len(list((tmp_path / "r/thumbs").rglob("*.jpg"))) == 19


def two_folder_results(tmp_path: Path) -> tuple[Path, Path]:
    """The classified demo with its images in two folders: camA (elephants, blank) and camB (the rest)."""
    data = json.loads(write_classified_demo(tmp_path / "c.json").read_text())
    images = tmp_path / "images"
    for image in data["images"]:
        folder = "camA" if image["file"].startswith(("african_elephants", "blank")) else "camB"
        (images / folder).mkdir(parents=True, exist_ok=True)
        (images / folder / image["file"]).symlink_to(IMAGES / image["file"])
        image["file"] = f"{folder}/{image['file']}"
    (tmp_path / "two.json").write_text(json.dumps(data))
    return tmp_path / "two.json", images


def table_rows(html: str, table: str) -> list[list[str]]:
    """The text of each body row's cells of ``<table id|class=table>``."""
    body = re.search(rf"<table (?:id|class)='{table}'>.*?<tbody>(.*?)</tbody>", html, re.S)
    assert body is not None, table
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body.group(1), re.S)
    return [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)] for row in rows]


def test_deployments_blanks_and_species_per_image(tmp_path: Path) -> None:
    results, images = two_folder_results(tmp_path)
    summary = write_report(results, tmp_path / "r", images_dir=images, num_workers=1)
    assert (summary.deployments, summary.blank_images, summary.image_pages) == (2, 1, 7)
    expected = [
        ["camA", "3", "1", "12", "elephant 12"],
        ["camB", "5", "0", "7", "cattle 3, bear 1, dog 1, ocelot 1, person 1"],
    ]
    index = (tmp_path / "r/index.html").read_text()
    assert table_rows(index, "deployments") == expected
    assert "blank images (no detection at the threshold): <b>1</b>" in index
    assert table_rows((tmp_path / "r/deployments/page-0001.html").read_text(), "deployments") == expected
    assert table_rows((tmp_path / "r/images/page-0001.html").read_text(), "images") == [
        ["camA/african_elephants.jpg", "camA", "6", "elephant 6"],
        ["camA/african_elephants_with_exif_orientation.jpg", "camA", "6", "elephant 6"],
        ["camA/blank.jpg", "camA", "0", "blank"],
        ["camB/american_black_bear.jpg", "camB", "1", "bear 1"],
        ["camB/domestic_cattle.jpg", "camB", "3", "cattle 3"],
        ["camB/domestic_dog.jpg", "camB", "1", "dog 1"],
        ["camB/human.jpg", "camB", "1", "person 1"],
        ["camB/ocelot.jpg", "camB", "1", "ocelot 1"],
    ]
    assert 'href="images/page-0001.html#i3">camB</a>' in index  # camB's first image is row 3


def test_image_page_draws_every_box_with_its_label(tmp_path: Path) -> None:
    from megaclassifier.report.html import image_page_name

    results, images = two_folder_results(tmp_path)
    write_report(results, tmp_path / "r", images_dir=images, num_workers=1)
    html = (tmp_path / "r" / image_page_name("camB/domestic_cattle.jpg")).read_text()
    boxes = re.findall(r'<div class="box[^"]*" id="(d\d+)" style="([^"]+)" data-label="([^"]+)">', html)
    data = json.loads(results.read_text())
    cattle = next(im for im in data["images"] if im["file"] == "camB/domestic_cattle.jpg")
    assert [(box_id, label) for box_id, _, label in boxes] == [
        ("d0", "cattle 0.70 #0"), ("d1", "cattle 0.60 #1"), ("d2", "cattle 0.30 #2"),
    ]  # fmt: skip
    x, y, w, h = cattle["detections"][0]["bbox"]
    assert boxes[0][1] == f"left:{100 * x:.3f}%;top:{100 * y:.3f}%;width:{100 * w:.3f}%;height:{100 * h:.3f}%"
    assert '<span id="species-list">cattle 3</span>' in html
    species = (tmp_path / "r/species/002-cattle/page-0001.html").read_text()
    assert f'href="../../{image_page_name("camB/domestic_cattle.jpg")}#d0"' in species


def test_many_deployments_index_shows_the_first_and_pages_hold_all(tmp_path: Path) -> None:
    """1,203 folders: 50 on the index with a link to all, 500 a page on 3 deployment pages."""
    from megaclassifier.report.html import DEPLOYMENTS_ON_INDEX, LIST_PAGE_SIZE

    box = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}
    images = [{"file": f"site{i:04d}/x.jpg", "detections": [box] if i % 3 else []} for i in range(1203)]
    (tmp_path / "many.json").write_text(json.dumps({"detection_categories": {"1": "animal"}, "images": images}))
    summary = write_report(tmp_path / "many.json", tmp_path / "r", images_dir=tmp_path, num_workers=1)
    assert (summary.deployments, summary.blank_images, summary.failed_images) == (1203, 401, 802)  # no such images
    index = (tmp_path / "r/index.html").read_text()
    assert len(table_rows(index, "deployments")) == DEPLOYMENTS_ON_INDEX
    assert "<a href='deployments/page-0001.html'>all 1203</a>" in index
    pages = [table_rows((tmp_path / f"r/deployments/page-000{n}.html").read_text(), "deployments") for n in (1, 2, 3)]
    assert [len(rows) for rows in pages] == [LIST_PAGE_SIZE, LIST_PAGE_SIZE, 203]
    assert pages[2][-1] == ["site1202", "1", "0", "1", "animal 1"]
    assert pages[0][0] == ["site0000", "1", "1", "0", "blank"]
    last_page = (tmp_path / "r/deployments/page-0003.html").read_text()
    assert 'href="../images/page-0003.html#i1202">site1202</a>' in last_page
