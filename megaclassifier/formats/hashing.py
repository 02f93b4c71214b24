"""Content hashes of input files (a model, a detections file), computed once per process."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's content (a model, a detections file).

    Read in 1 MiB blocks, once per process while the file's size and modification time stay
    the same: the ONNX cache, the resume journal and the shard record all ask for it.
    """
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
