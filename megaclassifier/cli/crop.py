"""``megaclassifier crop``: click wiring for :func:`megaclassifier.crop.crop_detections`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.option_types import INPUT_FILE
from megaclassifier.cli.options import COMMAND_SETTINGS, crop_options, logdir_option


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("detections_json", type=INPUT_FILE)
@click.argument("crops_dir", type=click.Path(file_okay=False, path_type=Path))
@crop_options(reference_short_flags=True)
@click.option("--save-full-images", is_flag=True, help="Keep each fetched image under --images-dir.")
@click.option("--check-crops-valid", is_flag=True, help="Re-open existing crops and regenerate broken ones.")
@click.option(
    "-n",
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Decoding threads; each image is decoded once for all its boxes.",
)
@logdir_option
@click.pass_context
def crop(ctx: click.Context, **options: Any) -> None:
    """Crop the animal boxes of a MegaDetector results file into JPEGs.

    Crops are named CROPS_DIR/{file}___crop{i:02d}_{detector}.jpg. Existing
    crops are kept, so an interrupted run resumes. Images that fail are
    recorded in the log (crop_detections_log_YYYYMMDD_HHMMSS.json) and
    counted; the run goes on.

    \b
    Example:
      megaclassifier crop md.json crops/ --images-dir photos/ --square-crops --threshold 0.15 --threads 4
    """
    from megaclassifier.crop import crop_detections

    result = crop_detections(**options, progress=show_progress(ctx))
    line = f"{result.new_crops} crops written, {result.existing_crops} existed, {result.failed_images} images failed"
    if result.invalid_boxes:
        line += f", {len(result.invalid_boxes)} boxes invalid"
    if result.new_downloads:
        line += f", {result.new_downloads} images downloaded"
    summary(f"{line}: see {result.log_path}")
