"""``megaclassifier classify``: click wiring for :func:`megaclassifier.classify.classify_crops`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.constants import EFFICIENTNET_NATIVE_SIZE
from megaclassifier.hardware import BACKENDS, DEVICE_HELP, PRECISIONS, parse_device
from megaclassifier.models.registry import KNOWN_MODELS

DEFAULT_BATCH_SIZE = 32  # megaclassifier.classify.loader.DEFAULT_BATCH_SIZE, without importing it


def _model_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in KNOWN_MODELS or Path(value).is_file():
        return value
    if Path(value).is_dir():
        raise click.BadParameter(f"{value!r} is a folder; expected a model file", ctx, param)
    names = ", ".join(KNOWN_MODELS)
    raise click.BadParameter(f"{value!r} is neither a file nor a published model name ({names})", ctx, param)


def _device_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_device(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None
    return value


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``classify`` and ``features``: crop discovery, size, loading, device."""
    options = [
        click.option("-d", "--detections-json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Use the crops of this MegaDetector file, in its order; default: every image "
                          "file below CROPS_DIR, sorted."),
        click.option("--image-size", type=click.IntRange(min=1),
                     help="Input side in pixels. Default: the architecture's native size when it is recognised "
                          "(EfficientNet-B3: 300), else 224."),
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
                     help="Crops per batch."),
        click.option("--num-workers", type=click.IntRange(min=0),
                     help="Crop-reading worker processes (0: read in the main process). Default: on a GPU "
                          "min(8, CPUs); on the CPU only the CPUs inference leaves free (hyper-threads), at most 2."),
        click.option("--device", default="auto", show_default=True, callback=_device_option,
                     help=f"{DEVICE_HELP}; auto is CUDA when available."),
        click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
                     help="fp16 needs CUDA; bf16 runs on CUDA or the CPU (torch backend)."),
        click.option("--arch", type=click.Choice(list(EFFICIENTNET_NATIVE_SIZE)),
                     help="EfficientNet variant of a checkpoint (default: inferred from its weights)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("model", callback=_model_argument)
@click.argument("crops_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-c", "--classifier-categories", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='Index-to-name JSON ({"0": "name", ...}) for the column names; default "0".."N-1" '
                   "(a published model's own names when MODEL is its name).")
@common_options
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: ONNX Runtime for fp32 on the CPU (exported once, cached beside the model), else torch.")
@click.pass_context
def classify(ctx: click.Context, **options: Any) -> None:
    """Classify crops and write a probability CSV (path, then one column per class).

    MODEL is a TorchScript file (as megaclassifier_v0.1_efficientnet-b3_compiled.pt),
    an EfficientNet checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt), or the
    name of a downloaded model (megaclassifier-v0.1, idfg-classifier). OUTPUT ending
    in .gz is gzipped. Unreadable crops are reported and get no row.

    \b
    Example:
      megaclassifier classify megaclassifier_v0.1_efficientnet-b3_compiled.pt crops/ probs.csv.gz \\
          --detections-json md.json --classifier-categories megaclassifier_v0.1_index_to_name.json
    """
    from megaclassifier.classify import classify_crops

    result = classify_crops(**options, progress=show_progress(ctx))
    arch = f"{result.arch}, " if result.arch else ""
    unreadable = f" ({result.failed} unreadable, no row)" if result.failed else ""
    summary(
        f"{result.classified} of {result.crops} crops classified{unreadable} into {result.output} "
        f"[{arch}{result.image_size} px, {result.backend} {result.precision} on {result.device}] "
        f"in {result.seconds:.1f} s ({result.crops_per_second:.1f} crops/s, model loading included)"
    )
