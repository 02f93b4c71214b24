"""``evaluate``: compare results with the user's labels, per image and per sequence.

Writes into OUT_DIR (one set per *variant*; the first, RESULTS as they are, at the
top, each further one in ``OUT_DIR/<variant>/``: ``remapped`` with ``--target-mapping``,
and one per ``--compare NAME=RESULTS``)::

    per_class.csv, confusion_matrix.csv, confusion_matrix.png        per image (crop labels: per crop)
    per_class_sequence.csv, confusion_matrix_sequence.csv/.png       per sequence, when the labels have them
    predictions.csv        file,detection,label,<variant>,<variant>_score,...  one row per labelled image or crop
    comparison.csv         variant,level,entities,accuracy,macro_precision,macro_recall,macro_f1
    summary.json           rules, counts, warnings and the comparison
    evaluation.html        with --images-dir: the matrix and, per cell, thumbnails of the crops

The rules that turn detections into one class are :mod:`megaclassifier.evaluate.rules`.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.errors import InputFileError
from megaclassifier.evaluate.holdout import DEFAULT_HOLDOUT_FRACTION, split_keys
from megaclassifier.evaluate.labels import Labels, read_labels
from megaclassifier.evaluate.metrics import Scores, score, write_heatmap, write_matrix, write_per_class
from megaclassifier.evaluate.results import Entity, EvaluationSummary, VariantResult
from megaclassifier.evaluate.rules import Namer, Rules, Vote
from megaclassifier.evaluate.scan import Scan, read_header_classes, scan_results
from megaclassifier.formats.atomic import atomic_output, write_json_atomic
from megaclassifier.formats.outputs import check_writable_folder
from megaclassifier.labels.aggregate import check_mapping_covers, load_target_mapping
from megaclassifier.labels.descriptions import Taxon, load_taxonomy_file

logger = logging.getLogger(__name__)

#: Labels shown per warning message.
_SHOWN = 3


@dataclass(frozen=True)
class _Variant:
    name: str
    results: Path
    mapping: dict[str, list[str]] | None


def evaluate(
    results: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    label_column: str | None = None,
    ignore_case: bool = False,
    rules: Rules | None = None,
    target_mapping: str | Path | None = None,
    compare: Sequence[tuple[str, str | Path]] = (),
    rank: str | None = None,
    taxonomy: str | Path | None = None,
    holdout_by: str = "none",
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    holdout: Sequence[str] = (),
    images_dir: str | Path | None = None,
    thumbs_per_cell: int = 12,
    num_workers: int = 1,
) -> EvaluationSummary:
    """Score RESULTS (and the variants asked for) against LABELS and write OUT_DIR.

    Args:
        results: output of ``merge`` or ``run`` (a plain MegaDetector file's animals, having no classes,
            count as the unsure label).
        labels: see :func:`~megaclassifier.evaluate.labels.read_labels`.
        out_dir: the folder to write (created).
        label_column, ignore_case: as :func:`~megaclassifier.evaluate.labels.read_labels`.
        rules: the rules of :mod:`~megaclassifier.evaluate.rules` (default: MegaDetector's).
        target_mapping: also score RESULTS remapped through this ``aggregate`` target mapping.
        compare: further ``(name, results file)`` variants, scored on the same images.
        rank: score at this taxonomic rank (``family``...).
        taxonomy: ``--taxonomy FILE`` (class and label name -> taxon) for ``rank``; the results'
            ``classification_category_descriptions`` are used too.
        holdout_by, holdout_fraction, holdout: score only the held-out set of
            :mod:`~megaclassifier.evaluate.holdout`.
        images_dir: the images; when given, ``evaluation.html`` with crop thumbnails is written.
        thumbs_per_cell: thumbnails per confusion-matrix cell on the page.
        num_workers: processes that make thumbnails.

    Raises:
        InputFileError: a file is unusable, or no label matches an image of the results.
        LabelSpecError: the target mapping does not cover the results' classes.
    """
    rules = rules or Rules()
    out = Path(out_dir)
    check_writable_folder(out)
    truth = read_labels(labels, label_column=label_column, ignore_case=ignore_case)
    variants = _variants(Path(results), target_mapping, compare)
    taxa = _taxa(variants, taxonomy) if rank else {}
    keys = set(truth.images) | {key for key, _ in truth.crops}
    _, held = split_keys(keys, truth, by=holdout_by, fraction=holdout_fraction, chosen=holdout)
    if holdout_by != "none":
        keys = held
    scans = _scan_all(variants, keys, rules, rank=rank, taxa=taxa, ignore_case=ignore_case)
    summary = EvaluationSummary(out, [], held_out=holdout_by != "none", warnings=Counter(truth.warnings))
    label_namer = Namer({}, rank=rank, taxa=taxa)
    entities = _entities(truth, keys, scans, variants, rules, label_namer, summary)
    sequences = _sequence_entities(truth, scans, variants, rules, label_namer)
    summary.entities, summary.sequences = len(entities), len(sequences)
    _warn_unknown_classes(entities, scans[variants[0].results], summary, rules)
    out.mkdir(parents=True, exist_ok=True)
    for i, variant in enumerate(variants):
        folder = out if i == 0 else out / _folder_name(variant.name)
        folder.mkdir(parents=True, exist_ok=True)
        result = VariantResult(variant.name, variant.results)
        result.levels["image"] = _write_level(folder, "", variant.name, entities, i)
        if sequences:
            result.levels["sequence"] = _write_level(folder, "_sequence", variant.name, sequences, i)
        summary.variants.append(result)
    _write_predictions(out / "predictions.csv", entities, variants)
    _write_comparison(out / "comparison.csv", summary)
    _write_summary(out / "summary.json", summary, rules, truth, rank)
    if images_dir is not None:
        from megaclassifier.evaluate.html import write_evaluation_page

        summary.page = write_evaluation_page(
            out, summary, entities, scans[variants[0].results], images_dir=Path(images_dir),
            per_cell=thumbs_per_cell, num_workers=num_workers,
        )  # fmt: skip
    return summary


def _variants(
    results: Path, target_mapping: str | Path | None, compare: Sequence[tuple[str, str | Path]]
) -> list[_Variant]:
    variants = [_Variant("results", results, None)]
    if target_mapping is not None:
        mapping = load_target_mapping(target_mapping)
        classes, _ = read_header_classes(results)
        if not classes:
            raise InputFileError(results, "has no classification_categories to remap with --target-mapping")
        check_mapping_covers(mapping, list(classes.values()), mapping_path=target_mapping, csv_path=results)
        variants.append(_Variant("remapped", results, mapping))
    names = {v.name for v in variants}
    for name, path in compare:
        if name in names:
            raise InputFileError(path, f"--compare name {name!r} used twice; give NAME=RESULTS with distinct names")
        names.add(name)
        variants.append(_Variant(name, Path(path), None))
    return variants


def _taxa(variants: Sequence[_Variant], taxonomy: str | Path | None) -> dict[str, Taxon]:
    taxa: dict[str, Taxon] = {}
    for variant in variants:
        taxa.update(read_header_classes(variant.results)[1])
    if taxonomy is not None:
        taxa.update(load_taxonomy_file(taxonomy))
    return taxa


def _scan_all(
    variants: Sequence[_Variant],
    keys: set[str],
    rules: Rules,
    *,
    rank: str | None,
    taxa: dict[str, Taxon],
    ignore_case: bool,
) -> dict[Path, Scan]:
    """One pass per results file, naming detections for every variant of that file."""
    scans: dict[Path, Scan] = {}
    for path in dict.fromkeys(v.results for v in variants):

        def namers(classes: dict[str, str]) -> list[Namer]:
            return [Namer(classes, mapping=v.mapping, rank=rank, taxa=taxa) for v in variants]

        scans[path] = scan_results(path, keys, namers, rules, ignore_case=ignore_case)
        logger.info("read %d images of %s", scans[path].results_images, path)
    return scans


def _entities(
    truth: Labels,
    keys: set[str],
    scans: dict[Path, Scan],
    variants: Sequence[_Variant],
    rules: Rules,
    namer: Namer,
    summary: EvaluationSummary,
) -> list[Entity]:
    first = scans[variants[0].results]
    items: list[tuple[str, int | None, str]] = [(k, None, v) for k, v in sorted(truth.images.items()) if k in keys]
    items += [(k, i, v) for (k, i), v in sorted(truth.crops.items()) if k in keys]
    missing = [k for k, _, _ in items if k not in first.images]
    if items and len(missing) == len(items):
        raise InputFileError(
            truth.source,
            f"none of its {len(items)} labelled images is in {first.path} (e.g. {missing[0]!r}); "
            "paths must match the results' file values (try --ignore-case)",
        )
    if missing:
        summary.warnings["labels for images not in the results"] = len(missing)
        logger.warning(
            "%d labelled images are not in %s (e.g. %s): left out",
            len(missing), first.path, ", ".join(map(repr, missing[:_SHOWN])),
        )  # fmt: skip
    entities = []
    for key, index, label in items:
        if key not in first.images:
            continue
        votes = [
            scans[v.results].vote(key, i, index=index) for i, v in enumerate(variants) if key in scans[v.results].images
        ]
        if len(votes) < len(variants):
            summary.warnings["labelled images missing from a compared results file"] += 1
            continue
        won = [vote.winner(rules) for vote in votes]
        file = first.images[key][0]
        entities.append(
            Entity(
                key, file, index, namer.at_rank(rules.label(label)), tuple(w[0] for w in won), tuple(w[1] for w in won)
            )
        )
    return entities


def _sequence_entities(
    truth: Labels, scans: dict[Path, Scan], variants: Sequence[_Variant], rules: Rules, namer: Namer
) -> list[Entity]:
    members: dict[str, list[str]] = {}
    for key, seq in truth.sequences.items():
        if key in truth.images and all(key in scans[v.results].images for v in variants):
            members.setdefault(seq, []).append(key)
    entities = []
    for seq, keys in sorted(members.items()):
        labels = Counter(namer.at_rank(rules.label(truth.images[k])) for k in keys)
        kept = rules.collapse(labels)
        label = min(kept, key=lambda c: (-labels[c], c))
        won = []
        for i, variant in enumerate(variants):
            vote = Vote()
            for key in keys:
                vote.merge(scans[variant.results].vote(key, i))
            won.append(vote.winner(rules, collapse=True))
        entities.append(Entity(seq, seq, None, label, tuple(w[0] for w in won), tuple(w[1] for w in won)))
    return entities


def _warn_unknown_classes(entities: Sequence[Entity], scan: Scan, summary: EvaluationSummary, rules: Rules) -> None:
    """Labels no variant ever predicts and the first results cannot name: most likely a naming mismatch."""
    known = set(scan.classes) | {p for e in entities for p in e.predicted}
    known |= {rules.empty_label, rules.human_label, rules.vehicle_label, rules.unsure_label}
    unknown = sorted({e.label for e in entities} - known)
    if unknown:
        summary.warnings["label classes the classifier does not have"] = len(unknown)
        logger.warning(
            "%d label classes are not classes of %s (%s%s); learn a mapping with `megaclassifier learn-mapping`",
            len(unknown), scan.path, ", ".join(unknown[:_SHOWN]), " ..." if len(unknown) > _SHOWN else "",
        )  # fmt: skip


def _folder_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "variant"


def _write_level(folder: Path, suffix: str, name: str, entities: Sequence[Entity], i: int) -> Scores:
    scores = score([e.label for e in entities], [e.predicted[i] for e in entities])
    write_per_class(folder / f"per_class{suffix}.csv", scores)
    write_matrix(folder / f"confusion_matrix{suffix}.csv", scores)
    level = "sequence" if suffix else "image"
    title = f"{name}: {scores.total} {level}s, accuracy {scores.accuracy:.3f}"
    write_heatmap(folder / f"confusion_matrix{suffix}.png", scores, title=title)
    return scores


def _write_predictions(path: Path, entities: Sequence[Entity], variants: Sequence[_Variant]) -> None:
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "detection", "label", *(c for v in variants for c in (v.name, f"{v.name}_score"))])
        for e in entities:
            pairs = (c for p, s in zip(e.predicted, e.scores, strict=True) for c in (p, f"{s:.4f}"))
            writer.writerow([e.file, "" if e.detection is None else e.detection, e.label, *pairs])


def _write_comparison(path: Path, summary: EvaluationSummary) -> None:
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["variant", "level", "entities", "accuracy", "macro_precision", "macro_recall", "macro_f1"])
        for v in summary.variants:
            for level, s in v.levels.items():
                macro = (s.macro("precision"), s.macro("recall"), s.macro("f1"))
                writer.writerow([v.name, level, s.total, f"{s.accuracy:.4f}", *(f"{m:.4f}" for m in macro)])


def _write_summary(path: Path, summary: EvaluationSummary, rules: Rules, truth: Labels, rank: str | None) -> None:
    write_json_atomic(
        path,
        {
            "labels": {"source": str(truth.source), "kind": truth.kind, "labelled": len(truth)},
            "rules": {**rules.__dict__, "rank": rank},
            "held_out_only": summary.held_out,
            "entities": summary.entities,
            "sequences": summary.sequences,
            "warnings": dict(summary.warnings),
            "variants": [
                {
                    "name": v.name,
                    "results": str(v.results),
                    **{
                        level: {"accuracy": s.accuracy, "macro_f1": s.macro("f1"), "entities": s.total}
                        for level, s in v.levels.items()
                    },
                }
                for v in summary.variants
            ],
        },
    )
