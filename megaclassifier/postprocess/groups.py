"""Smoothing within a group of detections (one image or one sequence), by either method.

``counts`` collects each taking-part detection's top class as a
:class:`~megaclassifier.postprocess.rules.Vote` and applies MegaDetector's rules
(:mod:`megaclassifier.postprocess.rules`); a relabelled detection gets
``[[new class, its old top score]]``.

``probabilities`` averages every class's score over the group's taking-part
detections, weighted by detection ``conf``; when the best class's mean reaches
``evidence_threshold``, each taking-part detection whose top class differs gets
the group's mean list, most confident first.

A detection takes part when its detection category is smoothed (``animal``),
its ``conf`` reaches ``detection_confidence_threshold`` and it has
classifications; for ``counts`` its top score must also reach
``classification_confidence_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from megaclassifier.postprocess.classes import ClassTable
from megaclassifier.postprocess.options import SmoothOptions
from megaclassifier.postprocess.rules import RuleChanges, RuleContext, Vote, smooth_votes

#: image index -> detection index -> the new classifications list
Changes = dict[int, dict[int, list[list[Any]]]]


@dataclass(slots=True)
class Group:
    """What one image or sequence contributes."""

    votes: list[Vote] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)
    weight: float = 0.0


class GroupSmoother:
    """Collects detections into groups and decides their new labels."""

    def __init__(self, table: ClassTable, options: SmoothOptions, detection_categories: dict[str, str]) -> None:
        self.options = options
        self.ctx = RuleContext(options, table.ids_named(options.other_category_names), table.taxa)
        names = options.detection_category_names_to_smooth
        self.smoothed_categories = (
            {cid for cid, name in detection_categories.items() if name in names} if names else None
        )
        self._names: dict[str, str] = {}  # one string object per class ID for the votes held
        self.changes = RuleChanges()
        self.changes.counts["probabilities"] = 0
        self.groups_changed = 0

    def takes_part(self, det: dict[str, Any]) -> bool:
        """Whether a detection's classes count in its group."""
        if not det.get("classifications") or not isinstance(det.get("conf"), (int, float)):
            return False
        if self.smoothed_categories is not None and det.get("category") not in self.smoothed_categories:
            return False
        return det["conf"] >= self.options.detection_confidence_threshold

    def collect(self, group: Group, image: dict[str, Any], index: int, order: int = 0) -> None:
        """Add an image's taking-part detections to ``group``."""
        threshold = self.options.classification_confidence_threshold
        probabilities = self.options.method == "probabilities"
        for j, det in enumerate(image.get("detections") or ()):
            if not self.takes_part(det):
                continue
            cls, score = det["classifications"][0]
            cls = self._names.setdefault(cls, cls)
            if probabilities:
                group.votes.append(Vote(cls, score, index, j, order, cls))
                weight = det["conf"]
                group.weight += weight
                for c, s in det["classifications"]:
                    group.sums[c] = group.sums.get(c, 0.0) + weight * s
            elif score >= threshold:
                group.votes.append(Vote(cls, score, index, j, order, cls))

    def decide(self, group: Group, changes: Changes) -> None:
        """Run the method on one group; add its relabelled detections to ``changes``."""
        if self.options.method == "probabilities":
            changed = self._decide_by_probabilities(group, changes)
        else:
            changed = self._decide_by_counts(group, changes)
        self.groups_changed += changed > 0

    def _decide_by_counts(self, group: Group, changes: Changes) -> int:
        votes = sorted(group.votes, key=lambda v: v.order)
        self.changes.add(smooth_votes(votes, self.ctx))
        changed = 0
        for vote in votes:
            if vote.cls != vote.original:
                changes.setdefault(vote.image, {})[vote.detection] = [[vote.cls, vote.score]]
                changed += 1
        return changed

    def _decide_by_probabilities(self, group: Group, changes: Changes) -> int:
        if not group.votes or group.weight <= 0:
            return 0
        means: list[list[Any]] = sorted(
            ([c, round(s / group.weight, 4)] for c, s in group.sums.items()), key=lambda c: -float(c[1])
        )
        best, score = means[0][0], float(means[0][1])
        if score < self.options.evidence_threshold:
            return 0
        kept = [c for c in means if c[1] > 0]
        changed = 0
        for vote in group.votes:
            if vote.original != best:
                changes.setdefault(vote.image, {})[vote.detection] = [list(c) for c in kept]
                changed += 1
        self.changes.counts["probabilities"] += changed
        return changed


def apply_changes(image: dict[str, Any], changes: dict[int, list[list[Any]]] | None) -> None:
    """Give an image's relabelled detections their new lists, keeping the old in ``raw_classifications``."""
    if not changes:
        return
    detections = image["detections"]
    for j, classes in changes.items():
        det = detections[j]
        det.setdefault("raw_classifications", det["classifications"])
        det["classifications"] = classes
