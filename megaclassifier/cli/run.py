"""``megaclassifier run``: click wiring for :func:`megaclassifier.run.run_pipeline`."""

from __future__ import annotations

from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.options import (
    COMMAND_SETTINGS,
    FOLDER,
    INPUT_FILE,
    OUTPUT_FILE,
    categories_option,
    crop_options,
    engine_options,
    logdir_option,
    merge_info_options,
    model_argument,
    restart_option,
    smooth_settings,
    smoothing_options,
    target_mapping_option,
    taxonomy_option,
)

#: ``run``'s ``--num-workers``: these processes decode whole photos.
DECODER_WORKERS_HELP = (
    "Image-decoding processes (0: in the main process). Default: 1 when the model runs on the CPU "
    "(the cores go to inference), else one per CPU but one, up to 32 (decoding sets the pace)."
)


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("detections_json", type=INPUT_FILE)
@model_argument()
@crop_options(reference_short_flags=False)
@categories_option(reference_short_flag=False)
@target_mapping_option(required=False)
@merge_info_options(name_required=False, threshold_flags=("--classification-threshold",))
@click.option("--output-csv", type=OUTPUT_FILE, help="Also write the probability CSV that classify would write.")
@click.option("--save-crops", type=FOLDER, help="Also write the crop files that crop would write, under this folder.")
@engine_options(workers_help=DECODER_WORKERS_HELP)
@click.option(
    "--jpeg-roundtrip/--no-jpeg-roundtrip",
    default=True,
    show_default=True,
    help="Pass each crop through JPEG quality 75 in memory, as the chain's crop files do "
    "(identical probabilities to the chain); off is a little faster.",
)
@taxonomy_option
@smoothing_options(level_flag="--smooth")
@logdir_option
@restart_option
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Crop, classify and merge in one pass: MegaDetector JSON in, classified JSON out.

    Replaces crop + classify (+ aggregate) + merge (+ smooth) with the same answers,
    without writing crop files; each image is decoded once. An interrupted run leaves
    OUTPUT_JSON.journal; the same command again continues from it (--restart: start afresh).

    \b
    Example:
      megaclassifier run md.json megaclassifier-v0.1 --images-dir photos/ --square-crops \\
          --threshold 0.15 --target-mapping idfg_to_megaclassifier_labels.json \\
          --output-json md_classified.json --classification-threshold 0.05 --smooth sequence
    """
    from megaclassifier.run import RunOptions, run_pipeline

    smooth = smooth_settings(ctx, options, images_dir=options["images_dir"], level_flag="--smooth")
    detections_json, model = options.pop("detections_json"), options.pop("model")
    result = run_pipeline(detections_json, model, RunOptions(**options, smooth=smooth), progress=show_progress(ctx))
    crop = result.crop
    smoothed = result.postprocessed
    summary(
        f"{result.classified} crops classified ({result.crops_per_second:.1f} crops/s, {result.engine}), "
        f"{result.merged} detections merged"
        f"{f', {smoothed.detections_changed} relabelled by smoothing' if smoothed is not None else ''}, "
        f"{crop.failed_images} images failed"
        f"{f', {len(crop.invalid_boxes)} boxes invalid' if crop.invalid_boxes else ''}: "
        f"wrote {result.output_json}; see {crop.log_path}"
    )
