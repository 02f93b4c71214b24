"""``megaclassifier download``: click wiring for :func:`megaclassifier.models.download.download_model`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.options import timeout_option
from megaclassifier.models.registry import KNOWN_MODELS


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", type=click.Choice(list(KNOWN_MODELS)))
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the files. Default: the user cache folder, where commands find a model by name.",
)
@click.option("--force", is_flag=True, help="Fetch again files that are already there.")
@click.option(
    "--no-check",
    "check",
    is_flag=True,
    default=True,
    flag_value=False,
    help="Do not load the model after downloading it.",
)
@click.option(
    "--base-url",
    metavar="URL",
    help="URL base replacing https://lila.science/public/models/ (a mirror); also MEGACLASSIFIER_DOWNLOAD_BASE_URL.",
)
@timeout_option
@click.pass_context
def download(ctx: click.Context, **options: Any) -> None:
    """Download a published classifier: model, checkpoint and class names.

    \b
    megaclassifier-v0.1  MegaClassifier v0.1 (EfficientNet-B3, 169 classes): compiled
                         model, checkpoint, index-to-name JSON, IDFG mapping JSON
    idfg-classifier      Idaho Fish and Game classifier: compiled model, label index

    Interrupted downloads resume; each file appears only once complete; the
    model is loaded once to check it. Afterwards, commands accept NAME in
    place of a model path.

    \b
    Example:
      megaclassifier download megaclassifier-v0.1
      megaclassifier classify megaclassifier-v0.1 crops/ probs.csv.gz --detections-json md.json
    """
    from megaclassifier.models.download import download_model

    result = download_model(**options, progress=show_progress(ctx))
    checked = f"; the model loads ({result.num_classes} classes)" if result.num_classes is not None else ""
    summary(
        f"{result.name}: {len(result.files)} files in {result.output_dir} ({result.fetched} fetched, "
        f"{result.bytes_fetched / 1e6:.1f} MB){checked}"
    )
