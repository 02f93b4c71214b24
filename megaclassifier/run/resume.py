"""``run``'s resume: journal each finished image, and after a crash do only the rest.

The journal (:mod:`megaclassifier.formats.journal`) sits beside the output
JSON. Its records are images, written when the last of their crops has been
classified::

    {"file": "cam1/IMG_0001.JPG", "cut": {"planned": 2, "size_zero": 0, ...},
     "crops": [[0, [["3", 0.91]], ["cam1/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg", "0.91", ...]], ...]}

Each crop: its detection index, its ``classifications`` list and, with
``--output-csv``, its probability CSV row as written. A rerun with the same
fingerprint (the run identity of :mod:`megaclassifier.run.identity`: the model's
content, input size, detections file and every option that changes the output;
then this machine's ``local`` options and the executor's engine) replays those
images (their rows into the CSV, their classifications into the merge, their
counts into the summary) and decodes only the others. Images finish in input
order, so the replayed CSV rows come first, as in an uninterrupted run. An image
that failed with no crop is not journaled: a rerun tries it again.

One journal for every executor: a local run, ``--ray`` and ``--shard`` all write and
replay these records through the driver, so a run interrupted under one resumes the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from megaclassifier.crop.core import CutImage
from megaclassifier.formats.journal import Journal, open_journal
from megaclassifier.merge import Classifications, CropRef
from megaclassifier.run.identity import journal_fingerprint

if TYPE_CHECKING:
    from megaclassifier.formats.probabilities import ProbabilityCsvWriter
    from megaclassifier.run.options import RunSummary
    from megaclassifier.run.plan import Plans, RunPlan

#: The counts of a CutImage that the summary adds up.
_CUT_FIELDS = ("planned", "written", "existing", "size_zero", "downloaded", "failure", "warnings")


class RowWriter(Protocol):
    """Where ``run`` writes probability CSV rows."""

    def write_rows(self, paths: Sequence[str], values: np.ndarray) -> None: ...


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

    def seen(self, image: CutImage[Any], ready: int) -> None:
        """Note an image as it is decoded: ``ready`` crops of it will be classified."""
        if ready == 0 and image.failure is not None:
            return  # not journaled: a rerun tries it again
        cut = {name: getattr(image, name) for name in _CUT_FIELDS}
        self._open[image.file] = {"file": image.file, "cut": cut, "crops": []}
        self._waiting[image.file] = ready
        if ready == 0:
            self._close(image.file)

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


def open_run_resume(plan: RunPlan, engine: list[Any], summary: RunSummary) -> RunResume:
    """Open the journal beside the output JSON (see :func:`~megaclassifier.formats.journal.open_journal`).

    Args:
        plan: the run.
        engine: the executor's engine key (backend, device, ...), part of the fingerprint.
        summary: the run's summary; replayed images are counted in it.
    """
    options = plan.options
    if options.output_csv is not None:
        from megaclassifier.formats.journal import remove_stale_temporaries

        remove_stale_temporaries(options.output_csv)
    fingerprint = journal_fingerprint(plan.identity, options, engine)
    return RunResume(open_journal(options.output_json, fingerprint, restart=options.restart), summary)
