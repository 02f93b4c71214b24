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
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from megaclassifier.crop.exif import CaptureTime
from megaclassifier.formats.atomic import atomic_output, atomic_path
from megaclassifier.formats.naming import display_name
from megaclassifier.formats.results_table import ResultsTable, image_folder

if TYPE_CHECKING:
    import pandas as pd

DETECTION_COLUMNS = [
    "file", "folder", "datetime", "detection_index", "detection_category", "detection_conf",
    "bbox_x", "bbox_y", "bbox_width", "bbox_height", "top_class", "top_score", "second_class", "second_score",
]  # fmt: skip
IMAGE_COLUMNS = ["file", "folder", "datetime", "species", "count", "max_score"]
#: The label of an image without detections at the threshold.
BLANK = "blank"


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


def write_csv(out: Path, detections: pd.DataFrame, images: pd.DataFrame) -> list[Path]:
    """Write ``OUT`` and ``OUT_images.csv`` atomically; return both paths."""
    written = []
    for path, frame in ((out, detections), (images_csv_path(out), images)):
        with atomic_output(path) as f:
            frame.to_csv(f, index=False)
        written.append(path)
    return written


def write_xlsx(out: Path, detections: pd.DataFrame, images: pd.DataFrame) -> list[Path]:
    """Write one workbook with the sheets ``detections`` and ``images``, atomically.

    The rows are streamed into openpyxl's write-only workbook, so memory does
    not hold a second, cell-by-cell copy of the tables.
    """
    import pandas as pd
    from openpyxl import Workbook

    with atomic_path(out) as tmp:
        book = Workbook(write_only=True)
        for name, frame in (("detections", detections), ("images", images)):
            sheet = book.create_sheet(name)
            sheet.append(list(frame.columns))
            for row in frame.itertuples(index=False, name=None):
                sheet.append([None if pd.isna(v) else v for v in row])
        book.save(tmp)
    return [out]
