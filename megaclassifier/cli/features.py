"""``megaclassifier features``: click wiring for :func:`megaclassifier.classify.extract_features`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.model_options import crop_reader_options, model_argument, refuse_speciesnet_flags
from megaclassifier.cli.option_types import OUTPUT_FILE
from megaclassifier.cli.options import COMMAND_SETTINGS


def _output_argument(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    if not value.name.lower().endswith((".npz", ".csv", ".csv.gz")):
        raise click.BadParameter(f"'{value}' must end in .npz, .csv or .csv.gz", ctx, param)
    return value


@click.command(context_settings=COMMAND_SETTINGS)
@model_argument("checkpoint")
@click.argument("crops_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=OUTPUT_FILE, callback=_output_argument)
@crop_reader_options(backend=False)
@click.pass_context
def features(ctx: click.Context, **options: Any) -> None:
    """Write each crop's embedding: the EfficientNet's pooled final features.

    These are the inputs of the classifier's last layer (1536 values for
    MegaClassifier's EfficientNet-B3), as the reference README computes them.
    CHECKPOINT is an EfficientNet checkpoint (megaclassifier_v0.1_efficientnet-b3.pt),
    a TorchScript model whose last layer is linear, a SpeciesNet release folder, or a
    downloaded model's name.
    OUTPUT is .npz (arrays "paths" and "features", float32) or .csv / .csv.gz
    (path,0,1,...). Crops are found and preprocessed as by classify.

    \b
    Example:
      megaclassifier features megaclassifier_v0.1_efficientnet-b3.pt crops/ features.npz --detections-json md.json
    """
    from megaclassifier.classify import extract_features

    refuse_speciesnet_flags(ctx, options["checkpoint"])
    result = extract_features(**options, progress=show_progress(ctx))
    unreadable = f" ({result.failed} unreadable, no row)" if result.failed else ""
    summary(
        f"{result.feature_size} features of {result.extracted} of {result.crops} crops{unreadable} "
        f"written to {result.output} [{result.image_size} px on {result.device}]"
    )
