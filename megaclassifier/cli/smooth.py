"""``megaclassifier smooth``, ``restrict`` and ``rollup``: click wiring for :mod:`megaclassifier.postprocess`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from megaclassifier.cli._common import summary
from megaclassifier.cli.model_options import geofence_options
from megaclassifier.cli.options import images_dir_option, taxonomy_option
from megaclassifier.cli.postprocess_options import (
    check_video_summary,
    smooth_settings,
    smoothing_options,
    video_summary_options,
)
from megaclassifier.postprocess.options import (
    DEFAULT_RESTRICT_SEMANTICS,
    DEFAULT_ROLLUP_SEMANTICS,
    RESTRICT_SEMANTICS,
    RESTRICT_SEMANTICS_HELP,
    ROLLUP_SEMANTICS,
    ROLLUP_SEMANTICS_HELP,
    SmoothOptions,
)

if TYPE_CHECKING:
    from megaclassifier.postprocess.rollup import RollupFence
_IN = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@images_dir_option(required=False)
@taxonomy_option
@smoothing_options(level_flag="--level")
@video_summary_options
@click.pass_context
def smooth(ctx: click.Context, input_json: Path, output_json: Path, images_dir: Path | None, taxonomy: Path | None,
           video_summary: str | None, video_summary_nth: int, **options: Any) -> None:  # fmt: skip
    """Relabel odd detections from what the rest of their image or sequence says.

    A video entry is one group: all its frames' boxes vote together. --video-summary then keeps one
    answer per video.

    \b
    Examples:
      megaclassifier smooth merged.json smoothed.json
      megaclassifier smooth merged.json smoothed.json --level sequence --images-dir photos/ --gap 60
      megaclassifier smooth merged.json smoothed.json --level sequence --sequences cct.json \\
          --method probabilities --rollup 0.6
    """
    from megaclassifier.postprocess import smooth_file

    if options["level"] == "image" and images_dir is not None:
        raise click.UsageError("--images-dir needs --level sequence")
    check_video_summary(ctx, video_summary, video_summary_nth)
    settings = smooth_settings(ctx, options, images_dir=images_dir, level_flag="--level") or SmoothOptions()
    level = settings.level
    result = smooth_file(input_json, output_json, options=settings, taxonomy=taxonomy,
                         video_summary=video_summary, video_summary_nth=video_summary_nth)  # fmt: skip
    rules = ", ".join(f"{rule} {n}" for rule, n in result.changed.items())
    where = f"{result.groups_changed} {'images' if level == 'image' else 'sequences'}"
    seq = result.sequences
    extra = f"; {seq.count} sequences" if seq is not None else ""
    if seq is not None and seq.without_time:
        extra += f", {seq.without_time} images without a time stayed alone"
    if seq is not None and seq.not_in_file:
        extra += f", {seq.not_in_file} images in no sequence were left as they are"
    if result.video is not None:
        extra += f"; {result.video.videos} videos summarised ({result.video.rule})"
    summary(
        f"Wrote smoothed results to {output_json}: {result.detections_changed} changes ({rules}) in {where}, "
        f"of {result.detections_classified} classified detections{extra}"
    )


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@click.option("--taxa", "taxa_list", type=_IN, required=True, help="CSV with the columns latin,common.")
@click.option("--semantics", type=click.Choice(RESTRICT_SEMANTICS), default=DEFAULT_RESTRICT_SEMANTICS,
              show_default=True, help=RESTRICT_SEMANTICS_HELP)  # fmt: skip
@taxonomy_option
def restrict(input_json: Path, output_json: Path, taxa_list: Path, semantics: str, taxonomy: Path | None) -> None:
    """Keep only the taxa of a species list; other classes move to their nearest listed ancestor.

    --semantics megadetector (the default) gives MegaDetector's restrict_to_taxa_list answer: each class is
    relabelled where it stands with its score, one with no listed ancestor becomes "animal".
    --semantics megaclassifier sums the scores landing on one taxon and drops (renormalising) the unlisted.

    \b
    Example:
      megaclassifier restrict smoothed.json local.json --taxa idaho_species.csv
    """
    from megaclassifier.postprocess import restrict_file

    result = restrict_file(input_json, output_json, taxa_list=taxa_list, semantics=semantics, taxonomy=taxonomy)
    added = f"; added classes {', '.join(result.classes_added)}" if result.classes_added else ""
    if semantics == "megadetector":
        rest = f"{result.changed['to_animal']} to animal (no listed ancestor)"
    else:
        rest = f"{result.changed['left_unclassified']} left without a listed class"
    summary(
        f"Wrote restricted results to {output_json}: {result.changed['moved']} detections moved to listed taxa, "
        f"{rest}, of {result.detections_classified} classified detections{added}"
    )


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@click.option("-t", "--threshold", type=click.FloatRange(0, 1), required=True,
              help="Roll up uncertain detections to the first taxon whose summed score passes this.")  # fmt: skip
@click.option("--semantics", type=click.Choice(ROLLUP_SEMANTICS), default=DEFAULT_ROLLUP_SEMANTICS,
              show_default=True, help=ROLLUP_SEMANTICS_HELP)  # fmt: skip
@geofence_options
@click.option("--geofence", "geofence_path", type=click.Path(exists=True, path_type=Path),
              help="With --country: a SpeciesNet release folder, or its geofence JSON; taxa it fences out there "
              "are passed over.")  # fmt: skip
@taxonomy_option
@click.pass_context
def rollup(ctx: click.Context, input_json: Path, output_json: Path, threshold: float, semantics: str,
           country: str | None, admin1_region: str | None, geofence_path: Path | None,
           taxonomy: Path | None) -> None:  # fmt: skip
    """Label uncertain detections with the genus, family, order, class or kingdom their scores agree on.

    --semantics speciesnet (the default) is SpeciesNet 5.0.6's roll-up; megadetector is MegaDetector's
    run_md_and_speciesnet variant; megaclassifier this toolkit's earlier default (see docs/smoothing.md).

    \b
    Examples:
      megaclassifier rollup merged.json rolled.json --threshold 0.65
      megaclassifier rollup merged.json rolled.json -t 0.65 --country USA --geofence speciesnet-release/
      megaclassifier rollup merged.json rolled.json -t 0.6 --semantics megaclassifier
    """
    from megaclassifier.postprocess import rollup_file

    fence = _fence(ctx, semantics, country, admin1_region, geofence_path)
    result = rollup_file(input_json, output_json, threshold=threshold, semantics=semantics, fence=fence,
                         taxonomy=taxonomy)  # fmt: skip
    levels = ", ".join(f"{level} {n}" for level, n in result.changed.items())
    summary(
        f"Wrote rolled-up results to {output_json}: {result.detections_changed} detections rolled up ({levels}), "
        f"of {result.detections_classified} classified detections"
    )


def _fence(ctx: click.Context, semantics: str, country: str | None, admin1_region: str | None,
           path: Path | None) -> RollupFence | None:  # fmt: skip
    """``rollup``'s geofence: ``--geofence`` read for ``--country``; usage errors for a half-given pair."""
    if admin1_region is not None and country is None:
        raise click.UsageError("--admin1-region needs --country", ctx)
    if (country is None) != (path is None):
        raise click.UsageError("--country and --geofence go together", ctx)
    if country is None or path is None:
        return None
    if semantics == "megaclassifier":
        raise click.UsageError("--country: the megaclassifier semantics has no geofence (use speciesnet)", ctx)
    from megaclassifier.models.speciesnet import read_geofence, read_release
    from megaclassifier.postprocess.rollup import RollupFence

    geofence = read_geofence(read_release(path).geofence if path.is_dir() else path)
    return RollupFence(geofence, country, admin1_region)
