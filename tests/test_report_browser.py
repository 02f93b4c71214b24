"""The HTML report in a real headless browser: Debian's Chromium driven by Playwright.

Skips where no Chromium (or no ``playwright`` package) is present; fails instead
when ``MEGACLASSIFIER_REQUIRE_BROWSER=1`` (as ``.ci/run`` sets).
``MEGACLASSIFIER_CHROMIUM`` points at another Chromium binary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_data import DEMO_DATA, EXPECTED, write_classified_demo

from megaclassifier.report import write_report

CHROMIUM = os.environ.get("MEGACLASSIFIER_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("MEGACLASSIFIER_REQUIRE_BROWSER") == "1"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


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
    shot = tmp_path / "elephant-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.click(".grid a >> nth=0")  # the first flagged crop: its image with the box drawn
    page.wait_for_load_state("load")
    page.wait_for_function("document.getElementById('photo').complete")
    assert page.eval_on_selector("#photo", "i => i.naturalWidth") == 640
    photo = page.locator("#photo").bounding_box()
    box = page.locator("#box").bounding_box()
    assert box["x"] == pytest.approx(photo["x"] + 0.3403 * photo["width"], abs=1.5)
    assert box["width"] == pytest.approx(0.08349 * photo["width"], abs=1.5)
    assert page.text_content("#label") == "elephant 0.55 in african_elephants.jpg"
    page.screenshot(path=str(tmp_path / "image-page.png"))
    page.close()
