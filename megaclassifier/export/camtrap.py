"""Camtrap DP 1.0 export: ``datapackage.json``, ``deployments.csv``, ``media.csv``, ``observations.csv``.

* one deployment per image folder (``.`` for images at the root); its
  coordinates come from a deployments CSV the user writes, one row per folder::

      folder,latitude,longitude,locationName,utc_offset
      cam1,51.496,4.774,north gate,+01:00
      kenya/c3,-0.391,36.962,river,+03:00

  (other optional columns: the Camtrap DP deployment fields in
  :data:`DEPLOYMENT_EXTRA`, and ``utc_offset``, the UTC offset of that
  folder's camera clock); start and end are its first and last capture time;
* one media row per image with an EXIF capture time (``mediaID``: a hash of
  ``file``); images without one cannot be media of Camtrap DP (``timestamp`` is
  required) and are left out, and counted;
* one observation per detection at the threshold (``observationLevel``
  ``media``, ``count`` 1, the box): ``observationType`` from the detection
  category (``animal``, ``person`` -> ``human``, ``vehicle``); for a classified
  box, ``scientificName`` is its top class's scientific name and the type that
  of the class (:mod:`megaclassifier.export.taxa`: a class without a taxon,
  such as ``other``, is ``unknown``, with its name in ``observationComments``),
  ``classificationMethod`` ``machine``, ``classifiedBy`` the classifier
  (``info.classifier``; the detector for unclassified boxes),
  ``classificationProbability`` its score; an image without detections gets
  one ``blank`` observation. Without a taxonomy (no
  ``classification_category_descriptions`` in the file, no ``--taxonomy``) no
  class name is taken for a scientific name: the class goes to
  ``observationComments`` and the type stays the detector's.
* ``taxonomic`` lists each scientific name with its ``taxonRank``, higher
  taxa and English common name.

EXIF times carry no time zone unless the camera wrote ``OffsetTimeOriginal``;
the others get their folder's ``utc_offset`` from the deployments CSV, else the
offset the user gives (``--utc-offset``). The package names the standard's
profile and table schemas by their 1.0.2 URLs.
"""

from __future__ import annotations

import csv
import hashlib
import mimetypes
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from megaclassifier import __version__
from megaclassifier.errors import InputFileError, MegaClassifierError, first_line
from megaclassifier.export.taxa import class_taxa, observation_type, scientific_name
from megaclassifier.formats.atomic import write_json_atomic
from megaclassifier.formats.naming import NAME_ERRORS, safe_relative_path
from megaclassifier.formats.results_table import DetectionRow, ResultsTable, folder_key, image_folder
from megaclassifier.images.exif import CaptureTime
from megaclassifier.labels.descriptions import Taxon

CAMTRAP_DP_VERSION = "1.0.2"
SCHEMA_BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}/"
PROFILE_URL = SCHEMA_BASE_URL + "camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
PACKAGE_FILES = ("datapackage.json", *(f"{name}.csv" for name in TABLES))

DEPLOYMENT_COLUMNS = [
    "deploymentID", "locationID", "locationName", "latitude", "longitude", "coordinateUncertainty",
    "deploymentStart", "deploymentEnd", "setupBy", "cameraID", "cameraModel", "cameraDelay", "cameraHeight",
    "cameraDepth", "cameraTilt", "cameraHeading", "detectionDistance", "timestampIssues", "baitUse", "featureType",
    "habitat", "deploymentGroups", "deploymentTags", "deploymentComments",
]  # fmt: skip
MEDIA_COLUMNS = [
    "mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic", "fileName",
    "fileMediatype", "exifData", "favorite", "mediaComments",
]  # fmt: skip
OBSERVATION_COLUMNS = [
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior", "individualID",
    "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY", "bboxWidth",
    "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp", "classificationProbability",
    "observationTags", "observationComments",
]  # fmt: skip
#: Optional columns of the deployments CSV, copied to ``deployments.csv``.
DEPLOYMENT_EXTRA = frozenset(DEPLOYMENT_COLUMNS) - {"deploymentID", "latitude", "longitude", "deploymentStart",
                                                    "deploymentEnd"}  # fmt: skip
_OBSERVATION_TYPE = {"animal": "animal", "person": "human", "human": "human", "vehicle": "vehicle"}
#: The deployments CSV's column of a folder's camera clock offset (not a Camtrap DP field; not copied).
UTC_OFFSET_COLUMN = "utc_offset"
_OFFSET_RE = re.compile(r"^(Z|[+-](0\d|1[0-4]):[0-5]\d)$")


@dataclass
class CamtrapOptions:
    """What Camtrap DP needs beyond the results.

    Attributes:
        deployments_csv: ``folder,latitude,longitude[,...]``, one row per image folder.
        contributors: names; the first is the contact.
        project_title: ``project.title`` and the package title.
        utc_offset: ``+hh:mm`` of the cameras' clocks, for EXIF times without an offset
            in folders without a ``utc_offset`` in the deployments CSV.
        taxonomy: class name -> taxonomy CSV, for a results file without
            ``classification_category_descriptions``.
    """

    deployments_csv: Path
    contributors: Sequence[str]
    project_title: str
    utc_offset: str | None = None
    taxonomy: Path | None = None


@dataclass
class CamtrapCounts:
    """What went into the package."""

    deployments: int = 0
    media: int = 0
    observations: int = 0
    images_without_time: list[str] = field(default_factory=list)


def media_id(file: str) -> str:
    """The ``mediaID`` of an image: 16 hex digits of the SHA-1 of its ``file``."""
    return hashlib.sha1(file.encode("utf-8", NAME_ERRORS)).hexdigest()[:16]


def read_deployments_csv(path: Path) -> dict[str, dict[str, str]]:
    """``folder`` -> that folder's row (``latitude``, ``longitude``, optional deployment fields, ``utc_offset``).

    Raises:
        InputFileError: missing, without the required columns, with an unknown
            column, a repeated folder, or coordinates that are not numbers in range.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns = set(reader.fieldnames or [])
    except OSError as e:
        raise InputFileError(path, e.strerror or str(e)) from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(path, f"cannot read as a UTF-8 CSV ({first_line(e)})") from None
    missing = {"folder", "latitude", "longitude"} - columns
    if missing:
        raise InputFileError(path, f"no column {', '.join(sorted(missing))}; expected folder,latitude,longitude")
    unknown = columns - {"folder", "latitude", "longitude", UTC_OFFSET_COLUMN} - DEPLOYMENT_EXTRA
    if unknown:
        raise InputFileError(path, f"unknown column {', '.join(sorted(unknown))} (not a Camtrap DP deployment field)")
    out: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, 2):
        folder = folder_key(row["folder"] or "")  # siteA\cam1 as siteA/cam1
        if folder in out:
            raise InputFileError(path, f"line {line}: folder {folder!r} appears twice")
        _check_coordinate(path, line, row["latitude"], 90)
        _check_coordinate(path, line, row["longitude"], 180)
        offset = (row.get(UTC_OFFSET_COLUMN) or "").strip()
        if offset and not _OFFSET_RE.match(offset):
            raise InputFileError(
                path, f"line {line}: utc_offset {offset!r} is not a UTC offset like +02:00, -05:00 or Z"
            )
        out[folder] = {k: v for k, v in row.items() if k != "folder" and v}
    return out


def _check_coordinate(path: Path, line: int, value: str | None, limit: float) -> None:
    try:
        ok = abs(float(value or "")) <= limit
    except ValueError:
        ok = False
    if not ok:
        raise InputFileError(path, f"line {line}: {value!r} is not a coordinate within +-{limit}")


def media_timestamps(
    table: ResultsTable,
    times: Mapping[str, CaptureTime | None],
    utc_offset: str | None,
    folder_offsets: Mapping[str, str] | None = None,
) -> tuple[dict[str, datetime], list[str]]:
    """Aware capture times of the images that have one, and the images that have none.

    An EXIF time without its own offset gets its folder's (``folder_offsets``), else ``utc_offset``.

    Raises:
        MegaClassifierError: an image's time has no offset from any of them.
    """
    stamps, without = {}, []
    folder_offsets = folder_offsets or {}
    for file in table.images:
        time = times.get(file)
        if time is None:
            without.append(file)
            continue
        offset = time.offset or folder_offsets.get(image_folder(file)) or utc_offset
        if offset is None:
            raise MegaClassifierError(
                f"{file}: its EXIF time {time.local} has no UTC offset and Camtrap DP needs one; "
                "give --utc-offset (the cameras' clock, e.g. +02:00) or a utc_offset column in --deployments"
            )
        stamps[file] = datetime.fromisoformat(time.local + offset.replace("Z", "+00:00"))
    return stamps, without


def write_camtrap_dp(
    out: Path, table: ResultsTable, times: Mapping[str, CaptureTime | None], options: CamtrapOptions
) -> CamtrapCounts:
    """Write a Camtrap DP package folder at ``out`` (all four files appear together).

    Raises:
        InputFileError: a bad deployments CSV, or a folder missing from it.
        MegaClassifierError: no image has a capture time, a time zone is missing,
            or ``out`` holds other files.
    """
    _check_out(out)
    deployments = read_deployments_csv(options.deployments_csv)
    offsets = {folder: row[UTC_OFFSET_COLUMN] for folder, row in deployments.items() if row.get(UTC_OFFSET_COLUMN)}
    stamps, without = media_timestamps(table, times, options.utc_offset, offsets)
    taxa = class_taxa(sorted({r.top_class for r in table.rows if r.top_class is not None}), table.descriptions,
                      options.taxonomy)  # fmt: skip
    if not stamps:
        raise MegaClassifierError(
            f"{table.path}: no image has an EXIF capture time, which every Camtrap DP media row needs "
            "(is --images-dir right?)"
        )
    folders = sorted({image_folder(file) for file in stamps})
    unknown = [f for f in folders if f not in deployments]
    if unknown:
        raise InputFileError(options.deployments_csv, f"no row for folder {', '.join(map(repr, unknown[:5]))}")
    counts = CamtrapCounts(images_without_time=without)
    tables = {
        "deployments": list(_deployment_rows(folders, deployments, stamps)),
        "media": [_media_row(file, stamp) for file, stamp in stamps.items()],
        "observations": list(_observation_rows(table, stamps, taxa)),
    }
    counts.deployments, counts.media, counts.observations = (len(tables[name]) for name in TABLES)
    descriptor = _descriptor(table, tables, stamps, options, taxa)
    _write_folder(out, tables, descriptor)
    return counts


def _check_out(out: Path) -> None:
    if out.exists() and not (out.is_dir() and {p.name for p in out.iterdir()} <= set(PACKAGE_FILES)):
        raise MegaClassifierError(f"{out}: exists and is not a Camtrap DP package folder; choose a new folder")


def _deployment_rows(
    folders: list[str], deployments: dict[str, dict[str, str]], stamps: dict[str, datetime]
) -> Iterator[dict[str, Any]]:
    by_folder: dict[str, list[datetime]] = {}
    for file, stamp in stamps.items():
        by_folder.setdefault(image_folder(file), []).append(stamp)
    for folder in folders:
        times = by_folder[folder]
        row = {"deploymentID": folder, **{k: v for k, v in deployments[folder].items() if k != UTC_OFFSET_COLUMN}}
        row["deploymentStart"], row["deploymentEnd"] = min(times).isoformat(), max(times).isoformat()
        yield row


def _media_row(file: str, stamp: datetime) -> dict[str, Any]:
    path = safe_relative_path(file)
    return {
        "mediaID": media_id(file),
        "deploymentID": image_folder(file),
        "captureMethod": "activityDetection",
        "timestamp": stamp.isoformat(),
        "filePath": path.as_posix(),
        "filePublic": "false",
        "fileName": path.name,
        "fileMediatype": mimetypes.guess_type(path.name)[0] or "image/jpeg",
    }


def _observation_rows(
    table: ResultsTable, stamps: dict[str, datetime], taxa: dict[str, Taxon] | None
) -> Iterator[dict[str, Any]]:
    seen = set()
    for row in table.rows:
        if row.file in stamps:
            seen.add(row.file)
            yield _observation(row, stamps[row.file], table, taxa)
    for file, stamp in stamps.items():
        if file not in seen:
            yield {**_observation_base(file, stamp, f"{media_id(file)}_blank"), "observationType": "blank"}


def _observation_base(file: str, stamp: datetime, observation_id: str) -> dict[str, Any]:
    return {
        "observationID": observation_id,
        "deploymentID": image_folder(file),
        "mediaID": media_id(file),
        "eventStart": stamp.isoformat(),
        "eventEnd": stamp.isoformat(),
        "observationLevel": "media",
    }


def _observation(
    row: DetectionRow, stamp: datetime, table: ResultsTable, taxa: dict[str, Taxon] | None
) -> dict[str, Any]:
    out = _observation_base(row.file, stamp, f"{media_id(row.file)}_{row.index}")
    out["observationType"] = _OBSERVATION_TYPE.get(row.category, "unknown")
    out["count"] = 1
    out.update(_bbox_fields(row.bbox))
    out["classificationMethod"] = "machine"
    if row.top_class is not None:
        out.update(_classified(row.top_class, None if taxa is None else taxa[row.top_class]))
        out["classifiedBy"] = table.classifier or "megaclassifier"
    else:
        out["classifiedBy"] = table.detector or "MegaDetector"
    out["classificationProbability"] = round(row.score, 6)
    return out


def _classified(name: str, taxon: Taxon | None) -> dict[str, str]:
    """``scientificName`` and ``observationType`` of a class (the class in the comments when no taxon)."""
    if taxon is None:
        return {"observationComments": f"classifier class: {name} (no taxonomy: give --taxonomy)"}
    scientific = scientific_name(taxon)
    if scientific is None:
        return {"observationType": observation_type(taxon), "observationComments": f"classifier class: {name}"}
    return {"observationType": observation_type(taxon), "scientificName": scientific.name}


def _bbox_fields(bbox: tuple[float, float, float, float]) -> dict[str, float]:
    """The box clamped into the image; nothing for a box of no area."""
    x, y = min(max(bbox[0], 0.0), 1.0), min(max(bbox[1], 0.0), 1.0)
    w, h = min(bbox[2], 1.0 - x), min(bbox[3], 1.0 - y)
    if w <= 0 or h <= 0:
        return {}
    return {"bboxX": round(x, 6), "bboxY": round(y, 6), "bboxWidth": round(w, 6), "bboxHeight": round(h, 6)}


def _descriptor(
    table: ResultsTable,
    tables: dict[str, list[dict[str, Any]]],
    stamps: dict[str, datetime],
    options: CamtrapOptions,
    taxa: dict[str, Taxon] | None,
) -> dict[str, Any]:
    used = {r["scientificName"] for r in tables["observations"] if r.get("scientificName")}
    names = {s.name: s for s in map(scientific_name, (taxa or {}).values()) if s is not None and s.name in used}
    return {
        "resources": [_resource(name) for name in TABLES],
        "profile": PROFILE_URL,
        "name": re.sub(r"[^a-z0-9._-]+", "-", options.project_title.lower()).strip("-") or "camtrap-dp",
        "id": str(uuid.uuid4()),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": options.project_title,
        "description": f"Detections of {table.detector or 'MegaDetector'}, classified by "
        f"{table.classifier or 'no classifier'}, exported by megaclassifier {__version__}.",
        "contributors": [
            {"title": name, "role": "contact" if i == 0 else "contributor"}
            for i, name in enumerate(options.contributors)
        ],
        "sources": [{"title": "megaclassifier", "version": __version__}],
        "project": {
            "title": options.project_title,
            "samplingDesign": "opportunistic",
            "captureMethod": ["activityDetection"],
            "individualAnimals": False,
            "observationLevel": ["media"],
        },
        "spatial": _spatial(tables["deployments"]),
        "temporal": {"start": min(stamps.values()).date().isoformat(), "end": max(stamps.values()).date().isoformat()},
        "taxonomic": [names[name].taxonomic() for name in sorted(names)],
    }


def _resource(name: str) -> dict[str, str]:
    return {
        "name": name,
        "path": f"{name}.csv",
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": f"{SCHEMA_BASE_URL}{name}-table-schema.json",
    }


def _spatial(deployments: list[dict[str, Any]]) -> dict[str, Any]:
    """GeoJSON of the deployments: a point, or their bounding box."""
    lats = [float(d["latitude"]) for d in deployments]
    lons = [float(d["longitude"]) for d in deployments]
    if len(set(zip(lats, lons, strict=True))) == 1:
        return {"type": "Point", "coordinates": [lons[0], lats[0]]}
    w, e, s, n = min(lons), max(lons), min(lats), max(lats)
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def _write_folder(out: Path, tables: dict[str, list[dict[str, Any]]], descriptor: dict[str, Any]) -> None:
    """Write the package into a temporary folder beside ``out``, then put it in place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        columns = {"deployments": DEPLOYMENT_COLUMNS, "media": MEDIA_COLUMNS, "observations": OBSERVATION_COLUMNS}
        for name in TABLES:
            with open(tmp / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, columns[name], lineterminator="\n")
                writer.writeheader()
                writer.writerows(tables[name])
        write_json_atomic(tmp / "datapackage.json", descriptor, indent=2, ensure_ascii=False)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
