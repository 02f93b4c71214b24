"""``learn-mapping``: which of the user's classes each raw classifier class most often means.

"If all of my coyotes are consistently classified as jackals, that's just as good
as having a coyote classifier": for each raw class, the labels of the detections
that list it among their classifications are added up, each weighted by the
class's score there (detections at or above the detection threshold, in the
labelled images outside the held-out set; person and vehicle detections left
out), so a class that is always second to ``tusker`` on elephants still means
elephant. A raw class goes to

* the label with the largest share, when at least ``min_support`` detections
  list the class and that label has at least ``min_purity`` of its weight;
* else, with ``--taxonomy`` naming the labels' taxa, the lowest common taxon
  (genus, family, order, class) holding ``min_purity`` of it (``cervidae``);
* else to ``other`` (too few detections, no clear meaning, or never listed).

The output is the target mapping that ``aggregate`` and ``run --target-mapping`` take,
every raw class in exactly one target, targets sorted, ``other`` last::

    {
     "elephant": ["African elephant", "Indian elephant", "tusker"],
     "other": ["abacus", ...]
    }

With ``--holdout-by``, the held-out cameras give the expected accuracy: the
results scored with the rules of ``evaluate``, raw and remapped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.evaluate.holdout import DEFAULT_HOLDOUT_FRACTION, split_keys
from megaclassifier.evaluate.labels import Labels, read_labels
from megaclassifier.evaluate.metrics import Scores, score
from megaclassifier.evaluate.rules import Namer, Rules
from megaclassifier.evaluate.scan import Scan, scan_results
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.outputs import check_writable
from megaclassifier.labels.descriptions import LEVELS, Taxon, load_taxonomy_file
from megaclassifier.labels.mapping import OTHER

logger = logging.getLogger(__name__)

DEFAULT_MIN_SUPPORT = 5
DEFAULT_MIN_PURITY = 0.6


@dataclass
class RawClass:
    """What was learnt about one raw class.

    Attributes:
        name: the raw class, as the results name it.
        names: every spelling of it in the results (classes that differ only in case).
        support: detections that list it (learning set).
        labels: their labels, each weighted by the class's score in the detection.
        target: where it goes.
        reason: ``label``, ``taxon``, ``too few``, ``impure`` or ``never top``.
    """

    name: str
    names: list[str] = field(default_factory=list)
    support: int = 0
    labels: dict[str, float] = field(default_factory=dict)
    target: str = OTHER
    reason: str = "never top"


@dataclass
class LearnedMapping:
    """What ``learn-mapping`` did.

    Attributes:
        output: the target mapping written.
        mapping: target -> raw classes.
        raw: per raw class, in the results' order.
        learning_images, held_out_images: labelled images used to learn and to test.
        held_out: held-out scores, ``raw`` and ``remapped`` (empty without a held-out set).
    """

    output: Path
    mapping: dict[str, list[str]]
    raw: list[RawClass]
    learning_images: int = 0
    held_out_images: int = 0
    held_out: dict[str, Scores] = field(default_factory=dict)

    @property
    def unmapped(self) -> list[str]:
        """The raw classes sent to ``other`` for want of evidence."""
        return [name for r in self.raw if r.target == OTHER for name in r.names]


def learn_mapping(
    results: str | Path,
    labels: str | Path,
    output: str | Path,
    *,
    label_column: str | None = None,
    ignore_case: bool = False,
    rules: Rules | None = None,
    min_support: int = DEFAULT_MIN_SUPPORT,
    min_purity: float = DEFAULT_MIN_PURITY,
    taxonomy: str | Path | None = None,
    holdout_by: str = "none",
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    holdout: Sequence[str] = (),
    report: str | Path | None = None,
) -> LearnedMapping:
    """Learn the target mapping from RESULTS' raw classes to LABELS' classes and write it.

    Args:
        results: output of ``merge``/``run``/``classify``+``merge`` with the raw classes.
        labels: see :func:`~megaclassifier.evaluate.labels.read_labels`.
        output: the target mapping JSON to write.
        label_column, ignore_case: as for ``read_labels``.
        rules: detection threshold and the scoring rules of the held-out figures.
        min_support: detections a raw class needs to be mapped.
        min_purity: the share of them its label (or taxon) needs.
        taxonomy: label name -> taxon (``--taxonomy`` CSV), for the parent-taxon fallback.
        holdout_by, holdout_fraction, holdout: the held-out set (:mod:`~megaclassifier.evaluate.holdout`).
        report: also write each raw class's counts, target and reason to this JSON.

    Raises:
        InputFileError: RESULTS has no classes, or no label matches its images.
    """
    rules = rules or Rules()
    output = Path(output)
    check_writable(output)
    truth = read_labels(labels, label_column=label_column, ignore_case=ignore_case)
    keys = set(truth.images) | {key for key, _ in truth.crops}
    learn, held = split_keys(keys, truth, by=holdout_by, fraction=holdout_fraction, chosen=holdout)
    header: dict[str, str] = {}

    def namers(names: dict[str, str]) -> list[Namer]:
        if not names:
            raise InputFileError(
                results, "has no classification_categories; learn-mapping needs a classifier's results"
            )
        header.update(names)
        return [Namer(names)]

    scan = scan_results(results, keys, namers, rules, ignore_case=ignore_case, keep_classes=True)
    classes = header
    if not scan.images:
        raise InputFileError(
            truth.source, f"none of its labelled images is in {results}; paths must match (try --ignore-case)"
        )
    raw: dict[str, RawClass] = {}
    for name in classes.values():  # names that differ only in case (ImageNet's Cardigan, cardigan) are one class here
        raw.setdefault(name.lower(), RawClass(name)).names.append(name)
    _count(raw, scan, truth, learn & scan.images.keys(), rules)
    taxa = load_taxonomy_file(taxonomy) if taxonomy is not None else {}
    for item in raw.values():
        _decide(item, min_support=min_support, min_purity=min_purity, taxa=taxa)
    mapping = _mapping(raw.values())
    learned = LearnedMapping(output, mapping, list(raw.values()), len(learn & scan.images.keys()))
    held &= scan.images.keys()
    if held:
        learned.held_out_images = len(held)
        learned.held_out = _held_out_scores(results, truth, held, classes, mapping, rules, ignore_case)
    write_json_atomic(output, mapping)
    if report is not None:
        write_json_atomic(report, _report(learned, min_support, min_purity))
    return learned


def _count(raw: dict[str, RawClass], scan: Scan, truth: Labels, keys: set[str], rules: Rules) -> None:
    crops: dict[str, dict[int, str]] = {}
    for (key, index), crop_label in truth.crops.items():
        crops.setdefault(key, {})[index] = crop_label
    for key in keys:
        image_label = truth.images.get(key)
        for det in scan.images[key][1]:
            label: str | None = crops.get(key, {}).get(det.index, image_label)
            if label is None:
                continue
            for name, share in det.listed:
                if name in raw:
                    raw[name].support += 1
                    target = rules.label(label)
                    raw[name].labels[target] = raw[name].labels.get(target, 0.0) + share


def _decide(item: RawClass, *, min_support: int, min_purity: float, taxa: dict[str, Taxon]) -> None:
    if item.support == 0:
        return
    if item.support < min_support:
        item.reason = "too few"
        return
    total = sum(item.labels.values())
    label, n = min(item.labels.items(), key=lambda pair: (-pair[1], pair[0]))
    if n / total >= min_purity:
        item.target, item.reason = label, "label"
        return
    item.reason = "impure"
    for depth in range(len(LEVELS) - 1, 0, -1):
        groups: dict[str, float] = {}
        for name, count in item.labels.items():
            taxon = taxa.get(name)
            if taxon is not None and taxon.depth >= depth:
                groups[taxon.tokens[depth - 1]] = groups.get(taxon.tokens[depth - 1], 0.0) + count
        if groups:
            best, count = min(groups.items(), key=lambda pair: (-pair[1], pair[0]))
            if count / total >= min_purity:
                item.target, item.reason = best, "taxon"
                return


def _mapping(raw: Iterable[RawClass]) -> dict[str, list[str]]:
    targets: dict[str, list[str]] = {}
    for item in raw:
        targets.setdefault(item.target, []).extend(item.names)
    ordered = sorted(t for t in targets if t != OTHER) + ([OTHER] if OTHER in targets else [])
    return {t: sorted(set(targets[t])) for t in ordered}


def _held_out_scores(
    results: str | Path,
    truth: Labels,
    held: set[str],
    classes: dict[str, str],
    mapping: dict[str, list[str]],
    rules: Rules,
    ignore_case: bool,
) -> dict[str, Scores]:
    scan = scan_results(
        results, held, lambda names: [Namer(names), Namer(names, mapping=mapping)], rules, ignore_case=ignore_case
    )
    images = sorted(k for k in held if k in truth.images and k in scan.images)
    if not images:
        raise MegaClassifierError("the held-out set has no image-level labels to score the mapping on")
    labels = [rules.label(truth.images[k]) for k in images]
    return {
        name: score(labels, [scan.vote(k, i).winner(rules)[0] for k in images])
        for i, name in enumerate(("raw", "remapped"))
    }


def _report(learned: LearnedMapping, min_support: int, min_purity: float) -> dict[str, object]:
    return {
        "min_support": min_support,
        "min_purity": min_purity,
        "learning_images": learned.learning_images,
        "held_out_images": learned.held_out_images,
        "held_out_accuracy": {name: s.accuracy for name, s in learned.held_out.items()},
        "classes": [
            {
                "class": r.name,
                "target": r.target,
                "reason": r.reason,
                "support": r.support,
                "labels": {k: round(v, 4) for k, v in r.labels.items()},
            }
            for r in learned.raw
            if r.support
        ],
        "unmapped": learned.unmapped,
    }
