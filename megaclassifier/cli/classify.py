"""``megaclassifier classify``: click wiring for :func:`megaclassifier.classify.classify_crops`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.model_options import crop_reader_options, model_argument, refuse_speciesnet_flags
from megaclassifier.cli.option_types import OUTPUT_FILE
from megaclassifier.cli.options import COMMAND_SETTINGS, categories_option, restart_option


@click.command(context_settings=COMMAND_SETTINGS)
@model_argument()
@click.argument("crops_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("output", type=OUTPUT_FILE)
@categories_option(reference_short_flag=True)
@crop_reader_options(backend=True)
@restart_option
@click.pass_context
def classify(ctx: click.Context, **options: Any) -> None:
    """Classify crops and write a probability CSV (path, then one column per class).

    MODEL is a TorchScript file (as megaclassifier_v0.1_efficientnet-b3_compiled.pt),
    an EfficientNet checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt), a SpeciesNet
    release folder (each crop stretched to 480 x 480 as SpeciesNet does), or the
    name of a downloaded model (megaclassifier-v0.1, idfg-classifier, speciesnet-v4.0.2a).
    OUTPUT ending in .gz is gzipped. Unreadable crops are reported and get no row. An interrupted
    run leaves OUTPUT.journal; the same command again continues from it (--restart: start afresh).

    \b
    Example:
      megaclassifier classify megaclassifier_v0.1_efficientnet-b3_compiled.pt crops/ probs.csv.gz \\
          --detections-json md.json --classifier-categories megaclassifier_v0.1_index_to_name.json
    """
    from megaclassifier.classify import classify_crops

    refuse_speciesnet_flags(ctx, options["model"])
    result = classify_crops(**options, progress=show_progress(ctx))
    arch = f"{result.arch}, " if result.arch else ""
    unreadable = f" ({result.failed} unreadable, no row)" if result.failed else ""
    summary(
        f"{result.classified} of {result.crops} crops classified{unreadable} into {result.output} "
        f"[{arch}{result.image_size} px, {result.backend} {result.precision} on {result.device}] "
        f"in {result.seconds:.1f} s ({result.crops_per_second:.1f} crops/s, model loading included)"
    )
