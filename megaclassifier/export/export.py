"""``export``: a results file as CSV or XLSX tables, a Camtrap DP package or SpeciesNet's predictions.json.

Reads the output of ``merge`` or ``run``, or a plain MegaDetector file (or a SpeciesNet
predictions.json). See :mod:`megaclassifier.export.tables` for the CSV/XLSX columns,
:mod:`megaclassifier.export.camtrap` for the package and :mod:`megaclassifier.export.speciesnet`
for predictions.json. Capture times come from
the images' EXIF headers under ``images_dir``; without it the tables' ``datetime``
column is empty, and a Camtrap DP package (which needs a time per image) cannot
be made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from megaclassifier.errors import MegaClassifierError
from megaclassifier.export.camtrap import CamtrapOptions, write_camtrap_dp
from megaclassifier.formats.detections import load_detections
from megaclassifier.formats.results_table import DEFAULT_DETECTION_THRESHOLD, read_results_table
from megaclassifier.images.exif import CaptureTime, capture_times

logger = logging.getLogger(__name__)

ExportFormat = Literal["csv", "xlsx", "camtrap-dp", "speciesnet"]
FORMATS: tuple[str, ...] = ("csv", "xlsx", "camtrap-dp", "speciesnet")


@dataclass
class ExportSummary:
    """What an ``export`` run wrote."""

    written: list[Path] = field(default_factory=list)
    images: int = 0
    detections: int = 0
    images_with_time: int = 0
    failed_images: int = 0
    media: int = 0
    observations: int = 0
    deployments: int = 0
    images_left_out: list[str] = field(default_factory=list)
    detections_classified: int = 0
    formulas_neutralised: int = 0
    characters_replaced: int = 0


def export_results(
    results_json: str | Path,
    out: str | Path,
    *,
    format: ExportFormat,
    images_dir: str | Path | None = None,
    threshold: float = DEFAULT_DETECTION_THRESHOLD,
    camtrap: CamtrapOptions | None = None,
) -> ExportSummary:
    """Write ``results_json`` as tables or a Camtrap DP package at ``out``.

    Args:
        results_json: output of ``merge`` or ``run``, or a MegaDetector file.
        out: ``csv``: the detections CSV (the per-image one goes beside it as
            ``<stem>_images.csv``); ``xlsx``: the workbook; ``camtrap-dp``: the package folder;
            ``speciesnet``: the predictions.json.
        format: ``csv``, ``xlsx``, ``camtrap-dp`` or ``speciesnet``.
        images_dir: where the images are, to read their EXIF capture times (``speciesnet``:
            written before each file as its ``filepath``).
        threshold: detections below this confidence are left out (not ``speciesnet``: it keeps every box).
        camtrap: deployments, contributors, title and time zone (``camtrap-dp`` only).

    Raises:
        InputFileError: a bad results file or deployments CSV.
        MegaClassifierError: ``camtrap-dp`` without ``images_dir`` or ``camtrap``,
            or see :func:`~megaclassifier.export.camtrap.write_camtrap_dp`.
    """
    if format == "camtrap-dp" and (images_dir is None or camtrap is None):
        raise MegaClassifierError("camtrap-dp needs --images-dir (for capture times) and --deployments")
    if format == "speciesnet":
        return _export_speciesnet(results_json, Path(out), images_dir)
    table = read_results_table(results_json, threshold=threshold)
    times: dict[str, CaptureTime | None] = {}
    if images_dir is not None:
        times = capture_times(table.images, Path(images_dir))
    summary = ExportSummary(
        images=len(table.images), detections=len(table.rows), failed_images=len(table.failures),
        images_with_time=sum(t is not None for t in times.values()),
    )  # fmt: skip
    out = Path(out)
    if format == "camtrap-dp":
        counts = write_camtrap_dp(out, table, times, camtrap)  # type: ignore[arg-type]
        summary.written = [out]
        summary.media, summary.observations, summary.deployments = counts.media, counts.observations, counts.deployments
        summary.images_left_out = counts.images_without_time
        for file in counts.images_without_time:
            logger.warning("%s: no EXIF capture time; left out of the Camtrap DP package", file)
        return summary
    from megaclassifier.export.tables import detections_frame, images_frame, write_csv, write_xlsx

    writer = write_csv if format == "csv" else write_xlsx
    tables = writer(out, detections_frame(table, times), images_frame(table, times))
    summary.written = tables.paths
    summary.formulas_neutralised, summary.characters_replaced = tables.formulas_neutralised, tables.characters_replaced
    return summary


def _export_speciesnet(results_json: str | Path, out: Path, images_dir: str | Path | None) -> ExportSummary:
    from megaclassifier.export.speciesnet import write_predictions_json

    counts = write_predictions_json(load_detections(results_json), out, images_dir=images_dir)
    return ExportSummary(written=[out], images=counts.images, detections=counts.detections,
                         failed_images=counts.failed, detections_classified=counts.classified)  # fmt: skip
