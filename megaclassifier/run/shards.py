"""``run --shard I/N``: a stable share of the images for one job of a batch scheduler.

Image ``file`` goes to shard ``int(sha256(file)[:8]) % N``, whatever folder it is in, so
shards stay balanced when folders differ in size and an image's shard never depends on
the other images. Each shard writes a MegaDetector results file holding its own images
only, with what :func:`~megaclassifier.cluster.combine.combine_shards` needs recorded in
``info.megaclassifier_shard``::

    "megaclassifier_shard": {
     "index": 0, "count": 4,
     "images_total": 14, "positions": [0, 3, 9],
     "run": {"model_sha256": "51aa...", "image_size": 300, "input_file": "9f2c...",
             "options": {"threshold": 0.15, "exact": false, "target_mapping": {"sha256": "..."}, ...}}
    }

``positions`` are the shard's images' places in the detections file; ``run`` is the run's
identity (:mod:`megaclassifier.run.identity`, the one the resume journal holds too): the
detections file, model and every option that changes the output, files by content, not by
path, so nodes may mount them in different places.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from megaclassifier.formats.detections import DetectionResults

#: The key under ``info`` that marks a shard's output.
SHARD_KEY = "megaclassifier_shard"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with ``0 <= I < N``.

        Raises:
            ValueError: another form, or I out of range.
        """
        index, sep, count = text.partition("/")
        if not sep or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"{text!r} is not I/N (shard I of N, counting from 0, e.g. 0/4)")
        shard = cls(int(index), int(count))
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"{text!r}: the shard number must be 0 to {shard.count - 1} (counting from 0)")
        return shard

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class ShardSelection:
    """The images a shard kept: its shard, their positions in the detections file, and how many it has."""

    shard: Shard
    positions: list[int]
    images_total: int


def shard_of(file: str, count: int) -> int:
    """The shard of an image's ``file`` entry: a hash of the path, stable across machines and runs."""
    digest = hashlib.sha256(file.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def take_shard(results: DetectionResults, shard: Shard | None) -> ShardSelection | None:
    """Keep only the shard's images in ``results`` (in place, in their order); None without a shard."""
    if shard is None:
        return None
    images = results.images
    positions = [i for i, image in enumerate(images) if shard_of(image["file"], shard.count) == shard.index]
    results.data["images"] = [images[i] for i in positions]
    return ShardSelection(shard, positions, len(images))


def record_shard(results: DetectionResults, selection: ShardSelection | None, *, identity: dict[str, Any]) -> None:
    """Write ``info.megaclassifier_shard`` (after the merge, which makes ``info``); nothing without a shard.

    Args:
        identity: the run's identity (:func:`~megaclassifier.run.identity.run_identity`).
    """
    if selection is None:
        return
    results.data.setdefault("info", {})[SHARD_KEY] = {
        "index": selection.shard.index,
        "count": selection.shard.count,
        "images_total": selection.images_total,
        "positions": selection.positions,
        "run": identity,
    }
