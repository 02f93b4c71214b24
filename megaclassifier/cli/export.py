"""``megaclassifier export``: click wiring for :func:`megaclassifier.export.export_results`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from megaclassifier.cli._common import summary
from megaclassifier.cli.options import images_dir_option, review_threshold_option, taxonomy_option

if TYPE_CHECKING:
    from megaclassifier.export import ExportSummary

_CAMTRAP_ONLY = ("deployments", "contributor", "project_title", "utc_offset", "taxonomy")


def _offset(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"Z|[+-](0\d|1[0-4]):[0-5]\d", value):
        raise click.BadParameter(f"{value!r} is not a UTC offset like +02:00, -05:00 or Z")
    return value


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("results_json", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "-f",
    "--format",
    "format_",
    required=True,
    type=click.Choice(["csv", "xlsx", "camtrap-dp", "speciesnet"]),
    help="csv: OUT and OUT_images.csv; xlsx: one workbook; camtrap-dp: a package folder OUT; speciesnet: "
    "SpeciesNet 5.0.6's predictions.json OUT.",
)
@images_dir_option(required=False)
@review_threshold_option
@click.option(
    "--deployments",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="camtrap-dp: CSV folder,latitude,longitude[,locationName,utc_offset,...], one row per image folder.",
)
@click.option(
    "--contributor", multiple=True, help="camtrap-dp: a contributor's name (repeat; the first is the contact)."
)
@click.option("--project-title", help="camtrap-dp: project and package title  [default: RESULTS_JSON's name]")
@click.option(
    "--utc-offset",
    callback=_offset,
    help="camtrap-dp: UTC offset of the cameras' clocks (+hh:mm) for EXIF times without one, in folders "
    "without a utc_offset in --deployments.",
)
@taxonomy_option
@click.pass_context
def export(ctx: click.Context, results_json: Path, out: Path, format_: str, images_dir: Path | None,
           threshold: float, **camtrap: object) -> None:  # fmt: skip
    """Export a results file as CSV or XLSX tables, a Camtrap DP 1.0 package or SpeciesNet's predictions.json.

    csv and xlsx: one row per detection (file, folder, EXIF capture time,
    detection confidence, box, top class and score, second class and score)
    and one row per image and species. camtrap-dp: datapackage.json,
    deployments.csv (one per image folder), media.csv and observations.csv;
    it needs --images-dir, --deployments and --contributor, and images without
    an EXIF capture time are left out (and counted). scientificName comes from
    the file's classification_category_descriptions, else --taxonomy.
    speciesnet: SpeciesNet 5.0.6's predictions.json (format_version 20261015),
    every box, most confident first, each classified box with its
    raw_classifications and processed_classification (the first of its
    classifications, source its classification_source, else "classifier");
    --images-dir is written before each file as its filepath. RESULTS_JSON may
    itself be a SpeciesNet predictions.json (5.0.6 or older), as for every
    command that reads results.

    \b
    Examples:
      megaclassifier export final.json detections.csv --format csv --images-dir photos/
      megaclassifier export final.json results.xlsx --format xlsx --images-dir photos/
      megaclassifier export final.json package/ --format camtrap-dp --images-dir photos/ \\
          --deployments deployments.csv --contributor "Jane Doe" --utc-offset +02:00
      megaclassifier export final.json predictions.json --format speciesnet --images-dir /data/photos
    """
    from megaclassifier.export import CamtrapOptions, export_results

    options = None
    if format_ == "camtrap-dp":
        for name, flag in (("deployments", "--deployments"), ("contributor", "--contributor")):
            if not camtrap[name]:
                raise click.UsageError(f"--format camtrap-dp needs {flag}")
        if images_dir is None:
            raise click.UsageError("--format camtrap-dp needs --images-dir: media need EXIF capture times")
        title = camtrap["project_title"] or results_json.stem
        options = CamtrapOptions(camtrap["deployments"], camtrap["contributor"], title,  # type: ignore[arg-type]
                                 camtrap["utc_offset"], camtrap["taxonomy"])  # type: ignore[arg-type]  # fmt: skip
    else:
        given = [f"--{name.replace('_', '-')}" for name in _CAMTRAP_ONLY if camtrap[name]]
        if given:
            raise click.UsageError(f"{', '.join(given)}: only with --format camtrap-dp")
    if format_ == "speciesnet" and ctx.get_parameter_source("threshold") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--threshold: not with --format speciesnet, which writes every box")
    result = export_results(results_json, out, format=format_, images_dir=images_dir, threshold=threshold,  # type: ignore[arg-type]
                            camtrap=options)  # fmt: skip
    _report(result, format_, images_dir)


def _report(r: ExportSummary, format_: str, images_dir: Path | None) -> None:
    written = ", ".join(map(str, r.written))
    if format_ == "speciesnet":
        summary(
            f"Wrote SpeciesNet predictions of {r.images} images ({r.detections} detections, "
            f"{r.detections_classified} classified; {r.failed_images} failed images) to {written}"
        )
        return
    if format_ == "camtrap-dp":
        summary(
            f"Wrote a Camtrap DP package to {written}: {r.deployments} deployments, {r.media} media, "
            f"{r.observations} observations; {len(r.images_left_out)} images without EXIF time left out"
        )
        return
    times = f"{r.images_with_time} with EXIF time" if images_dir else "no capture times: no --images-dir"
    cleaned = [f"{n} {what}" for n, what in ((r.formulas_neutralised, "formula-looking values quoted"),
                                             (r.characters_replaced, "illegal characters replaced")) if n]  # fmt: skip
    summary(f"Wrote {r.detections} detections of {r.images} images ({', '.join([times, *cleaned])}) to {written}")
