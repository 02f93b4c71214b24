"""One run identity: what ``run``'s output depends on, for its journal and its shard record alike.

::

    {"model_sha256": "51aa...",        the model's content (ResolvedModel.identity: the file, or a
                                       SpeciesNet release folder's files)
     "image_size": 300,                the model input side in use
     "input_file": "9f2c...",          the detections file's SHA-256 (hashed as it was read)
     "options": {"threshold": 0.15, "exact": false, "target_mapping": {"sha256": "..."}, ...}}

``options`` holds every :class:`~megaclassifier.run.options.RunOptions` field tagged
``output`` (by value) or ``content`` (a file, by SHA-256); see :mod:`megaclassifier.run.options`.
The shard record (:mod:`megaclassifier.run.shards`) stores exactly this, and ``combine``
refuses shards whose identities differ, naming what differs. The resume journal
(:mod:`megaclassifier.run.resume`) adds what only a rerun on the same machine must share:
the ``local`` fields and the executor's engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from megaclassifier.formats.hashing import file_sha256
from megaclassifier.formats.journal import Fingerprint
from megaclassifier.run.options import CONTENT, LOCAL, OUTPUT, RunOptions, options_with_role
from megaclassifier.run.shards import Shard


def run_identity(*, model_sha256: str, image_size: int, detections_sha256: str, options: RunOptions) -> dict[str, Any]:
    """What makes two runs' outputs the same: the model's content, its input size, the detections, the options."""
    return {
        "model_sha256": model_sha256,
        "image_size": image_size,
        "input_file": detections_sha256,
        "options": output_options(options),
    }


def output_options(options: RunOptions) -> dict[str, Any]:
    """The ``output`` fields by value and the ``content`` fields by SHA-256, JSON-ready."""
    values = {}
    content = options_with_role(options, CONTENT)
    for name, value in options_with_role(options, OUTPUT, CONTENT).items():
        if name in content:
            values[name] = {"sha256": file_sha256(value)} if value is not None else None
        else:
            values[name] = _plain(value)
    return values


def journal_fingerprint(identity: dict[str, Any], options: RunOptions, engine: list[Any]) -> Fingerprint:
    """The journal's fingerprint: the run identity, then this machine's ``local`` fields and engine."""
    local = {name: _plain(value) for name, value in options_with_role(options, LOCAL).items()}
    return {**identity, "local": local, "engine": engine}


def _plain(value: Any) -> Any:
    """A JSON value for an option: paths and shards as text, smoothing settings by their repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value) if isinstance(value, Shard) else repr(value)
