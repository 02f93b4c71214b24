"""Geofence: a class not allowed in the country moves up to its nearest allowed ancestor, as SpeciesNet does.

A SpeciesNet release carries a geofence, ``"class;order;family;genus;species"``
-> rules::

    {"mammalia;carnivora;canidae;canis;latrans": {"allow": {"USA": [], "CAN": [], "MEX": []}},
     "mammalia;carnivora;ursidae;ursus;arctos": {"block": {"USA": ["FL", "GA"]}}}

A taxon is fenced out in a country (ISO 3166-1 alpha-3) and optional first-level
region when it has ``allow`` rules that leave the country (or, with a region
and a region list, the region) out, or ``block`` rules that name the country
with no region list, or name the region. A taxon the geofence does not
mention is allowed everywhere.

When a detection's top class is fenced out, the scores of its classes are
summed up the taxonomy, family, then order, class and kingdom (SpeciesNet's
``geofence_animal_classification``); the first level whose largest allowed sum
reaches the top score labels the detection. Ancestors are the release's
taxonomy labels (the kingdom is "animal"). The new class is added (with its
seven-token description) when the results have none for it; the sum is its
score, first in the list; the original list stays in ``raw_classifications``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from megaclassifier.labels.descriptions import parse_description
from megaclassifier.models.speciesnet import ANIMAL_LABEL
from megaclassifier.postprocess.classes import ClassTable

#: The levels a fenced-out class is summed at, in order, and how many taxa tokens each keeps.
GEOFENCE_LEVELS = (("family", 3), ("order", 2), ("class", 1), ("kingdom", 0))


def is_fenced_out(
    taxa: str, geofence: dict[str, dict[str, Any]], country: str, admin1_region: str | None = None
) -> bool:
    """Whether the taxon ``class;order;family;genus;species`` is not allowed in ``country`` (and region)."""
    rules = geofence.get(taxa)
    if rules is None:
        return False
    allow = rules.get("allow")
    if allow:
        if country not in allow:
            return True
        regions = allow[country]
        if admin1_region and regions and admin1_region not in regions:
            return True
    block = rules.get("block")
    if block and country in block:
        regions = block[country]
        if not regions or (admin1_region and admin1_region in regions):
            return True
    return False


def ancestor(label: str, keep: int, taxonomy_map: dict[str, str]) -> str | None:
    """The release's label of ``label``'s ancestor keeping ``keep`` taxa tokens (0: the kingdom), or None.

    SpeciesNet's ``get_ancestor_at_level``: the kingdom ("animal") is the ancestor of every label
    with a class, and of "animal" itself.
    """
    tokens = label.split(";")[1:6]
    if keep == 0:
        return taxonomy_map.get(";;;;") if tokens[0] or label == ANIMAL_LABEL else None
    if not tokens[keep - 1]:
        return None
    return taxonomy_map.get(";".join(tokens[:keep] + [""] * (5 - keep)))


def roll_up(
    labels: Sequence[str | None],
    scores: Sequence[float],
    levels: Sequence[tuple[str, int]],
    threshold: float,
    taxonomy_map: dict[str, str],
    fenced: Callable[[str], bool],
    ancestors: dict[tuple[str, int], str | None] | None = None,
) -> tuple[str, float, str] | None:
    """SpeciesNet's roll-up (``roll_up_labels_to_first_matching_level``): ``(label, sum, level)`` or None.

    At each level in order, the scores are summed by ancestor (labels in order; a None label or one
    without an ancestor there adds nothing); the largest sum (the first on ties) of an ancestor that
    ``fenced`` lets through wins the level when it is strictly above ``threshold``. ``ancestors``:
    a cache of :func:`ancestor` by ``(label, keep)``, kept by the caller across calls.
    """
    cache: dict[tuple[str, int], str | None] = {} if ancestors is None else ancestors
    for level, keep in levels:
        sums: dict[str, float] = {}
        for label, score in zip(labels, scores, strict=True):
            if not label:
                continue
            key = (label, keep)
            if key in cache:
                up = cache[key]
            else:
                up = cache[key] = ancestor(label, keep, taxonomy_map)
            if up:
                sums[up] = sums.get(up, 0.0) + score
        best, total = None, 0.0
        for up, value in sums.items():
            if value > total and not fenced(up):
                best, total = up, value
        if best and total > threshold:
            return best, total, level
    return None


class Geofence:
    """Moves fenced-out detections of one results file to their nearest allowed ancestor.

    Attributes:
        by_level: detections moved at each level.
        unmoved: fenced-out detections no allowed ancestor took (left as they are).
    """

    def __init__(
        self,
        table: ClassTable,
        labels: dict[str, str],
        *,
        geofence: dict[str, dict[str, Any]],
        taxonomy_map: dict[str, str],
        country: str,
        admin1_region: str | None = None,
    ) -> None:
        """Args: ``labels``: class ID -> its seven-token description (the release's label)."""
        self.table = table
        self.labels = dict(labels)
        self.geofence = geofence
        self.taxonomy_map = taxonomy_map
        self.country = country
        self.admin1_region = admin1_region
        self.by_level: dict[str, int] = {level: 0 for level, _ in GEOFENCE_LEVELS}
        self.unmoved = 0

    def _fenced(self, label: str | None) -> bool:
        if not label:
            return False
        return is_fenced_out(";".join(label.split(";")[1:6]), self.geofence, self.country, self.admin1_region)

    def apply(self, det: dict[str, Any]) -> bool:
        """Move one detection when its top class is fenced out; say whether it changed."""
        classes = det.get("classifications")
        if not classes or not self._fenced(self.labels.get(str(classes[0][0]))):
            return False
        labels = [self.labels.get(str(cid)) for cid, _ in classes]
        found = roll_up(labels, [float(s) for _, s in classes], GEOFENCE_LEVELS, float(classes[0][1]) - 1e-10,
                        self.taxonomy_map, self._fenced)  # fmt: skip
        if found is None:
            self.unmoved += 1
            return False
        self._relabel(det, classes, found[0], found[1])
        self.by_level[found[2]] += 1
        return True

    def _relabel(self, det: dict[str, Any], classes: list[list[Any]], label: str, total: float) -> None:
        cid = self.class_id(label)
        det.setdefault("raw_classifications", classes)
        det["classifications"] = [[cid, round(total, 6)], *([c, s] for c, s in classes if c != cid)]

    def class_id(self, label: str) -> str:
        """The class of the results standing for ``label``, added when none does."""
        same = next((cid for cid, known in self.labels.items() if known == label), None)
        if same is not None:
            return same
        taxon = parse_description(label)
        assert taxon is not None
        cid = self.table.id_for(taxon, taxon.common or taxon.latin)
        if self.table.taxa is not None and cid in self.table.added:
            self.table.taxa[cid] = taxon  # with the release's guid
        self.labels[cid] = label
        return cid

    @property
    def changed(self) -> int:
        """Detections moved."""
        return sum(self.by_level.values())
