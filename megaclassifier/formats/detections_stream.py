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
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.atomic import atomic_path
from megaclassifier.formats.detections import check_image as detections_check_image

_HINT = "; is this a MegaDetector output file?"


class InMemoryResults:
    """A loaded results dict; ``header`` is the dict itself and is edited in place."""

    def __init__(self, data: dict[str, Any], source: str = "<results>") -> None:
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise InputFileError(source, f'no "images" list{_HINT}')
        self.header = data
        self.source = source

    def images(self) -> Iterator[dict[str, Any]]:
        """The images, in order (edits are kept)."""
        for i, image in enumerate(self.header["images"]):
            check_image(i, image, self.source)
            yield image

    def files(self) -> Iterator[str]:
        """Each image's ``file``."""
        for image in self.images():
            yield image["file"]


class StreamedResults:
    """A results file on disk, read lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = str(path)
        self.header = read_header(self.path)

    @contextlib.contextmanager
    def _open(self) -> Iterator[IO[bytes]]:
        try:
            with open(self.path, "rb") as f:
                yield f
        except FileNotFoundError:
            raise InputFileError(self.path, "no such file") from None
        except IsADirectoryError:
            raise InputFileError(self.path, "is a folder, not a MegaDetector results file") from None

    def images(self) -> Iterator[dict[str, Any]]:
        """One pass over the images."""
        import ijson

        with self._open() as f:
            try:
                for i, image in enumerate(ijson.items(f, "images.item", use_float=True)):
                    check_image(i, image, self.path)
                    yield image
            except ijson.JSONError as e:
                raise InputFileError(self.path, f"not valid JSON ({_first_line(e)})") from None

    def files(self) -> Iterator[str]:
        """Each image's ``file``, without building the images."""
        import ijson

        with self._open() as f:
            try:
                for i, file in enumerate(ijson.items(f, "images.item.file")):
                    if not isinstance(file, str) or not file:
                        raise InputFileError(self.path, f'images[{i}] has no "file"')
                    yield file
            except ijson.JSONError as e:
                raise InputFileError(self.path, f"not valid JSON ({_first_line(e)})") from None


def read_header(path: Path) -> dict[str, Any]:
    """Every top-level field but ``images`` (kept as a ``None`` placeholder for the key order).

    Raises:
        InputFileError: missing, not JSON, or not a results file.
    """
    import ijson

    header: dict[str, Any] = {}
    try:
        with open(path, "rb") as f:
            images_listed = _scan_header(ijson.parse(f, use_float=True), header)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a folder, not a MegaDetector results file") from None
    except ijson.JSONError as e:
        raise InputFileError(path, f"not valid JSON ({_first_line(e)})") from None
    if not images_listed:
        raise InputFileError(path, f'no "images" list{_HINT}')
    _check_header(header, path)
    return header


def _scan_header(events: Iterator[tuple[str, str, Any]], header: dict[str, Any]) -> bool:
    """Build each top-level value but ``images`` from parser events; say whether ``images`` is a list."""
    from ijson.common import ObjectBuilder

    builder: ObjectBuilder | None = None
    key = ""
    depth = 0
    images_listed = False
    for prefix, event, value in events:
        if builder is not None:
            builder.event(event, value)
            depth += event in ("start_map", "start_array")
            depth -= event in ("end_map", "end_array")
            if depth == 0:
                header[key] = builder.value
                builder = None
        elif prefix == "" and event == "map_key":
            key = value
            header[key] = None
            builder = None if key == "images" else ObjectBuilder()
        elif prefix == "images" and event == "start_array":
            images_listed = True
    return images_listed


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


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
