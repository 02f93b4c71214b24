"""``run --ray``'s progress file: what the driver has finished, so that a rerun skips it.

Beside the output, ``OUTPUT_JSON.ray-progress.jsonl`` gets one JSON line per
finished image as its probabilities reach the driver, after a first line that
says which run it belongs to (:func:`~megaclassifier.run.shards.run_fingerprint`
and the shard)::

    {"megaclassifier_ray_progress": 1, "run": {"detections_sha256": "...", ...}, "shard": null}
    {"file": "cam1/a.jpg", "planned": 2, "written": 0, "existing": 0, "size_zero": 0, "downloaded": false,
     "failure": null, "warnings": [], "crops": [[0, "cam1/a.jpg___crop00_md_v5a.0.0.pt.jpg"], ...],
     "probabilities": "<base64 of the float32 (crops, classes) array>"}

A rerun of the same command (same detections file, model, options and shard) reads
the finished images back, exactly, and sends only the others to the cluster; a
last line cut short by the crash is ignored. Another run's progress file is an
error, never silently reused. The file is removed once the output is written.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from megaclassifier.crop.core import CutImage
from megaclassifier.errors import MegaClassifierError

logger = logging.getLogger(__name__)

#: The first line's key (and the file format's version).
HEADER_KEY = "megaclassifier_ray_progress"
SUFFIX = ".ray-progress.jsonl"


@dataclass
class Classified:
    """One image back from the cluster: what cutting it did, its crops and their probabilities (rows in order).

    Attributes:
        image: the crop core's record of the image, its crop list emptied (the pixels stay on the cluster).
        crops: ``(detection index, crop key)`` of each crop classified.
        probabilities: float32 (len(crops), classes).
    """

    image: CutImage[None]
    crops: list[tuple[int, str]]
    probabilities: np.ndarray


def progress_path(output_json: str | Path) -> Path:
    """Where the progress file of a run writing ``output_json`` goes."""
    return Path(f"{output_json}{SUFFIX}")


def read_progress(path: Path, run: dict[str, Any]) -> dict[str, Classified]:
    """The images a crashed run with the same ``run`` record finished; empty without a file.

    Raises:
        MegaClassifierError: the file belongs to another run (or is not a progress file).
    """
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        header = _parse(f.readline())
        if header is None or header.get(HEADER_KEY) != 1 or header.get("run") != run:
            raise MegaClassifierError(
                f"{path}: progress of another run (detections file, model, options or shard differ); "
                "remove it to start afresh"
            )
        done = {}
        for line in f:
            entry = _parse(line)
            if entry is not None:
                done[entry["file"]] = _from_json(entry)
    logger.info("%s: %d images already finished; skipping them", path, len(done))
    return done


def _parse(line: str) -> dict[str, Any] | None:
    """One line's object; None for a line cut short."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class ProgressWriter:
    """Appends finished images to the progress file (a new file starts with its header)."""

    def __init__(self, path: Path, run: dict[str, Any], done: Iterable[Classified]) -> None:
        self.path = path
        self._file: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self._write({HEADER_KEY: 1, "run": run})
        self.images = 0
        for item in done:  # rewritten whole: a line cut short by the crash goes
            self._write(_to_json(item))
            self.images += 1
        self._file.flush()

    def record(self, items: Iterable[Classified]) -> Iterator[Classified]:
        """Pass ``items`` on, each written (and flushed) first."""
        for item in items:
            self._write(_to_json(item))
            self._file.flush()
            self.images += 1
            yield item

    def _write(self, value: dict[str, Any]) -> None:
        self._file.write(json.dumps(value, ensure_ascii=True) + "\n")

    def close(self, *, finished: bool) -> None:
        """Close; remove the file when the run's output is written, or when it holds no image."""
        if self._file.closed:
            return
        self._file.close()
        if finished or self.images == 0:
            os.remove(self.path)


def _to_json(item: Classified) -> dict[str, Any]:
    image = {key: value for key, value in asdict(item.image).items() if key != "crops"}
    values = np.ascontiguousarray(item.probabilities, dtype="<f4")
    return {**image, "crops": item.crops, "shape": list(values.shape), "probabilities": _b64(values.tobytes())}


def _from_json(entry: dict[str, Any]) -> Classified:
    fields = {key: entry[key] for key in ("file", "planned", "written", "existing", "size_zero", "downloaded")}
    image: CutImage[None] = CutImage(**fields, failure=entry["failure"], warnings=list(entry["warnings"]))
    values = np.frombuffer(base64.b64decode(entry["probabilities"]), dtype="<f4").reshape(entry["shape"])
    return Classified(image, [(int(i), str(k)) for i, k in entry["crops"]], values.astype(np.float32))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
