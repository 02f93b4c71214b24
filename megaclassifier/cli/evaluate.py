"""``evaluate``, ``learn-mapping``, ``train-head``: click wiring for :mod:`megaclassifier.evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from megaclassifier.cli._common import summary
from megaclassifier.cli.evaluation_options import evaluation_rules_options, labels_options
from megaclassifier.cli.option_types import INPUT_FILE, OUTPUT_FILE
from megaclassifier.cli.options import (
    COMMAND_SETTINGS,
    images_dir_option,
    target_mapping_option,
    taxonomy_option,
    thumbnail_workers_option,
)

LABELS = click.Path(exists=True, path_type=Path)
RANKS = ("class", "order", "family", "genus", "species")
_RULE_KEYS = ("threshold", "classification_threshold", "empty_label", "human_label", "unsure_label")


def _rules(options: dict[str, Any]) -> Any:
    from megaclassifier.evaluate.rules import Rules

    return Rules(**{key: options.pop(key) for key in _RULE_KEYS})


def _compare(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, Path]]:
    pairs = []
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name.split(".")[0], value
        if not name or not Path(path).is_file():
            raise click.BadParameter(f"{value!r}: expected NAME=RESULTS with an existing results file", ctx, param)
        pairs.append((name, Path(path)))
    return pairs


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("results", type=INPUT_FILE)
@click.argument("labels", type=LABELS)
@click.option("-o", "--out-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the metrics, matrices, heatmaps and page.")  # fmt: skip
@labels_options
@evaluation_rules_options
@target_mapping_option(required=False)
@click.option("--compare", multiple=True, callback=_compare, metavar="NAME=RESULTS",
              help="Also score these results (a trained head's, say) on the same images; repeatable.")  # fmt: skip
@click.option("--rank", type=click.Choice(RANKS), help="Score at this taxonomic rank (classes and labels "
              "replaced by their ancestor; from the results' descriptions and --taxonomy).")  # fmt: skip
@taxonomy_option
@images_dir_option(required=False)
@click.option("--thumbs-per-cell", type=click.IntRange(min=1), default=12, show_default=True,
              help="Crop thumbnails per confusion-matrix cell on evaluation.html (with --images-dir).")  # fmt: skip
@thumbnail_workers_option
def evaluate(**options: Any) -> None:
    """Score a classifier's results against your labels: per class, per image and per sequence.

    RESULTS is the output of merge or run. LABELS is a Timelapse CSV export, a COCO
    Camera Traps JSON, a folder per class, or a Camtrap DP observations.csv. Writes
    per_class.csv, confusion_matrix.csv/.png, predictions.csv, comparison.csv and
    summary.json into OUT_DIR (and evaluation.html with crop thumbnails given
    --images-dir). --target-mapping and --compare add columns to the comparison,
    scored on the same images.

    \b
    Example:
      megaclassifier evaluate final.json timelapse.csv -o eval/ --images-dir photos/ \\
          --target-mapping learned.json --compare head=head_results.json --holdout-by folder
    """
    from megaclassifier.evaluate.evaluate import evaluate as run_evaluate

    rules = _rules(options)
    result = run_evaluate(options.pop("results"), options.pop("labels"), options.pop("out_dir"), rules=rules, **options)
    lines = []
    for variant in result.variants:
        image = variant.levels["image"]
        lines.append(f"{variant.name} {image.accuracy:.3f}")
    warned = sum(result.warnings.values())
    seq = f", {result.sequences} sequences" if result.sequences else ""
    summary(
        f"Evaluated {result.entities} labelled images{seq}: accuracy {', '.join(lines)}"
        f"{f' ({warned} warnings, see summary.json)' if warned else ''}; written to {result.out_dir}"
    )


@click.command("learn-mapping", context_settings=COMMAND_SETTINGS)
@click.argument("results", type=INPUT_FILE)
@click.argument("labels", type=LABELS)
@click.option(
    "-o", "--output", required=True, type=OUTPUT_FILE, help="Target mapping JSON to write (folders are created)."
)
@labels_options
@evaluation_rules_options
@click.option("--min-support", type=click.IntRange(min=1), default=5, show_default=True,
              help="Detections a raw class must be the top class of to be mapped.")  # fmt: skip
@click.option("--min-purity", type=click.FloatRange(0, 1), default=0.6, show_default=True,
              help="Share of those detections its label (or parent taxon) must have.")  # fmt: skip
@taxonomy_option
@click.option("--report", type=OUTPUT_FILE, help="Also write each raw class's label counts, target and reason here.")
def learn_mapping(**options: Any) -> None:
    """Learn which of your classes each raw classifier class means: a target mapping.

    For each raw class, the label its detections most often have, given enough
    support and purity; else a parent taxon (with --taxonomy); else "other". The
    output is the target mapping aggregate and run --target-mapping take; with
    --holdout-by, the held-out cameras give the expected accuracy.

    \b
    Example:
      megaclassifier learn-mapping results.json timelapse.csv -o target_mapping.json --holdout-by folder
    """
    from megaclassifier.evaluate.mapping import learn_mapping as learn

    rules = _rules(options)
    result = learn(options.pop("results"), options.pop("labels"), options.pop("output"), rules=rules, **options)
    total = sum(len(r.names) for r in result.raw)
    mapped = total - len(result.unmapped)
    targets = sum(1 for t in result.mapping if t != "other")
    held = ""
    if result.held_out:
        raw, remapped = result.held_out["raw"].accuracy, result.held_out["remapped"].accuracy
        held = f"; held-out accuracy {remapped:.3f} remapped vs {raw:.3f} raw on {result.held_out_images} images"
    shown = ", ".join(r.name for r in result.raw if r.support and r.target == "other")[:200]
    summary(
        f"Mapped {mapped} of {total} raw classes to {targets} classes "
        f"({len(result.unmapped)} to other{f'; seen but unmapped: {shown}' if shown else ''}){held}: {result.output}"
    )


@click.command("train-head", context_settings=COMMAND_SETTINGS)
@click.argument("features", type=INPUT_FILE)
@click.argument("labels", type=LABELS)
@click.option("-o", "--output", required=True, type=OUTPUT_FILE, help="The model file to write (TorchScript).")
@click.option("--backbone", required=True,
              help="The model FEATURES came from (checkpoint, TorchScript file or downloaded model name).")  # fmt: skip
@labels_options
@click.option("--c", "c", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True,
              help="Inverse regularisation strength of the logistic regression.")  # fmt: skip
@click.option(
    "--max-iter", type=click.IntRange(min=1), default=1000, show_default=True, help="L-BFGS iterations at most."
)
def train_head(**options: Any) -> None:
    """Train a linear head on features embeddings: one model file with your classes.

    A class-balanced logistic regression (scikit-learn) on the crops of FEATURES
    labelled by LABELS, scored on held-out cameras (--holdout-by); written with
    its backbone as one TorchScript MODEL that carries its class names, so
    classify and run give your classes.

    \b
    Example:
      megaclassifier features lite0.pt crops/ features.npz
      megaclassifier train-head features.npz labels.csv -o head.pt --backbone lite0.pt --holdout-by folder
      megaclassifier run head.pt photos/ md.json -o final.json
    """
    from megaclassifier.evaluate.head import train_head as train

    result = train(options.pop("features"), options.pop("labels"), options.pop("output"), **options)
    held = ""
    if result.held_out is not None:
        held = f"; held-out accuracy {result.held_out.accuracy:.3f} on {result.held_out_crops} crops"
    summary(
        f"Trained a {len(result.classes)}-class head on {result.train_crops} crops "
        f"(training accuracy {result.train_accuracy:.3f}){held}: {result.output}"
    )
