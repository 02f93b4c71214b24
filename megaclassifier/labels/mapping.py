"""Map a classifier's labels onto a project's target labels through the taxonomy.

Both inputs are label-specification JSON files (see :mod:`.spec_csv`; ``taxa``
entries select a taxon and everything below it, ``dataset_labels`` select the
taxon of a (dataset, label) pair and everything below it, ``exclude`` is
subtracted)::

    {"cervid": {"taxa": [{"level": "family", "name": "cervidae"}]},
     "cattle": {"dataset_labels": {"ds1": ["cow"]}}}

Each classifier label goes to the one target whose taxa contain all of its
taxa; labels that fall in no target go to ``other``. The output, the target
mapping that ``aggregate`` reads, lists each target's classifier labels
sorted, targets in the target spec's order (those with no labels left out),
``other`` last, indent 1::

    {
     "cervid": [
      "deer",
      "elk"
     ],
     "other": [
      "bear"
     ]
    }

Taxon and dataset-label lookups are case-insensitive (the taxonomy is
lower-cased). ``datasets`` restrictions on ``taxa`` entries, ``max_count``
and ``prioritize`` do not matter here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError, LabelSpecError
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.probabilities import load_label_index
from megaclassifier.formats.reading import read_json
from megaclassifier.labels.taxonomy import TaxonKey, Taxonomy, format_taxa, format_taxon, load_taxonomy_csv

logger = logging.getLogger(__name__)

OTHER = "other"

LabelSpec = dict[str, Any]


@dataclass(frozen=True)
class MappingSummary:
    """What :func:`map_categories` did.

    Attributes:
        targets: targets in the written mapping (``other`` included).
        classifier_labels: classifier labels mapped.
        other: classifier labels that went to ``other``.
    """

    targets: int
    classifier_labels: int
    other: int


def map_categories(
    target_spec: str | Path,
    classifier_spec: str | Path,
    taxonomy_csv: str | Path,
    *,
    output: str | Path,
    classifier_label_index: str | Path | None = None,
) -> MappingSummary:
    """Write the target mapping of a classifier's labels onto a project's labels.

    Args:
        target_spec: label-specification JSON of the wanted targets (must not define ``other``).
        classifier_spec: label-specification JSON of the classifier's labels.
        taxonomy_csv: the taxonomy CSV (see :mod:`.taxonomy`).
        output: the mapping JSON to write, atomically; folders are created.
        classifier_label_index: an index-to-name JSON; only its labels are mapped.

    Returns:
        Counts of targets and labels.

    Raises:
        InputFileError: an input that cannot be read or has the wrong shape.
        LabelSpecError: labels that share taxa, partial overlaps, or a label that matches nothing.
    """
    targets = load_label_spec(target_spec)
    if OTHER in targets:
        raise LabelSpecError(
            f'{target_spec}: the target spec must not define "{OTHER}": it collects the labels of no target'
        )
    classifier = load_label_spec(classifier_spec)
    if classifier_label_index is not None:
        classifier = restrict_to_index(classifier, load_label_index(classifier_label_index),
                                       spec_path=classifier_spec, index_path=classifier_label_index)  # fmt: skip
    taxonomy = load_taxonomy_csv(taxonomy_csv)
    target_sets = expand_label_specs(targets, taxonomy, source=str(target_spec))
    classifier_sets = expand_label_specs(classifier, taxonomy, source=str(classifier_spec))
    mapping = build_mapping(target_sets, classifier_sets)
    write_json_atomic(output, mapping, indent=1)
    other = len(mapping.get(OTHER, []))
    logger.debug("%d classifier labels -> %d targets (%d to other)", len(classifier_sets), len(mapping), other)
    return MappingSummary(targets=len(mapping), classifier_labels=len(classifier_sets), other=other)


def load_label_spec(path: str | Path) -> dict[str, LabelSpec]:
    """Read a label-specification JSON and check its shape.

    Raises:
        InputFileError: not JSON, or not ``{label: {"taxa": [...], "dataset_labels": {...}, ...}}``.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not data:
        raise InputFileError(path, 'expected a non-empty JSON object {"label": {"taxa": [...], ...}, ...}')
    for label, spec in data.items():
        _check_spec(spec, path=path, where=f"label {label!r}")
    return data


def _check_spec(spec: Any, *, path: str | Path, where: str) -> None:
    if not isinstance(spec, dict):
        raise InputFileError(path, f"{where}: expected an object with taxa, dataset_labels or exclude")
    taxa = spec.get("taxa", [])
    if not isinstance(taxa, list) or not all(
        isinstance(t, dict) and isinstance(t.get("level"), str) and isinstance(t.get("name"), str) for t in taxa
    ):
        raise InputFileError(path, f'{where}: "taxa" must be a list of {{"level": ..., "name": ...}} objects')
    dataset_labels = spec.get("dataset_labels", {})
    if not isinstance(dataset_labels, dict) or not all(
        isinstance(v, list) and all(isinstance(x, str) for x in v) for v in dataset_labels.values()
    ):
        raise InputFileError(path, f'{where}: "dataset_labels" must be an object {{"dataset": ["label", ...]}}')
    if "exclude" in spec:
        _check_spec(spec["exclude"], path=path, where=f"{where} exclude")


def restrict_to_index(
    specs: dict[str, LabelSpec], names: Sequence[str], *, spec_path: str | Path, index_path: str | Path
) -> dict[str, LabelSpec]:
    """Keep only the labels named in a classifier's index-to-name list.

    Raises:
        LabelSpecError: an index label the spec does not define.
    """
    missing = [name for name in names if name not in specs]
    if missing:
        raise LabelSpecError(
            f"{index_path}: {len(missing)} label(s) not in {spec_path}: {', '.join(map(repr, missing[:10]))}"
            + (" ..." if len(missing) > 10 else "")
        )
    wanted = set(names)
    return {label: spec for label, spec in specs.items() if label in wanted}


def expand_label_specs(
    specs: Mapping[str, LabelSpec], taxonomy: Taxonomy, *, source: str = "<spec>"
) -> dict[str, set[TaxonKey]]:
    """Each label's set of taxa; the sets of different labels must not share a taxon.

    Raises:
        LabelSpecError: a label matching no taxon, an unknown dataset label, or two labels sharing taxa.
    """
    sets = {label: expand_label(label, spec, taxonomy, source=source) for label, spec in specs.items()}
    owner: dict[TaxonKey, str] = {}
    for label, taxa in sets.items():
        for key in taxa:
            first = owner.setdefault(key, label)
            if first != label:
                shared = sets[first] & taxa
                raise LabelSpecError(
                    f"{source}: labels {first!r} and {label!r} share taxa: {format_taxa(shared)}; "
                    "a taxon may belong to one label only (use exclude)"
                )
    return sets


def expand_label(label: str, spec: LabelSpec, taxonomy: Taxonomy, *, source: str = "<spec>") -> set[TaxonKey]:
    """The taxa one label selects: its taxa and dataset labels with all their descendants, less its exclude.

    Raises:
        LabelSpecError: the label matches no taxon, or names a dataset label the taxonomy lacks.
    """
    taxa = _select(label, spec, taxonomy, source=source)
    if not taxa:
        raise LabelSpecError(
            f"{source}: label {label!r} matches no taxon of {taxonomy.source}; check its taxa and dataset_labels"
        )
    return taxa


def _select(label: str, spec: LabelSpec, taxonomy: Taxonomy, *, source: str, exclude: bool = False) -> set[TaxonKey]:
    what = f"label {label!r}" + (" exclude" if exclude else "")
    found: set[TaxonKey] = set()
    for taxon in spec.get("taxa", []):
        key = (taxon["level"].strip().lower(), taxon["name"].strip().lower())
        if key in taxonomy:
            found |= taxonomy.descendants(key)
        else:
            logger.warning("%s: %s: taxon %s not in %s; ignoring it", source, what, format_taxon(key), taxonomy.source)
    for dataset, dataset_labels in spec.get("dataset_labels", {}).items():
        for dataset_label in dataset_labels:
            label_key = taxonomy.dataset_labels.get((dataset.strip().lower(), dataset_label.strip().lower()))
            if label_key is None:
                raise LabelSpecError(
                    f"{source}: {what}: dataset label ({dataset}, {dataset_label}) is not in {taxonomy.source} "
                    "(or its taxonomy_string is empty)"
                )
            found |= taxonomy.descendants(label_key)
    if "exclude" in spec:
        excluded = _select(label, spec["exclude"], taxonomy, source=source, exclude=True)
        if not excluded:
            logger.warning("%s: label %r: its exclude matches no taxon", source, label)
        found -= excluded
    return found


def build_mapping(
    target_sets: Mapping[str, set[TaxonKey]], classifier_sets: Mapping[str, set[TaxonKey]]
) -> dict[str, list[str]]:
    """Assign each classifier label to the target containing all its taxa, or to ``other``.

    Args:
        target_sets: each target's taxa, pairwise disjoint, in output order.
        classifier_sets: each classifier label's taxa, pairwise disjoint.

    Returns:
        ``{target: sorted classifier labels}``, targets in order, empty ones left
        out, ``other`` last when some labels fall in no target.

    Raises:
        LabelSpecError: the targets define ``other``, or a classifier label lies only partly in a target.
    """
    if OTHER in target_sets:
        raise LabelSpecError(f'the target spec must not define "{OTHER}": it collects the labels of no target')
    order = {target: i for i, target in enumerate(target_sets)}
    owner = {key: target for target, taxa in target_sets.items() for key in taxa}
    assigned: dict[str, list[str]] = {target: [] for target in target_sets}
    other: list[str] = []
    for label, taxa in classifier_sets.items():
        hits = {owner[key] for key in taxa if key in owner}
        if not hits:
            other.append(label)
            continue
        target = min(hits, key=order.__getitem__)
        outside = taxa - target_sets[target]
        if outside:
            raise LabelSpecError(
                f"target {target!r} and classifier label {label!r} overlap only partly: both have "
                f"{format_taxa(taxa & target_sets[target])}; only {label!r} has {format_taxa(outside)}"
            )
        assigned[target].append(label)
    mapping = {target: sorted(labels) for target, labels in assigned.items() if labels}
    if other:
        mapping[OTHER] = sorted(other)
    return mapping
