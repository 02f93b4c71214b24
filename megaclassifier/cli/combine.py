"""``megaclassifier combine``: click wiring for :func:`megaclassifier.cluster.combine.combine_shards`."""

from __future__ import annotations

from pathlib import Path

import click

from megaclassifier.cli._common import summary
from megaclassifier.cli.option_types import INPUT_FILE, OUTPUT_FILE
from megaclassifier.cli.options import COMMAND_SETTINGS


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("output_json", type=OUTPUT_FILE)
@click.argument("shards", nargs=-1, required=True, type=INPUT_FILE)
def combine(output_json: Path, shards: tuple[Path, ...]) -> None:
    """Merge the outputs of `run --shard I/N` into one results file, as one `run` writes it.

    Checks that the shards come from the same detections file, model and options,
    and that each image is in exactly one of them.

    \b
    Example:
      megaclassifier combine md_classified.json shards/md_classified_*.json
    """
    from megaclassifier.cluster.combine import combine_shards

    result = combine_shards(output_json, shards)
    summary(f"{result.images} images from {result.shards} shards: wrote {result.output_json}")
