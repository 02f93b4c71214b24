"""``megaclassifier crop``: click wiring for :func:`megaclassifier.crop.crop_detections`."""

from __future__ import annotations

from pathlib import Path

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.constants import DEFAULT_TIMEOUT


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("detections_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("crops_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-i", "--images-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Local root folder of the images (also where --save-full-images writes).")
@click.option("-c", "--container-url",
              help="fsspec URL (https://, s3://, gs://, az://, file://) to fetch images not found locally.")
@click.option("-v", "--detector-version",
              help="Detector name for crop file names when the JSON has no info.detector.")
@click.option("--save-full-images", is_flag=True, help="Keep each fetched image under --images-dir.")
@click.option("--square-crops", is_flag=True, help="Square crops (the geometry MegaClassifier was trained on).")
@click.option("--check-crops-valid", is_flag=True, help="Re-open existing crops and regenerate broken ones.")
@click.option("-t", "--threshold", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Crop animal boxes with conf >= THRESHOLD.")
@click.option("-n", "--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Decoding threads; each image is decoded once for all its boxes.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds an http(s) server may take to connect or send more data; transient errors "
                   "are retried twice, then the image fails.")
@click.option("--allow-outside-images-dir", is_flag=True,
              help="Read relative file paths that lead out of --images-dir (../x.jpg); refused by default.")
@click.option("--logdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder for crop_detections_log_YYYYMMDD_HHMMSS.json.")
@click.pass_context
def crop(ctx: click.Context, **options: object) -> None:
    """Crop the animal boxes of a MegaDetector results file into JPEGs.

    Crops are named CROPS_DIR/{file}___crop{i:02d}_{detector}.jpg. Existing
    crops are kept, so an interrupted run resumes. Images that fail are
    recorded in the log and counted; the run goes on.

    \b
    Example:
      megaclassifier crop md.json crops/ --images-dir photos/ --square-crops --threshold 0.15 --threads 4
    """
    from megaclassifier.crop import crop_detections

    result = crop_detections(**options, progress=show_progress(ctx))  # type: ignore[arg-type]
    line = f"{result.new_crops} crops written, {result.existing_crops} existed, {result.failed_images} images failed"
    if result.invalid_boxes:
        line += f", {len(result.invalid_boxes)} boxes invalid"
    if result.new_downloads:
        line += f", {result.new_downloads} images downloaded"
    summary(f"{line}: see {result.log_path}")
