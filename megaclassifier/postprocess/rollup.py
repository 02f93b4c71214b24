"""Rollup: an uncertain species becomes the genus, family, order or class the scores agree on.

When a detection's top score is below THRESHOLD, its classes' scores are
summed level by level up the taxonomy (species, genus, family, order, class);
the first level where one taxon's sum reaches THRESHOLD labels the
detection::

    [["deer", 0.45], ["elk", 0.40], ["cow", 0.10]]   at --threshold 0.6
    -> [["cervidae", 0.85], ["deer", 0.45], ["elk", 0.40], ["cow", 0.10]]

The taxon's class is added to ``classification_categories`` (named by its
Latin name) when no class stands for it yet; the sum is its score, first in
the list; the original list stays in ``raw_classifications``. A class without a
taxon (blank, other) never adds to a sum.
"""

from __future__ import annotations

from typing import Any

from megaclassifier.labels.descriptions import LEVELS
from megaclassifier.postprocess.classes import ClassTable


class Rollup:
    """Rolls detections up the taxonomy of one results file.

    Attributes:
        threshold: the score a taxon's sum must reach.
        by_level: detections relabelled at each level.
    """

    def __init__(self, table: ClassTable, threshold: float) -> None:
        self.table = table
        self.taxa = table.require_taxonomy("rollup")
        self.threshold = threshold
        self.by_level: dict[str, int] = dict.fromkeys(reversed(LEVELS), 0)

    def apply(self, det: dict[str, Any]) -> bool:
        """Roll one detection up when its top score is below the threshold; say whether it changed."""
        classes = det.get("classifications")
        if not classes or classes[0][1] >= self.threshold:
            return False
        for depth in range(len(LEVELS), 0, -1):
            found = self._best_at(classes, depth)
            if found is not None and found[1] >= self.threshold:
                self._relabel(det, classes, found[0], found[1])
                self.by_level[LEVELS[depth - 1]] += 1
                return True
        return False

    def _best_at(self, classes: list[list[Any]], depth: int) -> tuple[Any, float] | None:
        """The taxon at ``depth`` with the largest sum (first on ties) and that sum."""
        sums: dict[tuple[str, ...], float] = {}
        first: dict[tuple[str, ...], Any] = {}
        for cid, score in classes:
            taxon = self.taxa.get(cid)
            if taxon is None or taxon.depth < depth:
                continue
            key = taxon.key[:depth]
            sums[key] = sums.get(key, 0.0) + score
            first.setdefault(key, taxon.at_depth(depth))
        if not sums:
            return None
        key = max(sums, key=lambda k: sums[k])
        return first[key], sums[key]

    def _relabel(self, det: dict[str, Any], classes: list[list[Any]], taxon: Any, total: float) -> None:
        cid = self.table.id_for(taxon, self.table.common_name(taxon))
        det.setdefault("raw_classifications", classes)
        det["classifications"] = [[cid, round(total, 6)], *([c, s] for c, s in classes if c != cid)]

    @property
    def changed(self) -> int:
        """Detections relabelled."""
        return sum(self.by_level.values())
