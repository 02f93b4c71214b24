"""``combine``: the shards of ``run --shard`` back into one results file.

Every shard must carry ``info.megaclassifier_shard`` (see
:mod:`megaclassifier.run.shards`) with the same shard count, detections file,
model and options; together they must hold each image of the detections file
exactly once. The images go back to their places, the classes are the union of the
shards' (an ensemble's shard lists the rolled-up taxa it used), ``info.megaclassifier_shard``
is dropped and ``info.classification_completion_time`` is the latest of the
shards', so the file equals the unsharded ``run``'s except for that time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.detections import DetectionResults, load_detections, write_detections
from megaclassifier.run.shards import SHARD_KEY, shard_of

_COMPLETION_TIME = "classification_completion_time"
#: Class maps that a shard fills with the classes it used (the ensemble's rolled-up taxa).
_CLASS_MAPS = ("classification_categories", "classification_category_descriptions")


@dataclass
class CombineSummary:
    """What :func:`combine_shards` wrote."""

    shards: int = 0
    images: int = 0
    output_json: Path = field(default_factory=Path)


def combine_shards(output_json: str | Path, shard_files: Sequence[str | Path]) -> CombineSummary:
    """Merge the outputs of ``run --shard I/N`` (all N of them) into ``output_json``.

    Raises:
        InputFileError: a file is not a shard output, or its record does not fit its images.
        MegaClassifierError: the shards come from different runs, or a shard is missing or given twice.
    """
    shards = [load_detections(path) for path in shard_files]
    records = [_shard_record(results) for results in shards]
    _check_same_run(shards, records)
    _check_complete(shards, records)
    data = _combined(shards, records)
    write_detections(output_json, data)
    return CombineSummary(len(shards), len(data["images"]), Path(output_json))


def _shard_record(results: DetectionResults) -> dict[str, Any]:
    """``info.megaclassifier_shard``, checked against the file's own images."""
    record = results.info.get(SHARD_KEY)
    if not isinstance(record, dict):
        raise InputFileError(results.path, f"no info.{SHARD_KEY}; is this the output of run --shard?")
    try:
        index, count, positions = int(record["index"]), int(record["count"]), list(record["positions"])
        total = int(record["images_total"])
    except (KeyError, TypeError, ValueError):
        raise InputFileError(results.path, f"info.{SHARD_KEY} lacks index, count, images_total or positions") from None
    if len(positions) != len(results.images):
        raise InputFileError(
            results.path, f"info.{SHARD_KEY} lists {len(positions)} positions for {len(results.images)} images"
        )
    for image in results.images:
        if shard_of(image["file"], count) != index:
            raise InputFileError(results.path, f"image {image['file']!r} does not belong to shard {index}/{count}")
    return {**record, "index": index, "count": count, "positions": positions, "images_total": total}


def _check_same_run(shards: list[DetectionResults], records: list[dict[str, Any]]) -> None:
    """The same detections file, model, options and shard count in every shard."""
    first = records[0]
    for results, record in zip(shards, records, strict=True):
        for key, what in (("count", "shard count"), ("images_total", "image count"), ("run", "run")):
            if record.get(key) != first.get(key):
                raise MegaClassifierError(
                    f"{results.path}: not the same {what} as {shards[0].path}: "
                    f"{_differences(record.get(key), first.get(key))}; "
                    "combine only the shards of one run (same detections file, model and options)"
                )


def _differences(a: Any, b: Any) -> str:
    """The keys (dotted) whose values differ, or the two values."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = [k for k in {**b, **a} if a.get(k) != b.get(k)]
        return ", ".join(f"{k} ({_differences(a.get(k), b.get(k))})" for k in keys)
    return f"{json.dumps(a)} vs {json.dumps(b)}"


def _check_complete(shards: list[DetectionResults], records: list[dict[str, Any]]) -> None:
    """Each shard once, and together every image once."""
    count = records[0]["count"]
    seen: dict[int, Path] = {}
    for results, record in zip(shards, records, strict=True):
        if record["index"] in seen:
            raise MegaClassifierError(
                f"{results.path}: shard {record['index']}/{count} is also {seen[record['index']]}; give each shard once"
            )
        seen[record["index"]] = results.path
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise MegaClassifierError(f"shards missing: {names}; combine needs all {count} shards of the run")
    positions = sorted(p for record in records for p in record["positions"])
    if positions != list(range(records[0]["images_total"])):
        raise MegaClassifierError(
            f"the shards hold {len(positions)} image places, {len(set(positions))} distinct, "
            f"for {records[0]['images_total']} images; were they edited?"
        )


def _combined(shards: list[DetectionResults], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The first shard's top level with every shard's images in their places."""
    images: list[Any] = [None] * records[0]["images_total"]
    for results, record in zip(shards, records, strict=True):
        for position, image in zip(record["positions"], results.images, strict=True):
            images[position] = image
    first = dict(shards[0].data)
    for key in _CLASS_MAPS:
        if isinstance(first.get(key), dict):
            first[key] = _union([s.data.get(key) for s in shards])
    info = {key: value for key, value in first["info"].items() if key != SHARD_KEY}
    times = [str(s.info[_COMPLETION_TIME]) for s in shards if _COMPLETION_TIME in s.info]
    if times:
        info[_COMPLETION_TIME] = max(times)
    return {key: info if key == "info" else images if key == "images" else value for key, value in first.items()}


def _union(maps: list[Any]) -> dict[str, Any]:
    """The classes of every shard: the first shard's, then the others' (numeric IDs in order) when they add any.

    The IDs of a run's classes are fixed by its model (:mod:`megaclassifier.postprocess.ensemble`), so the
    shards never disagree on one.
    """
    union = dict(maps[0])
    for other in maps[1:]:
        for key, value in (other or {}).items():
            union.setdefault(key, value)
    if len(union) > len(maps[0]) and all(key.isdigit() for key in union):
        union = dict(sorted(union.items(), key=lambda item: int(item[0])))
    return union
