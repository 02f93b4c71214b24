"""``megaclassifier merge``: click wiring for :func:`megaclassifier.merge.merge_classifications`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.model_options import check_ensemble, ensemble_options, geofence_options
from megaclassifier.cli.option_types import FOLDER, INPUT_FILE
from megaclassifier.cli.options import merge_info_options, taxonomy_option

_DATASETS_FLAGS = ("-d", "--datasets")


def _expand_datasets(args: list[str]) -> list[str]:
    """Let ``-d ds1 ds2`` list several datasets, as the reference's ``nargs='*'``.

    The words after ``-d``/``--datasets`` up to the next option become repeated
    ``-d`` options; ``--`` ends the scan.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        out.append(arg)
        i += 1
        if arg in _DATASETS_FLAGS and i < len(args):
            out.append(args[i])
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                out += [arg, args[i]]
                i += 1
    return out


class _MergeCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _expand_datasets(args))


@click.command(cls=_MergeCommand)
@click.argument("classification_csv", type=INPUT_FILE)
@click.argument("label_names_json", type=INPUT_FILE)
@merge_info_options(name_required=True, threshold_flags=("-t", "--threshold"))
@click.option(
    "-j",
    "--detection-json",
    required=True,
    type=INPUT_FILE,
    help="MegaDetector results the crops were cut from (never modified).",
)
@click.option(
    "-d",
    "--datasets",
    multiple=True,
    metavar="DATASET",
    help="Keep only images whose file starts with DATASET/ (-d a b, or -d a -d b).",
)
@click.option(
    "--label",
    type=click.Choice(["first", "last"]),
    help='Add the CSV "label" column\'s class as ["1000000+i", 1.0], first or last.',
)
@click.option("--relative-conf", is_flag=True, help='Write max(p - p_label, 0) instead of p (needs a "label" column).')
@taxonomy_option
@click.option(
    "--release",
    type=FOLDER,
    help="The SpeciesNet release whose classify output CLASSIFICATION_CSV is: its ensemble (--ensemble), "
    "labels, taxonomy and geofence apply.",
)
@ensemble_options(boxes=False)
@geofence_options
@click.pass_context
def merge(
    ctx: click.Context,
    classification_csv: Path,
    label_names_json: Path,
    output_json: Path,
    classifier_name: str,
    classification_threshold: float,
    typical_classification_threshold: float | None,
    max_classifications: int | None,
    detection_json: Path,
    datasets: tuple[str, ...],
    label: str | None,
    relative_conf: bool,
    taxonomy: Path | None,
    release: Path | None,
    ensemble: str | None,
    country: str | None,
    admin1_region: str | None,
) -> None:
    """Merge classifier probabilities into a MegaDetector results file.

    Each detection whose crop has a row in CLASSIFICATION_CSV gets
    "classifications": [["<class id>", p], ...] with the classes of
    LABEL_NAMES_JSON at or above --threshold, most confident first. Other
    detections and failed images are copied unchanged. With --release (the
    SpeciesNet release that classified the crops), SpeciesNet's ensemble gives
    each classified box its answer, as run does (--ensemble, --country).

    \b
    Example:
      megaclassifier merge remapped.csv.gz remapped_label_index.json \\
          --output-json final.json --detection-json md.json \\
          --classifier-name megaclassifier_v0.1_efficientnet-b3 \\
          --threshold 0.05 --typical-confidence-threshold 0.75
    """
    from megaclassifier.merge import merge_classifications
    from megaclassifier.models.resolved import names_release

    if release is not None and not names_release(release):
        raise click.UsageError(f"--release: {release} is not a SpeciesNet release folder (no info.json)", ctx)
    mode = check_ensemble(ctx, str(release) if release is not None else None, None, {"ensemble": ensemble})
    if release is not None and mode == "none":
        raise click.UsageError("--release is for --ensemble speciesnet or speciesnet-legacy", ctx)
    if country is None and admin1_region is not None:
        raise click.UsageError("--admin1-region needs --country", ctx)
    if country is not None and mode == "none":
        raise click.UsageError("--country feeds the ensemble's geofence: give --release", ctx)
    result = merge_classifications(
        classification_csv,
        label_names_json,
        output_json=output_json,
        classifier_name=classifier_name,
        detection_json=detection_json,
        threshold=classification_threshold,
        typical_classification_threshold=typical_classification_threshold,
        datasets=list(datasets) if datasets else None,
        max_classifications=max_classifications,
        label=label,  # type: ignore[arg-type]
        relative_conf=relative_conf,
        taxonomy=taxonomy,
        ensemble=_ensemble(release, mode, country, admin1_region) if release is not None else None,
        progress=show_progress(ctx),
    )
    unmatched = f", {result.rows_unmatched} rows matched no detection" if result.rows_unmatched else ""
    done = result.ensembled
    decided = f", {done.boxes} decided by the {done.ensemble} ensemble" if done is not None else ""
    summary(
        f"Wrote merged classification/detection results to {result.output_json}: "
        f"{result.detections_classified} detections classified from {result.rows} rows{decided}{unmatched}"
    )


def _ensemble(release: Path, mode: str, country: str | None, admin1_region: str | None) -> Any:
    """The release's ensemble (its info.json, labels, taxonomy and geofence read)."""
    from megaclassifier.models.resolved import resolve
    from megaclassifier.postprocess.ensemble import load_ensemble

    model = resolve(release)
    assert model.release is not None and model.labels is not None
    return load_ensemble(model.release, model.labels, mode, country=country, admin1_region=admin1_region)
