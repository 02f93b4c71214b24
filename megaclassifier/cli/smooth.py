"""``megaclassifier smooth``, ``restrict`` and ``rollup``: click wiring for :mod:`megaclassifier.smooth`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import summary
from megaclassifier.cli.options import images_dir_option, taxonomy_option
from megaclassifier.smooth.options import DEFAULT_EVIDENCE_THRESHOLD, DEFAULT_GAP_SECONDS, SmoothOptions

_IN = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)
_DEFAULTS = SmoothOptions()




def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _rule_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """MegaDetector's ClassificationSmoothingOptions, one flag each, its defaults as ours."""
    count = click.IntRange()
    share = click.FloatRange(0, 1)
    options = [
        ("--min-detections-to-overwrite-secondary", count, "Votes the dominant class needs to overwrite others."),
        ("--max-detections-nondominant-class", count, "A class with more votes than this is left alone."),
        ("--min-detections-to-overwrite-secondary-same-family", count,
         "Votes a dominant genus/species needs to overwrite its family (<= 0: off)."),
        ("--max-detections-nondominant-class-same-family", count,
         "A same-family class with more votes than this is left alone."),
        ("--min-detections-to-overwrite-other", count, 'Votes the dominant class needs to overwrite "other".'),
        ("--classification-confidence-threshold", share, "A detection votes when its top score is >= this."),
        ("--detection-confidence-threshold", share, "A detection votes when its conf is >= this."),
        ("--taxonomy-propagation-level-weight", float, "Weight of a child taxon's level (taxonomic rule)."),
        ("--taxonomy-propagation-count-weight", float, "Weight of a child taxon's count (taxonomic rule)."),
    ]  # fmt: skip
    for flag, kind, text in reversed(options):
        default = getattr(_DEFAULTS, flag[2:].replace("-", "_"))
        f = click.option(flag, type=kind, default=default, show_default=True, help=text)(f)
    f = click.option("--propagate-classifications-through-taxonomy/--no-propagate-classifications-through-taxonomy",
                     default=True, show_default=True, help="Relabel a parent as its child taxon.")(f)  # fmt: skip
    f = click.option("--other-category-names", default=",".join(_DEFAULTS.other_category_names), show_default=True,
                     help='Comma-separated class names treated as "other".')(f)  # fmt: skip
    f = click.option("--detection-category-names-to-smooth", default="animal", show_default=True,
                     help="Comma-separated detection categories that take part ('' for all).")(f)  # fmt: skip
    return f


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@click.option(
    "--level",
    type=click.Choice(["image", "sequence"]),
    default="image",
    show_default=True,
    help="Smooth within each image, or within each sequence.",
)
@click.option(
    "--method",
    type=click.Choice(["counts", "probabilities"]),
    default="counts",
    show_default=True,
    help="MegaDetector's vote-counting rules, or the confidence-weighted mean of the scores.",
)
@click.option(
    "--evidence-threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_EVIDENCE_THRESHOLD,
    show_default=True,
    help="probabilities: relabel when the best mean score is >= this.",
)
@click.option("--sequences", type=_IN, help="COCO Camera Traps JSON giving each image's seq_id.")
@images_dir_option(required=False)
@click.option("--camera-depth", type=click.IntRange(min=1), help="Folder levels naming a camera.  [default: all]")
@click.option(
    "--gap",
    type=click.FloatRange(min=0),
    default=DEFAULT_GAP_SECONDS,
    show_default=True,
    help="Seconds between two images that start a new sequence.",
)
@click.option(
    "--rollup",
    type=click.FloatRange(0, 1),
    metavar="THRESHOLD",
    help="First roll detections whose top score is below THRESHOLD up the taxonomy.",
)
@taxonomy_option
@_rule_options
def smooth(input_json: Path, output_json: Path, level: str, sequences: Path | None, images_dir: Path | None,
           gap: float, taxonomy: Path | None, other_category_names: str,
           detection_category_names_to_smooth: str, **options: Any) -> None:  # fmt: skip
    """Relabel odd detections from what the rest of their image or sequence says.

    \b
    Examples:
      megaclassifier smooth merged.json smoothed.json
      megaclassifier smooth merged.json smoothed.json --level sequence --images-dir photos/ --gap 60
      megaclassifier smooth merged.json smoothed.json --level sequence --sequences cct.json \\
          --method probabilities --rollup 0.6
    """
    from megaclassifier.smooth import smooth_file

    if level == "sequence" and sequences is None and images_dir is None:
        raise click.UsageError("--level sequence needs --sequences CCT.json or --images-dir DIR")
    if level == "image" and (sequences is not None or images_dir is not None):
        raise click.UsageError("--sequences and --images-dir need --level sequence")
    settings = SmoothOptions(
        level=level, sequences=sequences, images_dir=images_dir, gap_seconds=gap,  # type: ignore[arg-type]
        other_category_names=_names(other_category_names),
        detection_category_names_to_smooth=_names(detection_category_names_to_smooth), **options,
    )  # fmt: skip
    result = smooth_file(input_json, output_json, options=settings, taxonomy=taxonomy)
    rules = ", ".join(f"{rule} {n}" for rule, n in result.changed.items())
    where = f"{result.groups_changed} {'images' if level == 'image' else 'sequences'}"
    seq = result.sequences
    extra = f"; {seq.count} sequences" if seq is not None else ""
    if seq is not None and seq.without_time:
        extra += f", {seq.without_time} images without a time stayed alone"
    if seq is not None and seq.not_in_file:
        extra += f", {seq.not_in_file} images in no sequence were left as they are"
    summary(
        f"Wrote smoothed results to {output_json}: {result.detections_changed} changes ({rules}) in {where}, "
        f"of {result.detections_classified} classified detections{extra}"
    )


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@click.option("--taxa", "taxa_list", type=_IN, required=True, help="CSV with the columns latin,common.")
@taxonomy_option
def restrict(input_json: Path, output_json: Path, taxa_list: Path, taxonomy: Path | None) -> None:
    """Keep only the taxa of a species list; other classes move to their nearest listed ancestor.

    \b
    Example:
      megaclassifier restrict smoothed.json local.json --taxa idaho_species.csv
    """
    from megaclassifier.smooth import restrict_file

    result = restrict_file(input_json, output_json, taxa_list=taxa_list, taxonomy=taxonomy)
    added = f"; added classes {', '.join(result.classes_added)}" if result.classes_added else ""
    summary(
        f"Wrote restricted results to {output_json}: {result.changed['moved']} detections moved to listed taxa, "
        f"{result.changed['left_unclassified']} left without a listed class, "
        f"of {result.detections_classified} classified detections{added}"
    )


@click.command()
@click.argument("input_json", type=_IN)
@click.argument("output_json", type=_OUT)
@click.option("-t", "--threshold", type=click.FloatRange(0, 1), required=True,
              help="Roll up detections whose top score is below this, to the first taxon summing to it.")  # fmt: skip
@taxonomy_option
def rollup(input_json: Path, output_json: Path, threshold: float, taxonomy: Path | None) -> None:
    """Label uncertain detections with the genus, family, order or class their scores agree on.

    \b
    Example:
      megaclassifier rollup merged.json rolled.json --threshold 0.6
    """
    from megaclassifier.smooth import rollup_file

    result = rollup_file(input_json, output_json, threshold=threshold, taxonomy=taxonomy)
    levels = ", ".join(f"{level} {n}" for level, n in result.changed.items())
    summary(
        f"Wrote rolled-up results to {output_json}: {result.detections_changed} detections rolled up ({levels}), "
        f"of {result.detections_classified} classified detections"
    )
