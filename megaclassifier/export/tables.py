"""The CSV and XLSX tables of ``export``: one row per detection, and one per image and species.

``detections`` (``OUT.csv``, or the sheet ``detections`` of ``OUT.xlsx``)::

    file,folder,datetime,detection_index,detection_category,detection_conf,bbox_x,bbox_y,bbox_width,bbox_height,
    top_class,top_score,second_class,second_score
    cam1/IMG_0001.JPG,cam1,2010-08-04T08:43:15,0,animal,0.93,0.1,0.2,0.3,0.4,deer,0.62,elk,0.31

``images`` (``OUT_images.csv``, or the sheet ``images``): per image, one row
per label with its detection count and best score; an image without
detections at the threshold has one row with label ``blank`` and count 0::

    file,folder,datetime,species,count,max_score
    cam1/IMG_0001.JPG,cam1,2010-08-04T08:43:15,deer,2,0.62
    cam1/IMG_0002.JPG,cam1,2010-08-04T08:44:01,blank,0,

``datetime`` is the EXIF capture time (``DateTimeOriginal``, camera clock,
``+hh:mm`` appended when the camera recorded its offset); it is empty for
images without one, and for every image when no images folder is given.

In the XLSX workbook ``datetime`` is a date-time cell (the camera's clock:
spreadsheets hold no time zone) followed by a ``utc_offset`` text column
(``+03:00``, empty when the camera wrote none); numbers are number cells.

Spreadsheet safety, in both CSV and XLSX: a text value that a spreadsheet
would run as a formula (it begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return, as OWASP's *CSV Injection* page lists) is written with a
``'`` in front, so a class named ``=HYPERLINK("x")`` shows as that text and
never runs. Characters that XLSX (XML) cannot hold (control characters) are
replaced by U+FFFD in the workbook. Both are counted in :class:`TablesWritten`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from megaclassifier.formats.atomic import atomic_output, atomic_path
from megaclassifier.formats.naming import display_name
from megaclassifier.formats.results_table import ResultsTable, image_folder
from megaclassifier.images.exif import CaptureTime

if TYPE_CHECKING:
    import pandas as pd

DETECTION_COLUMNS = [
    "file", "folder", "datetime", "detection_index", "detection_category", "detection_conf",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height", "top_class", "top_score", "second_class", "second_score",
]  # fmt: skip
IMAGE_COLUMNS = ["file", "folder", "datetime", "species", "count", "max_score"]
#: The label of an image without detections at the threshold.
BLANK = "blank"
#: What a text value begins with when a spreadsheet would run it as a formula (OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Characters an XLSX cell (XML 1.0) cannot hold, as openpyxl refuses them.
_ILLEGAL_XML_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(.*)$")


@dataclass
class TablesWritten:
    """What :func:`write_csv` or :func:`write_xlsx` wrote.

    Attributes:
        paths: the files written.
        formulas_neutralised: text values written with a ``'`` in front (they looked like formulas).
        characters_replaced: characters XLSX cannot hold, replaced by U+FFFD (XLSX only).
    """

    paths: list[Path] = field(default_factory=list)
    formulas_neutralised: int = 0
    characters_replaced: int = 0


def neutralise_formula(value: str) -> str:
    """``value`` with a ``'`` in front when a spreadsheet would run it as a formula.

    >>> neutralise_formula('=HYPERLINK("x")')
    '\'=HYPERLINK("x")'
    """
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def format_time(time: CaptureTime | None) -> str | None:
    """A capture time as written in the tables (None: no time)."""
    if time is None:
        return None
    return time.local + (time.offset or "")


def detections_frame(table: ResultsTable, times: Mapping[str, CaptureTime | None]) -> pd.DataFrame:
    """One row per detection, :data:`DETECTION_COLUMNS`."""
    import pandas as pd

    records = [
        (display_name(r.file), display_name(image_folder(r.file)), format_time(times.get(r.file)),
         r.index, r.category, r.conf, *r.bbox,
         r.top_class, r.top_score, r.second_class, r.second_score)
        for r in table.rows
    ]  # fmt: skip
    return pd.DataFrame.from_records(records, columns=DETECTION_COLUMNS)


def images_frame(table: ResultsTable, times: Mapping[str, CaptureTime | None]) -> pd.DataFrame:
    """One row per image and label (``blank`` with count 0 for an image without detections)."""
    import pandas as pd

    counts: dict[str, dict[str, list[float]]] = {file: {} for file in table.images}
    for row in table.rows:
        counts[row.file].setdefault(row.label, []).append(row.score)
    records: list[tuple[str, str, str | None, str, int, float | None]] = []
    for file, labels in counts.items():
        head = (display_name(file), display_name(image_folder(file)), format_time(times.get(file)))
        if not labels:
            records.append((*head, BLANK, 0, None))
        records += [(*head, label, len(scores), max(scores)) for label, scores in labels.items()]
    return pd.DataFrame.from_records(records, columns=IMAGE_COLUMNS)


def images_csv_path(out: Path) -> Path:
    """Where the per-image CSV goes beside ``OUT.csv``: ``OUT_images.csv``."""
    return out.with_name(f"{out.stem}_images{out.suffix or '.csv'}")


def write_csv(out: Path, detections: pd.DataFrame, images: pd.DataFrame) -> TablesWritten:
    """Write ``OUT`` and ``OUT_images.csv`` atomically (formula-looking text neutralised)."""
    written = TablesWritten()
    for path, frame in ((out, detections), (images_csv_path(out), images)):
        safe, count = _neutralised(frame)
        with atomic_output(path) as f:
            safe.to_csv(f, index=False)
        written.paths.append(path)
        written.formulas_neutralised += count
    return written


def _neutralised(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of ``frame`` with its formula-looking text neutralised, and how many values were."""
    import pandas as pd

    frame, count = frame.copy(), 0
    for column in frame.columns:
        if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column]):
            texts = frame[column].map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS)).astype(bool)
            count += int(texts.sum())
            frame.loc[texts, column] = "'" + frame.loc[texts, column]
    return frame, count


def write_xlsx(out: Path, detections: pd.DataFrame, images: pd.DataFrame) -> TablesWritten:
    """Write one workbook with the sheets ``detections`` and ``images``, atomically.

    The rows are streamed into openpyxl's write-only workbook, so memory does
    not hold a second, cell-by-cell copy of the tables.
    """
    from openpyxl import Workbook

    written = TablesWritten(paths=[out])
    with atomic_path(out) as tmp:
        book = Workbook(write_only=True)
        for name, frame in (("detections", detections), ("images", images)):
            sheet = book.create_sheet(name)
            columns = list(frame.columns)
            at = columns.index("datetime") + 1
            sheet.append(columns[:at] + ["utc_offset"] + columns[at:])
            for row in frame.itertuples(index=False, name=None):
                cells = [_cell(v, written) for v in row]
                cells[at - 1 : at] = _time_cells(row[at - 1])
                sheet.append(cells)
        book.save(tmp)
    return written


def _cell(value: Any, written: TablesWritten) -> Any:
    """A value as an XLSX cell: None for a missing value, safe text, numbers as they are."""
    if value is None or value != value:  # None, NaN
        return None
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
        written.formulas_neutralised += 1
    value, replaced = _ILLEGAL_XML_RE.subn("\ufffd", value)
    written.characters_replaced += replaced
    return value


def _time_cells(text: str | None) -> list[datetime | str | None]:
    """A table's ``datetime`` text as a date-time cell and its UTC offset."""
    match = _TIME_RE.match(text) if isinstance(text, str) else None
    if match is None:
        return [None, None]
    return [datetime.fromisoformat(match[1]), match[2] or None]
