"""The HTML report in a real headless browser: Debian's Chromium driven by Playwright.

Skips where no Chromium (or no ``playwright`` package) is present; fails instead
when ``MEGACLASSIFIER_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets).
``MEGACLASSIFIER_CHROMIUM`` points at another Chromium binary.

What each thumbnail shows is read back from the page (a screenshot of the
``<img>`` element, shown at its natural size: the pixels Chromium decoded) and
compared with the crop of its box, as in ``test_report_real``.
``MEGACLASSIFIER_SCREENSHOTS=DIR`` keeps the pages' screenshots there (the
documentation's pictures are taken so).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from report_data import DEMO_DATA, EXPECTED, write_classified_demo
from test_report_real import MAX_MEAN_DIFF, THRESHOLD, mean_diff, reference_crop

from megaclassifier.crop import crop_detections
from megaclassifier.formats.naming import crop_filename
from megaclassifier.report import write_report
from megaclassifier.report.html import image_page_name

CHROMIUM = os.environ.get("MEGACLASSIFIER_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MEGACLASSIFIER_REQUIRE_BROWSER") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--allow-file-access-from-files"]  # fmt: skip


#: The pixels Chromium decoded for an <img>, as a lossless PNG data URL's base64 (readable from
#: ``file://`` pages with --allow-file-access-from-files, which keeps the canvas untainted).
DECODED_PIXELS = """i => { const c = document.createElement('canvas'); c.width = i.naturalWidth;
  c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0);
  return c.toDataURL('image/png').split(',')[1]; }"""


def _unavailable(message: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(message + "; MEGACLASSIFIER_REQUIRE_BROWSER=1 makes the browser test mandatory")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium (Debian's package), or a skip with the reason."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MEGACLASSIFIER_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def keep_screenshot(page, name: str, tmp_path: Path, **options: object) -> Path:  # noqa: ANN001
    """Screenshot ``page`` as PNG (into $MEGACLASSIFIER_SCREENSHOTS when set, else ``tmp_path``)."""
    folder = Path(os.environ.get("MEGACLASSIFIER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), **options)
    assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return folder / name


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    classified = write_classified_demo(tmp / "classified.json")
    write_report(classified, tmp / "report", images_dir=DEMO_DATA / "images", num_workers=2)
    return tmp / "report"


def test_index_species_page_thumbnails_and_image(browser, report_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page()
    page.goto((report_dir / "index.html").as_uri())
    rows = page.eval_on_selector_all(
        "#species tbody tr",
        "rows => rows.map(r => [r.dataset.species, +r.querySelector('.detections').textContent,"
        " +r.querySelector('.images').textContent])",
    )
    assert rows == [[name, *numbers[:2]] for name, numbers in EXPECTED.items()]
    assert page.locator("#species svg.hist").count() == len(EXPECTED)

    page.click("#species a:text-is('elephant')")
    page.wait_for_load_state("load")
    assert page.url.endswith("/species/001-elephant/page-0001.html")
    widths = page.eval_on_selector_all(".grid img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 12
    assert all(w > 0 for w in widths), widths
    assert page.locator("figure.review").count() == 4
    keep_screenshot(page, "demo-species-page.png", tmp_path, full_page=True)

    page.click(".grid a >> nth=0")  # the first flagged crop: its image with every box drawn, its box marked
    page.wait_for_load_state("load")
    page.wait_for_function("document.getElementById('photo').complete")
    assert page.url.endswith(image_page_name("african_elephants.jpg") + "#d5")
    assert page.eval_on_selector("#photo", "i => i.naturalWidth") == 640
    photo = page.locator("#photo").bounding_box()
    box = page.locator("#d5").bounding_box()
    assert box["x"] == pytest.approx(photo["x"] + 0.3403 * photo["width"], abs=1.5)
    assert box["width"] == pytest.approx(0.08349 * photo["width"], abs=1.5)
    assert page.text_content("#d5 span") == "elephant 0.55 #5"
    assert page.eval_on_selector("#d5", "b => getComputedStyle(b).borderTopColor") == "rgb(255, 255, 0)"  # :target
    assert page.locator(".box").count() == 6
    page.close()


@pytest.fixture(scope="module")
def real_report_dir(cameratrap: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The report of the full-size photos at threshold 0.01 (all 15 elephants), and crop's files."""
    tmp = tmp_path_factory.mktemp("browser_real")
    crop_detections(cameratrap / "detections.json", tmp / "crops", images_dir=cameratrap / "images",
                    square_crops=True, threshold=THRESHOLD, threads=2, logdir=tmp)  # fmt: skip
    write_report(cameratrap / "detections.json", tmp / "report", images_dir=cameratrap / "images",
                 threshold=THRESHOLD, num_workers=2)  # fmt: skip
    return tmp / "report", tmp / "crops"


@pytest.mark.testdata
def test_every_thumbnail_shows_the_crop_of_its_box(browser, real_report_dir, cameratrap: Path, tmp_path) -> None:  # noqa: ANN001
    """Each <img> on every species page, as Chromium shows it, against crop's file of that box."""
    report, crops = real_report_dir
    md = json.loads((cameratrap / "detections.json").read_text())
    page = browser.new_page(device_scale_factor=1)
    checked, diffs = 0, {}
    for species_page in sorted((report / "species").rglob("page-*.html")):
        page.goto(species_page.as_uri())
        page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        figures = page.locator("figure")
        for n in range(figures.count()):
            figure = figures.nth(n)
            file, index = re.fullmatch(r"(.+) #(\d+)", figure.locator(".note").text_content()).groups()
            img = figure.locator("img")
            size = img.evaluate("i => [i.naturalWidth, i.naturalHeight, i.width, i.height]")
            assert size[:2] == size[2:], size  # shown at its natural size: the screenshot is its pixels
            shown = Image.open(io.BytesIO(base64.b64decode(img.evaluate(DECODED_PIXELS)))).convert("RGB")
            assert shown.size == tuple(size[:2])
            crop_file = crops / crop_filename(file, int(index), "md_v5a.0.0.pt")
            crop = Image.open(crop_file) if crop_file.is_file() else None
            if crop is None:  # person and vehicle boxes: crop writes animals only
                bbox = next(im for im in md["images"] if im["file"] == file)["detections"][int(index)]["bbox"]
                crop = reference_crop(cameratrap / "images", file, tuple(bbox))
            diffs[(file, int(index))] = mean_diff(shown, crop)
            checked += 1
    assert checked == 85
    wrong = {key: round(d, 1) for key, d in diffs.items() if d >= MAX_MEAN_DIFF}
    assert wrong == {}, f"{len(wrong)} of {checked} thumbnails on the pages differ from their crop: {wrong}"
    page.close()


@pytest.mark.testdata
def test_the_photo_with_15_boxes_shows_15_boxes(browser, real_report_dir, tmp_path) -> None:  # noqa: ANN001
    report, _ = real_report_dir
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((report / image_page_name("african_elephants.jpg")).as_uri())
    page.wait_for_function("document.getElementById('photo').complete")
    boxes = page.locator(".box")
    assert boxes.count() == 15
    photo = page.locator("#photo").bounding_box()
    labels = [boxes.nth(i).locator("span").text_content() for i in range(15)]
    assert labels[0] == "animal 0.94 #0" and labels[14] == "animal 0.01 #14"
    assert all(boxes.nth(i).is_visible() for i in range(15))
    first = boxes.nth(0).bounding_box()
    assert first["x"] == pytest.approx(photo["x"] + 0.7041 * photo["width"], abs=1.5)
    assert first["y"] == pytest.approx(photo["y"] + 0.4765 * photo["height"], abs=1.5)
    assert first["width"] == pytest.approx(0.1108 * photo["width"], abs=1.5)
    keep_screenshot(page, "image-page.png", tmp_path)
    page.goto((report / "index.html").as_uri())
    keep_screenshot(page, "index.png", tmp_path, full_page=True)
    page.close()
