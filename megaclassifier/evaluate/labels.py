"""The user's labels, from the four places projects keep them, as one :class:`Labels`.

Four sources are read, told apart by what LABELS is:

* a **Timelapse CSV export** (any CSV with a ``File`` column): ``RelativePath``
  (``\\`` or ``/``) joined to ``File`` is the image; ``--label-column`` names the
  label column (default ``Species`` when there is one); rows whose ``DeleteFlag``
  is true are left out::

      File,RelativePath,DateTime,DeleteFlag,Species
      IMG_0001.JPG,cam1,2024-05-01 10:00:00,false,deer

* a **COCO Camera Traps JSON**: ``images`` (``id``, ``file_name``, optional
  ``seq_id`` and ``location``), ``annotations`` (``image_id``, ``category_id``) and
  ``categories`` (``id``, ``name``);
* a **folder per class** (``crops/deer/*.jpg``): a crop file (``...___crop00_md.jpg``)
  labels that one detection, its name read relative to its class folder; any other
  image labels the photo whose path is relative to LABELS (``deer/IMG_0001.JPG``);
* a **Camtrap DP** ``observations.csv`` (or the package folder holding it): the
  ``media.csv`` beside it gives each ``mediaID``'s ``filePath``; an observation's
  label is its ``scientificName`` for animals, else its ``observationType``
  (``human``, ``vehicle``, ``blank``); event-level observations (no ``mediaID``)
  label every media of their deployment between ``eventStart`` and ``eventEnd``.

Paths match the results' ``file`` with ``/`` for ``\\``, a leading ``./`` dropped,
and, with ``ignore_case``, lower-cased. Labels are lower-cased and trimmed; the
aliases ``blank``/``empty``/``none`` read as the empty label and ``person``/``people``
as the human label (see :class:`~megaclassifier.evaluate.rules.Rules`).
Rows without a label, deleted rows, duplicate rows and images with two different
labels are counted in :attr:`Labels.warnings`, never fatal: an image with two
labels keeps the first alphabetically, as MegaDetector's analysis does.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.naming import parse_crop_filename
from megaclassifier.formats.reading import open_text, read_json

#: Image suffixes a folder-per-class label source is read for.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")
_TRUE = {"true", "1", "yes", "y", "t"}
#: Warning names of :attr:`Labels.warnings`.
UNLABELLED, DELETED, DUPLICATE = "rows without a label", "deleted rows", "duplicate rows"
CONFLICTING, UNKNOWN_MEDIA = "images with two labels", "observations of no known media"


def match_key(file: str, *, ignore_case: bool = False) -> str:
    """The key an image path is matched by: ``/`` separators, no leading ``./``, lower case on request."""
    key = file.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key.lower() if ignore_case else key


def normalise_label(label: str) -> str:
    """A label as compared: trimmed, lower case."""
    return " ".join(label.split()).lower()


@dataclass
class Labels:
    """What the user says is in each image (or crop).

    Attributes:
        source: the LABELS path.
        kind: ``timelapse``, ``cct``, ``folders`` or ``camtrap-dp``.
        images: image key -> label.
        crops: (image key, detection index) -> label, for crops in class folders.
        sequences: image key -> sequence ID, where the source has them (CCT ``seq_id``, Camtrap DP ``eventID``).
        locations: image key -> camera or location (CCT ``location``, Camtrap DP ``deploymentID``,
            Timelapse ``RelativePath``).
        warnings: what was skipped or repaired, with counts.
    """

    source: Path
    kind: str
    images: dict[str, str] = field(default_factory=dict)
    crops: dict[tuple[str, int], str] = field(default_factory=dict)
    sequences: dict[str, str] = field(default_factory=dict)
    locations: dict[str, str] = field(default_factory=dict)
    warnings: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.images) + len(self.crops)

    def classes(self) -> list[str]:
        """The labels used, sorted."""
        return sorted(set(self.images.values()) | set(self.crops.values()))


class _Collector:
    """Gathers (key, label) pairs, counting duplicates and conflicts."""

    def __init__(self, labels: Labels, ignore_case: bool) -> None:
        self.labels = labels
        self.ignore_case = ignore_case
        self._all: dict[str, set[str]] = {}

    def add(self, file: str, label: str | None, *, repeats_ok: bool = False) -> str | None:
        """Record ``label`` for ``file``; returns the key, or None when the label is empty.

        ``repeats_ok``: the same label again is normal (several boxes of one species), not a duplicate row.
        """
        if label is None or not label.strip():
            self.labels.warnings[UNLABELLED] += 1
            return None
        key = match_key(file, ignore_case=self.ignore_case)
        seen = self._all.setdefault(key, set())
        name = normalise_label(label)
        if name in seen and not repeats_ok:
            self.labels.warnings[DUPLICATE] += 1
        seen.add(name)
        return key

    def finish(self) -> Labels:
        for key, names in self._all.items():
            if len(names) > 1:
                self.labels.warnings[CONFLICTING] += 1
            self.labels.images[key] = min(names)
        return self.labels


def read_labels(path: str | Path, *, label_column: str | None = None, ignore_case: bool = False) -> Labels:
    """Read LABELS, whichever of the four sources it is.

    Args:
        path: a Timelapse CSV, a COCO Camera Traps JSON, a folder per class, or a Camtrap DP
            ``observations.csv`` (or its package folder).
        label_column: the label column of a Timelapse CSV (default ``Species``) or of
            ``observations.csv`` (default ``scientificName``).
        ignore_case: match image paths case-insensitively.

    Raises:
        InputFileError: the file is missing or none of the four; the message names it.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "observations.csv").is_file():
            return _read_camtrap(path / "observations.csv", label_column, ignore_case)
        return _read_folders(path, ignore_case)
    if not path.is_file():
        raise InputFileError(path, "no such file or folder")
    if path.name.lower().endswith(".json"):
        return _read_cct(path, ignore_case)
    header = _csv_header(path)
    if "observationID" in header and "observationType" in header:
        return _read_camtrap(path, label_column, ignore_case)
    return _read_timelapse(path, header, label_column, ignore_case)


def _csv_header(path: Path) -> list[str]:
    try:
        with open_text(path) as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read as a CSV file ({e})") from None
    return [h.strip().lstrip("\ufeff") for h in header]


def _csv_rows(path: Path) -> Iterator[dict[str, str]]:
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [h.strip().lstrip("\ufeff") for h in reader.fieldnames or []]
            yield from reader
    except (csv.Error, UnicodeDecodeError) as e:
        raise InputFileError(path, f"not a readable CSV file ({e})") from None


def _pick_column(header: list[str], wanted: str | None, default: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in header:
            raise InputFileError(path, f"no column {wanted!r} (columns: {', '.join(header)})")
        return wanted
    if default not in header:
        raise InputFileError(
            path, f"no {default!r} column; name the label column with --label-column (columns: {', '.join(header)})"
        )
    return default


def _read_timelapse(path: Path, header: list[str], label_column: str | None, ignore_case: bool) -> Labels:
    by_lower = {h.lower(): h for h in header}
    file_column = by_lower.get("file")
    if file_column is None:
        raise InputFileError(
            path,
            "not a labels file: expected a Timelapse CSV (a 'File' column), a Camtrap DP observations.csv, "
            "a COCO Camera Traps .json or a folder per class",
        )
    column = _pick_column(header, label_column, "Species", path)
    folder_column, delete_column = by_lower.get("relativepath"), by_lower.get("deleteflag")
    collector = _Collector(Labels(path, "timelapse"), ignore_case)
    for row in _csv_rows(path):
        if delete_column and (row.get(delete_column) or "").strip().lower() in _TRUE:
            collector.labels.warnings[DELETED] += 1
            continue
        folder = (row.get(folder_column) or "").strip() if folder_column else ""
        file = f"{folder}/{row.get(file_column) or ''}" if folder else row.get(file_column) or ""
        key = collector.add(file, row.get(column))
        if key is not None and folder:
            collector.labels.locations[key] = match_key(folder, ignore_case=ignore_case)
    return collector.finish()


def _read_cct(path: Path, ignore_case: bool) -> Labels:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputFileError(path, 'no "images" list; is this a COCO Camera Traps file?')
    annotations, categories = data.get("annotations"), data.get("categories")
    if not isinstance(annotations, list) or not isinstance(categories, list):
        raise InputFileError(path, 'needs "annotations" and "categories" lists (COCO Camera Traps)')
    names = {c.get("id"): str(c.get("name", "")) for c in categories if isinstance(c, dict)}
    files: dict[Any, dict[str, Any]] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("file_name"), str) or "id" not in image:
            raise InputFileError(path, f'images[{i}] needs "id" and "file_name"')
        files[image["id"]] = image
    collector = _Collector(Labels(path, "cct"), ignore_case)
    labelled = set()
    for i, ann in enumerate(annotations):
        image = files.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if image is None or ann.get("category_id") not in names:
            raise InputFileError(path, f"annotations[{i}]: unknown image_id or category_id")
        key = collector.add(image["file_name"], names[ann["category_id"]], repeats_ok=True)
        if key is None:
            continue
        labelled.add(image["id"])
        if image.get("seq_id") is not None:
            collector.labels.sequences[key] = str(image["seq_id"])
        if image.get("location") is not None:
            collector.labels.locations[key] = str(image["location"])
    collector.labels.warnings[UNLABELLED] += len(files.keys() - labelled)
    return collector.finish()


def _read_folders(root: Path, ignore_case: bool) -> Labels:
    labels = Labels(root, "folders")
    collector = _Collector(labels, ignore_case)
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputFileError(root, "a folder without class folders (expected LABELS/<class>/<image>.jpg)")
    for folder in classes:
        for file in _images_below(folder):
            inner = file.relative_to(folder).as_posix()
            try:
                crop = parse_crop_filename(inner)
            except ValueError:
                collector.add(file.relative_to(root).as_posix(), folder.name)
                continue
            key = (match_key(crop.file, ignore_case=ignore_case), crop.index)
            if key in labels.crops and labels.crops[key] != normalise_label(folder.name):
                labels.warnings[CONFLICTING] += 1
            labels.crops.setdefault(key, normalise_label(folder.name))
    return collector.finish()


def _images_below(folder: Path) -> Iterable[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


_CAMTRAP_TYPES = {"human": "human", "vehicle": "vehicle", "blank": "empty"}


def _read_camtrap(path: Path, label_column: str | None, ignore_case: bool) -> Labels:
    media_path = path.parent / "media.csv"
    if not media_path.is_file():
        raise InputFileError(
            path, f"a Camtrap DP observations table needs media.csv beside it ({media_path} is missing)"
        )
    media = {row.get("mediaID", ""): row for row in _csv_rows(media_path)}
    column = _pick_column(_csv_header(path), label_column, "scientificName", path)
    collector = _Collector(Labels(path, "camtrap-dp"), ignore_case)
    for row in _csv_rows(path):
        label = _camtrap_label(row, column)
        items = _observation_media(row, media)
        if not items:
            collector.labels.warnings[UNKNOWN_MEDIA] += 1
        for item in items:
            key = collector.add(item.get("filePath", ""), label, repeats_ok=True)
            if key is not None and item.get("deploymentID"):
                collector.labels.locations[key] = item["deploymentID"]
            if key is not None and (row.get("eventID") or "").strip():
                collector.labels.sequences[key] = row["eventID"].strip()
    return collector.finish()


def _camtrap_label(row: dict[str, str], column: str) -> str | None:
    kind = (row.get("observationType") or "").strip().lower()
    if kind == "animal" or column != "scientificName":
        return row.get(column) or None
    return _CAMTRAP_TYPES.get(kind)  # unknown, unclassified: no label


def _observation_media(row: dict[str, str], media: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    media_id = (row.get("mediaID") or "").strip()
    if media_id:
        return [media[media_id]] if media_id in media else []
    start, end = _time(row.get("eventStart")), _time(row.get("eventEnd"))
    if start is None or end is None:
        return []
    deployment = row.get("deploymentID")
    return [
        m
        for m in media.values()
        if m.get("deploymentID") == deployment and (t := _time(m.get("timestamp"))) is not None and start <= t <= end
    ]


def _time(value: str | None) -> dt.datetime | None:
    try:
        stamp = dt.datetime.fromisoformat((value or "").strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.timezone.utc)
