"""``run``'s resume: journal each finished image, and after a crash do only the rest.

The journal (:mod:`megaclassifier.formats.journal`) sits beside the output
JSON. Its records are images, written when the last of their crops has been
classified::

    {"file": "cam1/IMG_0001.JPG", "cut": {"planned": 2, "size_zero": 0, ...},
     "crops": [[0, [["3", 0.91]], ["cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg", "0.91", ...]], ...]}

Each crop: its detection index, its ``classifications`` list and, with
``--output-csv``, its probability CSV row as written. A rerun with the same
fingerprint (model hash, input size, detections file, options) replays those
images (their rows into the CSV, their classifications into the merge, their
counts into the summary) and decodes only the others. Images finish in input
order, so the replayed CSV rows come first, as in an uninterrupted run. An image
that failed with no crop is not journaled: a rerun tries it again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from megaclassifier.crop.core import CutImage, PlannedCrop
from megaclassifier.formats.atomic import file_sha256
from megaclassifier.formats.journal import Fingerprint, Journal, file_stamp, open_journal
from megaclassifier.merge import Classifications, CropRef

if TYPE_CHECKING:
    from megaclassifier.formats.probabilities import ProbabilityCsvWriter
    from megaclassifier.run.classifier import Classifier
    from megaclassifier.run.pipeline import RunOptions, RunSummary

#: RunOptions fields that do not change the output (the rest are fingerprinted).
_NEUTRAL_OPTIONS = ("num_workers", "logdir", "timeout", "output_json", "restart")
#: RunOptions fields naming input files: fingerprinted by size and modification time.
_FILE_OPTIONS = ("classifier_categories", "target_mapping", "taxonomy")
#: The counts of a CutImage that the summary adds up.
_CUT_FIELDS = ("planned", "written", "existing", "size_zero", "downloaded", "failure", "warnings")

Plans = list[tuple[str, list[PlannedCrop]]]


class RowWriter(Protocol):
    """Where ``run`` writes probability CSV rows."""

    def write_rows(self, paths: Sequence[str], values: np.ndarray) -> None: ...


def run_fingerprint(detections_json: str | Path, classifier: Classifier, options: RunOptions) -> Fingerprint:
    """What ``run``'s outputs depend on: model hash, input size, the detections file, the options."""
    engine = classifier.engine
    settings = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in _NEUTRAL_OPTIONS}
    for name in _FILE_OPTIONS:
        settings[name] = file_stamp(settings[name])
    if settings.get("smooth") is not None:
        settings["smooth"] = repr(settings["smooth"])
    return {
        "model_sha256": file_sha256(engine.model_path),
        "image_size": engine.image_size,
        "engine": [engine.backend, engine.device, engine.precision, engine.arch],
        "input_file": file_stamp(detections_json),
        "options": settings,
    }


class RunResume:
    """The journal of one ``run``: replays an interrupted run's images and records the new ones.

    Args:
        journal: the open journal (:func:`open_run_resume`).
        summary: the run's summary; replayed images are counted in it.
    """

    def __init__(self, journal: Journal, summary: RunSummary) -> None:
        self.journal = journal
        self.summary = summary
        self.done = {record["file"]: record for record in journal.records}
        self._open: dict[str, dict[str, Any]] = {}  # file -> record being filled
        self._waiting: dict[str, int] = {}  # file -> crops not classified yet
        self._csv_rows: dict[str, list[str]] = {}  # crop key -> its CSV row, until its classifications come

    def pending(self, plans: Plans) -> Plans:
        """The images still to do (in order); the journaled ones are counted in the summary now."""
        for record in self.done.values():
            self.summary.crop.record(CutImage(record["file"], **record["cut"]))
            self.summary.classified += len(record["crops"])
        return [(file, crops) for file, crops in plans if file not in self.done]

    def csv(self, writer: ProbabilityCsvWriter | None) -> _JournaledCsv | None:
        """The CSV writer that journals its rows, after writing the replayed rows (None without ``--output-csv``)."""
        if writer is None:
            return None
        for record in self.done.values():
            writer.write_formatted([row for _, _, row in record["crops"]])
        return _JournaledCsv(writer, self._csv_rows)

    def watch(self, images: Iterator[CutImage[np.ndarray]]) -> Iterator[CutImage[np.ndarray]]:
        """Pass the prepared images on, noting which crops each waits for."""
        for image in images:
            ready = sum(1 for _, array in image.crops if array is not None)
            cut = {name: getattr(image, name) for name in _CUT_FIELDS}
            if ready == 0 and image.failure is not None:
                yield image  # not journaled: a rerun tries it again
                continue
            self._open[image.file] = {"file": image.file, "cut": cut, "crops": []}
            self._waiting[image.file] = ready
            if ready == 0:
                self._close(image.file)
            yield image

    def rows(
        self, rows: Iterator[tuple[CropRef, Classifications]], keys: dict[tuple[str, int], str]
    ) -> Iterator[tuple[CropRef, Classifications]]:
        """The replayed rows, then ``rows`` passed on and journaled image by image."""
        for record in self.done.values():
            for index, classifications, _ in record["crops"]:
                yield (record["file"], index), classifications
        for ref, classifications in rows:
            file, index = cast(tuple[str, int], ref)
            row = self._csv_rows.pop(keys[(file, index)], None)
            self._open[file]["crops"].append([index, classifications, row])
            self._waiting[file] -= 1
            if self._waiting[file] == 0:
                self._close(file)
            yield ref, classifications

    def _close(self, file: str) -> None:
        self.journal.append(self._open.pop(file))
        del self._waiting[file]


class _JournaledCsv:
    """A probability CSV writer that keeps each row's text for the journal."""

    def __init__(self, writer: ProbabilityCsvWriter, rows: dict[str, list[str]]) -> None:
        self.writer = writer
        self.rows = rows

    def write_rows(self, paths: Sequence[str], values: np.ndarray) -> None:
        rows = self.writer.format_rows(paths, values)
        self.writer.write_formatted(rows)
        self.rows.update((row[0], row) for row in rows)


def crop_keys(plans: Plans) -> dict[tuple[str, int], str]:
    """(file, detection index) -> crop key, for the planned crops."""
    return {(file, crop.index): crop.key for file, crops in plans for crop in crops}


def open_run_resume(
    detections_json: str | Path, classifier: Classifier, options: RunOptions, summary: RunSummary
) -> RunResume:
    """Open the journal beside ``options.output_json`` (see :func:`~megaclassifier.formats.journal.open_journal`)."""
    if options.output_csv is not None:
        from megaclassifier.formats.journal import remove_stale_temporaries

        remove_stale_temporaries(options.output_csv)
    fingerprint = run_fingerprint(detections_json, classifier, options)
    return RunResume(open_journal(options.output_json, fingerprint, restart=options.restart), summary)
