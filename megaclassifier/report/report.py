"""``report``: a static HTML site of a results file, with thumbnails of its crops.

Reads the output of ``merge`` or ``run``, or a plain MegaDetector file (then
the species are the detection categories). Writes::

    OUT_DIR/index.html            species table: detections, images, mean and median confidence,
                                  flagged for review, confidence histogram; deployments; failed images
    OUT_DIR/species/NNN-name/page-0001.html ...   PAGE_SIZE thumbnails a page
    OUT_DIR/deployments/page-0001.html ...        per folder: images, blank images, species counts
    OUT_DIR/images/page-0001.html ...             per image: its species list
    OUT_DIR/images/3f/3fa2c1d09e8b7a65.html       an image with every box drawn (thumbnails link here)
    OUT_DIR/thumbs/, previews/    JPEGs, kept for the next run
    OUT_DIR/report_log.json       {"images_failed": {"cam1/broken.jpg": "... not an image file"}, ...}

An image that cannot be read is recorded in the log and on the index, and
counted; the report goes on.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from megaclassifier.formats.atomic import atomic_output, write_json_atomic
from megaclassifier.formats.results_table import DEFAULT_DETECTION_THRESHOLD, ResultsTable, read_results_table
from megaclassifier.report.html import (
    LIST_PAGE_SIZE,
    PAGE_SIZE,
    deployments_page,
    image_page,
    image_page_name,
    images_page,
    index_page,
    page_name,
    species_page,
)
from megaclassifier.report.stats import (
    DeploymentStats,
    ImageSummary,
    SpeciesStats,
    deployment_stats,
    image_summaries,
    species_stats,
)
from megaclassifier.report.thumbs import plan_jobs, remove_stale_files, run_jobs

logger = logging.getLogger(__name__)

#: Default score under which a detection is flagged for review.
DEFAULT_REVIEW_BELOW = 0.5
#: Default gap between the top two classes under which a detection is flagged.
DEFAULT_MARGIN = 0.1


@dataclass
class ReportSummary:
    """What a ``report`` run did."""

    index: Path
    species: int = 0
    detections: int = 0
    images: int = 0
    blank_images: int = 0
    deployments: int = 0
    pages: int = 0
    image_pages: int = 0
    thumbnails_made: int = 0
    thumbnails_cached: int = 0
    stale_files_removed: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def failed_images(self) -> int:
        return len(self.failures)


def write_report(
    results_json: str | Path,
    out_dir: str | Path,
    *,
    images_dir: str | Path,
    threshold: float = DEFAULT_DETECTION_THRESHOLD,
    review_below: float = DEFAULT_REVIEW_BELOW,
    margin: float = DEFAULT_MARGIN,
    num_workers: int = 1,
    progress: bool = False,
) -> ReportSummary:
    """Write the HTML report of ``results_json`` into ``out_dir``.

    Args:
        results_json: output of ``merge`` or ``run``, or a MegaDetector file.
        out_dir: the report folder (created; thumbnails in it are reused).
        images_dir: where the images named in the results are.
        threshold: detections below this confidence are left out.
        review_below: flag detections whose score is below this.
        margin: flag detections whose top two classes are closer than this.
        num_workers: processes that make thumbnails.
        progress: show a tqdm bar while thumbnails are made.

    Raises:
        InputFileError: ``results_json`` is not a MegaDetector results file.
    """
    table = read_results_table(results_json, threshold=threshold)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ReportSummary(out / "index.html", images=len(table.images), detections=len(table.rows))
    summary.failures.update(table.failures)
    _make_thumbnails(table, out, Path(images_dir), summary, num_workers=num_workers, progress=progress)
    species = species_stats(table.rows, review_below=review_below, margin=margin)
    links = _write_species_pages(species, out, summary)
    images = image_summaries(table.images, table.rows)
    deployments = deployment_stats(images)
    first_images = _write_image_pages(images, deployments, out, summary)
    summary.blank_images, summary.deployments = sum(image.blank for image in images), len(deployments)
    summary.stale_files_removed = remove_stale_files(out, table.rows)
    (out / "view.html").unlink(missing_ok=True)  # the single-box viewer of earlier versions
    write_json_atomic(out / "report_log.json", _log(summary, table))
    with atomic_output(summary.index) as f:
        f.write(index_page(species, links, _facts(table, summary), summary.failures, deployments, first_images))
    summary.species = len(species)
    return summary


def _make_thumbnails(
    table: ResultsTable, out: Path, images_dir: Path, summary: ReportSummary, *, num_workers: int, progress: bool
) -> None:
    jobs, summary.thumbnails_cached = plan_jobs(table.rows, out)
    from tqdm import tqdm

    results = run_jobs(jobs, out, images_dir, num_workers=num_workers)
    for file, written, failure in tqdm(results, total=len(jobs), unit="image", desc="thumbnails", disable=not progress):
        summary.thumbnails_made += written
        if failure is not None:
            summary.failures[file] = failure
            logger.warning("%s: %s", file, failure)


def _slug(i: int, name: str) -> str:
    return f"{i:03d}-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")[:40]


def _write_species_pages(species: list[SpeciesStats], out: Path, summary: ReportSummary) -> list[str]:
    """Write every species' pages (the old species folder is replaced); return each first page's link."""
    shutil.rmtree(out / "species", ignore_errors=True)
    links = []
    for i, stats in enumerate(species, 1):
        folder = out / "species" / _slug(i, stats.name)
        folder.mkdir(parents=True)
        pages = max(1, -(-stats.detections // PAGE_SIZE))
        for page_no in range(1, pages + 1):
            (folder / page_name(page_no)).write_text(
                species_page(stats, page_no, pages, summary.failures), encoding="utf-8"
            )
        summary.pages += pages
        links.append(f"species/{folder.name}/{page_name(1)}")
    return links


def _write_image_pages(
    images: list[ImageSummary], deployments: list[DeploymentStats], out: Path, summary: ReportSummary
) -> list[int]:
    """Write the image list, each image's page and the deployment list (old ones replaced).

    Returns:
        For each deployment, the position of its first image in the list.
    """
    for folder in ("images", "deployments"):
        shutil.rmtree(out / folder, ignore_errors=True)
        (out / folder).mkdir()
    for n, image in enumerate(images):
        if image.rows:
            path = out / image_page_name(image.file)
            path.parent.mkdir(exist_ok=True)
            path.write_text(image_page(image, n, summary.failures.get(image.file)), encoding="utf-8")
            summary.image_pages += 1
    pages = max(1, -(-len(images) // LIST_PAGE_SIZE))
    for page_no in range(1, pages + 1):
        (out / "images" / page_name(page_no)).write_text(
            images_page(images, page_no, pages, summary.failures), encoding="utf-8"
        )
    first_images, position = [], 0
    for stats in deployments:
        first_images.append(position)
        position += stats.images
    pages = max(1, -(-len(deployments) // LIST_PAGE_SIZE))
    for page_no in range(1, pages + 1):
        (out / "deployments" / page_name(page_no)).write_text(
            deployments_page(deployments, first_images, page_no, pages), encoding="utf-8"
        )
    return first_images


def _facts(table: ResultsTable, summary: ReportSummary) -> dict[str, str]:
    return {
        "title": f"Report of {table.path.name}",
        "classifier": table.classifier or "none (detections only)",
        "detector": table.detector or "not named",
        "images": str(summary.images),
        "detections": str(summary.detections),
        "blank images (no detection at the threshold)": str(summary.blank_images),
        "deployments (folders)": str(summary.deployments),
        "images that could not be read": str(summary.failed_images),
    }


def _log(summary: ReportSummary, table: ResultsTable) -> dict[str, object]:
    return {
        "results": str(table.path),
        "images": summary.images,
        "detections": summary.detections,
        "blank_images": summary.blank_images,
        "deployments": summary.deployments,
        "thumbnails_made": summary.thumbnails_made,
        "thumbnails_cached": summary.thumbnails_cached,
        "stale_files_removed": summary.stale_files_removed,
        "images_failed": summary.failures,
    }
