"""``megaclassifier csv-to-json``, ``map-categories``, ``aggregate``: click wiring for :mod:`megaclassifier.labels`."""

from __future__ import annotations

from pathlib import Path

import click

from megaclassifier import labels as label_tools
from megaclassifier.cli._common import summary
from megaclassifier.cli.option_types import INPUT_FILE, OUTPUT_FILE
from megaclassifier.cli.options import target_mapping_option


@click.command("csv-to-json")
@click.argument("input_csv", type=INPUT_FILE)
@click.argument("output_json", type=OUTPUT_FILE)
@click.option(
    "--json-indent", type=click.IntRange(min=0), help="Indent the JSON by this many spaces.  [default: one line]"
)
def csv_to_json(input_csv: Path, output_json: Path, json_indent: int | None) -> None:
    """Convert a label-specification CSV to label-specification JSON.

    INPUT_CSV has the header output_label,type,content; `#` starts a comment
    anywhere on a line. OUTPUT_JSON is what map-categories reads.

    \b
    Example:
      megaclassifier csv-to-json idfg_label_spec.csv idfg_label_spec.json --json-indent 1
    """
    result = label_tools.csv_to_json(input_csv, output_json, json_indent=json_indent)
    summary(f"Wrote {result.labels} labels from {result.rows} rows to {output_json}")


@click.command("map-categories")
@click.argument("target_spec", type=INPUT_FILE)
@click.argument("classifier_spec", type=INPUT_FILE)
@click.argument("taxonomy_csv", type=INPUT_FILE)
@click.option(
    "-o", "--output", required=True, type=OUTPUT_FILE, help="Target mapping JSON to write (folders are created)."
)
@click.option(
    "-i", "--classifier-label-index", type=INPUT_FILE, help="Index-to-name JSON of the classifier; map only its labels."
)
def map_categories(
    target_spec: Path, classifier_spec: Path, taxonomy_csv: Path, output: Path, classifier_label_index: Path | None
) -> None:
    """Map the classifier's labels onto target labels through a taxonomy.

    TARGET_SPEC and CLASSIFIER_SPEC are label-specification JSON files;
    TAXONOMY_CSV gives each dataset label's taxonomy. Every classifier label
    goes to the one target that contains all its taxa, or to "other".

    \b
    Example:
      megaclassifier map-categories idfg_label_spec.json megaclassifier_v0.1_label_spec.json \\
          camera_trap_taxonomy_mapping.csv -o idfg_to_megaclassifier_labels.json \\
          -i megaclassifier_v0.1_index_to_name.json
    """
    result = label_tools.map_categories(
        target_spec, classifier_spec, taxonomy_csv, output=output, classifier_label_index=classifier_label_index
    )
    summary(
        f"Mapped {result.classifier_labels} classifier labels to {result.targets} targets "
        f"({result.other} to other); wrote {output}"
    )


@click.command("aggregate")
@click.argument("classifier_results_csv", type=INPUT_FILE)
@target_mapping_option(required=True, short_flag=True)
@click.option(
    "-o", "--output-csv", required=True, type=OUTPUT_FILE, help="Target probability CSV to write (.gz for gzip)."
)
@click.option(
    "-i", "--output-label-index", required=True, type=OUTPUT_FILE, help="Index-to-name JSON of the targets to write."
)
def aggregate(classifier_results_csv: Path, target_mapping: Path, output_csv: Path, output_label_index: Path) -> None:
    """Sum the classifier's probabilities into target probabilities.

    Each target's value is the sum of its classifier labels' probabilities;
    target columns come in sorted order. Works in chunks, so any length fits
    in memory.

    \b
    Example:
      megaclassifier aggregate probs.csv.gz -t idfg_to_megaclassifier_labels.json \\
          -o probs_remapped.csv.gz -i probs_label_index_remapped.json
    """
    result = label_tools.aggregate_probabilities(
        classifier_results_csv,
        target_mapping=target_mapping,
        output_csv=output_csv,
        output_label_index=output_label_index,
    )
    summary(f"Wrote {result.rows} rows x {result.targets} targets to {output_csv} and {output_label_index}")
