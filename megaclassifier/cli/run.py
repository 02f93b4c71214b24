"""``megaclassifier run``: click wiring for :func:`megaclassifier.run.run_pipeline`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.classify import _device_option, _model_argument
from megaclassifier.constants import DEFAULT_MERGE_THRESHOLD, DEFAULT_TIMEOUT, EFFICIENTNET_NATIVE_SIZE
from megaclassifier.engines.devices import BACKENDS, DEVICE_HELP, PRECISIONS

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("detections_json", type=_FILE)
@click.argument("model", callback=_model_argument)
@click.option("-o", "--output-json", type=_OUT, required=True, help="The merged MegaDetector results file.")
@click.option("-i", "--images-dir", type=click.Path(file_okay=False, path_type=Path), help="Local root of the images.")
@click.option("--container-url", help="fsspec URL to fetch images not found locally (as crop).")
@click.option("--detector-version", help="Detector name when the JSON has no info.detector (as crop).")
@click.option("-t", "--threshold", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Classify animal boxes with conf >= THRESHOLD (crop's --threshold).")
@click.option("--square-crops", is_flag=True, help="Square crops, as crop --square-crops.")
@click.option("-c", "--classifier-categories", type=_FILE,
              help="The model's index-to-name JSON (default: a downloaded model's own, else 0..N-1).")
@click.option("--target-mapping", type=_FILE, help="Sum classes into targets first (aggregate's mapping JSON).")
@click.option("--output-csv", type=_OUT, help="Also write the probability CSV that classify would write.")
@click.option("--save-crops", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the crop files that crop would write, under this folder.")
@click.option("-n", "--classifier-name", help="info.classifier (default: the model file name without suffix).")
@click.option("--classification-threshold", type=click.FloatRange(0, 1), default=DEFAULT_MERGE_THRESHOLD,
              show_default=True, help="Keep classes with p >= this (merge's --threshold).")
@click.option("--typical-confidence-threshold", "--typical-classification-threshold",
              "typical_classification_threshold", type=click.FloatRange(0, 1),
              help="Written to info.classifier_metadata.typical_classification_threshold.")
@click.option("--max-classifications", type=click.IntRange(min=1), help="Keep at most K classes per detection.")
@click.option("--image-size", type=click.IntRange(min=1),
              help="Input side in pixels (default: the architecture's native size, else 224).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Crops per batch.")
@click.option("--num-workers", type=click.IntRange(min=0),
              help="Image-decoding processes (0: in the main process). Default: 1 when the model runs on the CPU "
                   "(the cores go to inference), else one per CPU but one, up to 32 (decoding sets the pace).")
@click.option("--device", default="auto", show_default=True, callback=_device_option, help=DEVICE_HELP)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16 needs CUDA; bf16 runs on CUDA or the CPU (torch backend).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: ONNX Runtime for fp32 on the CPU, else torch.")
@click.option("--arch", type=click.Choice(list(EFFICIENTNET_NATIVE_SIZE)),
              help="EfficientNet variant of a checkpoint (default: inferred from its weights).")
@click.option("--jpeg-roundtrip/--no-jpeg-roundtrip", default=True, show_default=True,
              help="Pass each crop through JPEG quality 75 in memory, as the chain's crop files do "
                   "(identical probabilities to the chain); off is a little faster.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds an http(s) server may take to connect or send more data (as crop).")
@click.option("--allow-outside-images-dir", is_flag=True,
              help="Read relative file paths that lead out of --images-dir (as crop).")
@click.option("--logdir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder for run_log_YYYYMMDD_HHMMSS.json (failed images and why).")
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Crop, classify and merge in one pass: MegaDetector JSON in, classified JSON out.

    Replaces crop + classify (+ aggregate) + merge with the same answers, without
    writing crop files; each image is decoded once.

    \b
    Example:
      megaclassifier run md.json megaclassifier-v0.1 --images-dir photos/ --square-crops \\
          --threshold 0.15 --target-mapping idfg_to_megaclassifier_labels.json \\
          --output-json md_classified.json --classification-threshold 0.05
    """
    from megaclassifier.run import run_pipeline

    result = run_pipeline(**options, progress=show_progress(ctx))
    crop = result.crop
    summary(
        f"{result.classified} crops classified ({result.crops_per_second:.1f} crops/s, {result.engine}), "
        f"{result.merged} detections merged, {crop.failed_images} images failed"
        f"{f', {len(crop.invalid_boxes)} boxes invalid' if crop.invalid_boxes else ''}: "
        f"wrote {result.output_json}; see {crop.log_path}"
    )
