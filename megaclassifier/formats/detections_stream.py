"""MegaDetector results read and written one image at a time, so large files stay lean.

:class:`StreamedResults` reads the top-level fields (``info``, the category
maps, anything else) once and then yields the ``images`` one by one, as many
passes as asked, without holding the list. :func:`results_writer` writes the
same layout as :func:`megaclassifier.formats.detections.write_detections`
(indent 1, ASCII-escaped, top-level key order kept): images are spooled to a
temporary file as they come, and the file is assembled and renamed into place
when the header is final (steps may add classes while they go).
:class:`InMemoryResults` gives a loaded dict the same interface.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import atomic_path
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.formats.detections import check_image as detections_check_image
from megaclassifier.formats.json_input import SlowPathNeeded, json_events, json_items
from megaclassifier.formats.predictions_json import is_predictions_json, predictions_to_results

_HINT = "; is this a MegaDetector output file?"


class InMemoryResults:
    """A loaded results dict; ``header`` is the dict itself and is edited in place.

    A :class:`~megaclassifier.formats.detections.DetectionResults` (``load_detections`` checked
    its images when it read them) is taken as it is: its images are not checked again, only
    the ``classifications`` added since. A plain dict's images are checked as they are read.
    """

    def __init__(self, data: dict[str, Any] | DetectionResults, source: str = "<results>") -> None:
        self.checked = isinstance(data, DetectionResults)
        if isinstance(data, DetectionResults):
            source = str(data.path)
            data = data.data
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputFileError(source, f'no "images" list{_HINT}')
        self.header = data
        self.source = source

    def images(self) -> Iterator[dict[str, Any]]:
        """The images, in order (edits are kept)."""
        check = check_classifications if self.checked else check_image
        for i, image in enumerate(self.header["images"]):
            check(i, image, self.source)
            yield image

    def files(self) -> Iterator[str]:
        """Each image's ``file``."""
        for image in self.images():
            yield image["file"]


class StreamedResults:
    """A results file on disk, read lazily.

    Memory stays bounded by the largest single value, whatever the file's shape: the header
    scan reads the whole file as basic parser events
    (:func:`~megaclassifier.formats.json_input.json_events`), which bounds its nesting; then the
    passes over the images use ijson's C ``items`` (fast), as long as the file is unchanged
    since (else it is scanned again).

    A SpeciesNet predictions.json is converted in memory when its header is scanned
    (:mod:`~megaclassifier.formats.predictions_json`); each pass then gives copies of its images.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(path)
        self._scan()

    def _scan(self) -> None:
        self._pure_python = False
        self._state = _state(self.path)
        try:
            self.header, self._converted = _read_top(self.path)
        except SlowPathNeeded:  # a lone surrogate (a name that is not UTF-8) or a 20-digit integer
            self._pure_python = True
            self.header, self._converted = _read_top(self.path, pure_python=True)

    def _items(self, prefix: str) -> Iterator[Any]:
        if _state(self.path) != self._state:  # changed since its nesting was checked: check again
            self._scan()
        if self._converted is not None:  # a predictions.json, converted when scanned
            yield from (copy.deepcopy(image) for image in self._converted)
            return
        with _open(self.path) as f:
            yield from json_items(f, self.path, prefix, pure_python=self._pure_python)

    def images(self) -> Iterator[dict[str, Any]]:
        """One pass over the images."""
        for i, image in enumerate(self._items("images.item")):
            check_image(i, image, self.path)
            yield image

    def files(self) -> Iterator[str]:
        """Each image's ``file``."""
        for i, image in enumerate(self._items("images.item")):
            file = image.get("file") if isinstance(image, dict) else None
            if not isinstance(file, str) or not file:
                raise InputFileError(self.path, f'images[{i}] has no "file"')
            yield file


def _state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@contextlib.contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; errors of the body pass through untouched
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a file") from None
    except OSError as e:
        raise InputFileError(path, e.strerror or str(e)) from None
    with f:
        yield f


def read_header(path: Path, *, pure_python: bool = False) -> dict[str, Any]:
    """Every top-level field but ``images`` (kept as a ``None`` placeholder for the key order).

    Raises:
        InputFileError: missing, not JSON, or not a results file.
        SlowPathNeeded: ijson's C parser cannot read the file; read it with ``pure_python=True``.
    """
    return _read_top(path, pure_python=pure_python, convert=False)[0]


def _read_top(
    path: Path, *, pure_python: bool = False, convert: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """:func:`read_header`; with ``convert``, a predictions.json as a converted header and its images."""
    header: dict[str, Any] = {}
    with _open(path) as f:
        images_listed = _scan_header(json_events(f, path, pure_python=pure_python), header)
    images = None
    if not images_listed and convert and is_predictions_json(header):
        header = predictions_to_results(header, path)
        images, header["images"] = header["images"], None
    elif not images_listed:
        raise InputFileError(path, f'no "images" list{_HINT}')
    _check_header(header, path)
    return header, images


_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")


def _scan_header(events: Iterator[tuple[str, Any]], header: dict[str, Any]) -> bool:
    """Build each top-level value but ``images``; say whether ``images`` is a list."""
    from ijson.common import ObjectBuilder

    builder: ObjectBuilder | None = None
    key = ""
    depth = 0
    images_listed = False
    top_is_object = False
    for event, value in events:
        if builder is not None:
            builder.event(event, value)
        elif depth == 0:
            top_is_object = event == "start_map"
        elif depth == 1 and top_is_object and event == "map_key":
            key = value
            header[key] = None
            builder = None if key == "images" else ObjectBuilder()
        elif depth == 1 and top_is_object and key == "images" and event == "start_array":
            images_listed = True
        depth += event in _OPEN
        depth -= event in _CLOSE
        if builder is not None and depth == 1 and event != "map_key":
            header[key] = builder.value
            builder = None
    return images_listed


def _check_header(header: dict[str, Any], path: Path) -> None:
    if "info" in header and not isinstance(header["info"], dict):
        raise InputFileError(path, '"info" is not an object')
    for key in ("detection_categories", "classification_categories", "classification_category_descriptions"):
        value = header.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InputFileError(path, f'"{key}" is not an object of ID to name strings')


def check_image(i: int, image: Any, path: str | Path) -> None:
    """Check what the post-processing steps rely on; raise on the first problem.

    That is :func:`~megaclassifier.formats.detections.check_image`, and well-formed ``classifications``.
    """
    detections_check_image(i, image, path)
    check_classifications(i, image, path)


def check_classifications(i: int, image: dict[str, Any], path: str | Path) -> None:
    """Check that each detection's ``classifications`` (when present) are well formed."""
    for j, det in enumerate(image.get("detections") or []):
        classes = det.get("classifications")
        if classes is not None and not (
            isinstance(classes, list)
            and all(isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) for c in classes)
            and all(isinstance(c[1], (int, float)) and not isinstance(c[1], bool) for c in classes)
        ):
            raise InputFileError(
                path,
                f'images[{i}] ("{image["file"]}") detection {j}: '
                '"classifications" must be [["<class id>", score], ...]',
            )


def _dump(value: Any, depth: int) -> str:
    text = json.dumps(value, indent=1, ensure_ascii=True)
    return text.replace("\n", "\n" + " " * depth) if depth else text


class ResultsWriter:
    """Collects images in a spool file; :meth:`finish` writes the whole file."""

    def __init__(self, spool: IO[str]) -> None:
        self._spool = spool
        self.count = 0

    def write_image(self, image: dict[str, Any]) -> None:
        """Append one image."""
        self._spool.write(("  " if self.count == 0 else ",\n  ") + _dump(image, 2))
        self.count += 1

    def assemble(self, out: IO[str], header: dict[str, Any]) -> None:
        """Write ``header`` with the spooled images in the ``images`` slot."""
        self._spool.flush()
        self._spool.seek(0)
        out.write("{")
        for n, (key, value) in enumerate(header.items()):
            out.write(("\n " if n == 0 else ",\n ") + json.dumps(key) + ": ")
            if key != "images":
                out.write(_dump(value, 1))
            elif self.count == 0:
                out.write("[]")
            else:
                out.write("[\n")
                shutil.copyfileobj(self._spool, out, 1 << 20)
                out.write("\n ]")
        out.write("\n}" if header else "}")


@contextlib.contextmanager
def results_writer(path: str | Path, header: dict[str, Any]) -> Iterator[ResultsWriter]:
    """Write a results file atomically from images given one by one.

    ``header`` is read when the block ends, so it may change meanwhile. On an
    error nothing is written and ``path`` is left as it was.
    """
    dest = Path(path)
    parent = dest.parent if str(dest.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, spool_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".images", dir=parent)
    try:
        with os.fdopen(fd, "w+", encoding="utf-8", newline="\n") as spool:
            writer = ResultsWriter(spool)
            yield writer
            with atomic_path(dest) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
                writer.assemble(out, header)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(spool_name)
