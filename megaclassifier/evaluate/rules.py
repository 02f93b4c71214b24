"""How a results image (or sequence) becomes one predicted class: the rules ``evaluate`` states.

The rules are MegaDetector's ``analyze_classification_results`` with one
prediction and one label per image, so both give the same numbers:

1. Detections below ``threshold`` (detection confidence) are ignored. An image with
   none left is ``empty`` (the empty label).
2. A ``person`` detection is ``human`` and a ``vehicle`` detection ``vehicle``,
   whatever its classifications say (score 1.0).
3. Any other detection is its top class when that class's score is at least
   ``classification_threshold``, else ``below-threshold`` (the unsure label).
4. The image's class is the one most of its detections have; ties go to the
   higher score, then to the first name alphabetically.
5. A sequence adds up its images' detections, after dropping the less specific
   classes when a more specific one is present: ``empty`` gives way to anything,
   ``below-threshold``/``unknown`` to any class, ``animal`` to any species; then rule 4.
   The sequence's label is the most frequent of its images' labels after the same
   dropping (ties: alphabetical).

Class names are compared in lower case. A target mapping sums each detection's
listed class scores per target before rule 3 (as ``aggregate`` sums columns);
``--rank`` replaces each class and each label by its ancestor at that rank
(``family``: ``cervidae``), keeping names that have no taxon at that rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from megaclassifier.constants import DEFAULT_REVIEW_THRESHOLD
from megaclassifier.labels.descriptions import LEVELS, Taxon

#: MegaDetector's default classification-confidence threshold (analyze_classification_results).
DEFAULT_CLASSIFICATION_THRESHOLD = 0.6
EMPTY, HUMAN, VEHICLE, UNSURE = "empty", "human", "vehicle", "below-threshold"
_EMPTY_ALIASES = ("empty", "blank", "none", "no animal")
_HUMAN_ALIASES = ("human", "person", "people", "homo sapiens")
_UNKNOWN = ("unknown",)
_GENERIC = ("animal",)


@dataclass(frozen=True)
class Rules:
    """The rules that turn detections into one class per image; see the module docstring."""

    threshold: float = DEFAULT_REVIEW_THRESHOLD
    classification_threshold: float = DEFAULT_CLASSIFICATION_THRESHOLD
    empty_label: str = EMPTY
    human_label: str = HUMAN
    vehicle_label: str = VEHICLE
    unsure_label: str = UNSURE

    def label(self, name: str) -> str:
        """A user's label as compared: the aliases of empty and human read as those labels."""
        if name in _EMPTY_ALIASES:
            return self.empty_label
        if name in _HUMAN_ALIASES:
            return self.human_label
        return name

    def collapse(self, names: Iterable[str]) -> set[str]:
        """Drop the less specific classes when a more specific one is present (rule 5)."""
        cats = set(names)
        if len(cats) <= 1:
            return cats
        null, unknown = {self.empty_label}, {self.unsure_label, *_UNKNOWN}
        non_animal = {self.human_label, self.vehicle_label, "person"}
        specific = any(c not in null and c not in unknown for c in cats)
        if specific or cats & unknown:
            cats -= null
        if specific:
            cats -= unknown
        if any(c not in null | unknown | set(_GENERIC) | non_animal for c in cats):
            cats -= set(_GENERIC)
        return cats


@dataclass
class Vote:
    """The detections of an image (or a sequence) counted per class: counts and best score."""

    counts: Counter[str] = field(default_factory=Counter)
    best: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, score: float, n: int = 1) -> None:
        self.counts[name] += n
        self.best[name] = max(score, self.best.get(name, score))

    def merge(self, other: Vote) -> None:
        for name, n in other.counts.items():
            self.add(name, other.best[name], n)

    def winner(self, rules: Rules, *, collapse: bool = False) -> tuple[str, float]:
        """The class (rule 4, after rule 5's dropping when ``collapse``) and its best score."""
        if not self.counts:
            return rules.empty_label, 1.0
        names = rules.collapse(self.counts) if collapse else set(self.counts)
        name = min(names, key=lambda c: (-self.counts[c], -self.best[c], c))
        return name, self.best[name]


class Namer:
    """One way of naming a detection's class: the raw classes, a target mapping, a rank.

    Args:
        categories: classification category ID -> name (lower-cased here).
        mapping: target -> raw class names (``aggregate``'s target mapping), or None.
        rank: ``class``, ``order``, ``family``, ``genus`` or ``species``, or None.
        taxa: lower-case class name -> taxon, for ``rank``.
    """

    def __init__(
        self,
        categories: Mapping[str, str],
        *,
        mapping: Mapping[str, Sequence[str]] | None = None,
        rank: str | None = None,
        taxa: Mapping[str, Taxon] | None = None,
    ) -> None:
        self.names = {str(k): str(v).lower() for k, v in categories.items()}
        self.target = {raw.lower(): t.lower() for t, raws in (mapping or {}).items() for raw in raws}
        self.depth = LEVELS.index(rank) + 1 if rank else 0
        self.taxa = {k.lower(): v for k, v in (taxa or {}).items()}

    def at_rank(self, name: str) -> str:
        """``name``'s ancestor at the rank, or ``name`` when it has no taxon that deep."""
        taxon = self.taxa.get(name) if self.depth else None
        if taxon is None or taxon.depth < self.depth:
            return name
        return taxon.tokens[self.depth - 1]

    def scores(self, classifications: Any) -> dict[str, float]:
        """Each listed class's score (mapped targets summed, at the rank); empty without classifications."""
        scores: dict[str, float] = {}
        for item in classifications if isinstance(classifications, list) else ():
            if not isinstance(item, list | tuple) or len(item) < 2:
                continue
            name = self.names.get(str(item[0]), str(item[0]).lower())
            name = self.at_rank(self.target.get(name, name))
            scores[name] = scores.get(name, 0.0) + float(item[1])
        return scores

    def top(self, classifications: Any) -> tuple[str, float] | None:
        """The detection's top class (mapped, at the rank) and its score; None without classifications."""
        scores = self.scores(classifications)
        if not scores:
            return None
        name = min(scores, key=lambda c: (-scores[c], c))
        return name, scores[name]


def detection_class(det: Mapping[str, Any], category: str, namer: Namer, rules: Rules) -> tuple[str, float, str | None]:
    """Rules 2 and 3 for one detection at or above the threshold: (class, score, top class before rule 3)."""
    if category == "person":
        return rules.human_label, 1.0, None
    if category == "vehicle":
        return rules.vehicle_label, 1.0, None
    top = namer.top(det.get("classifications"))
    if top is None:
        return rules.unsure_label, 1.0, None
    if top[1] >= rules.classification_threshold:
        return top[0], top[1], top[0]
    return rules.unsure_label, 1.0, top[0]
