"""``megaclassifier report``: click wiring for :func:`megaclassifier.report.write_report`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.options import images_dir_option, review_threshold_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@images_dir_option(required=True)
@review_threshold_option
@click.option(
    "--review-below",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Flag for review the detections whose score is below this.",
)
@click.option(
    "--margin",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Flag for review the detections whose top two classes are closer than this.",
)
@click.option(
    "--num-workers",
    type=click.IntRange(min=1),
    default=min(4, os.cpu_count() or 1),
    show_default="min(4, CPUs)",
    help="Processes that make thumbnails.",
)
@click.pass_context
def report(ctx: click.Context, **options: object) -> None:
    """Write a static HTML report of a results file, with thumbnails of its crops.

    OUT_DIR/index.html lists the species (top classes; detection categories
    for a file without classifications) with counts, mean and median
    confidence and a histogram, and the deployments (image folders) with
    their images, blank images and species counts; each species has pages of
    thumbnails, the ones to review first, each linking to its image with
    every box drawn and labelled; an image list gives each image's species.
    Thumbnails are cut from the full-size images as crop --square-crops cuts
    them, and kept in OUT_DIR, so a second run is quick. Images that cannot
    be read are listed and counted; the report goes on.

    \b
    Example:
      megaclassifier report final.json report/ --images-dir photos/
    """
    from megaclassifier.report import write_report

    result = write_report(**options, progress=show_progress(ctx))  # type: ignore[arg-type]
    summary(
        f"Report of {result.detections} detections, {result.species} species on {result.pages} pages, "
        f"{result.deployments} deployments, {result.blank_images} blank images "
        f"({result.thumbnails_made} thumbnails made, {result.thumbnails_cached} reused, "
        f"{result.failed_images} images failed): {result.index}"
    )
