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

from collections.abc import Callable
from typing import Any

from megaclassifier.labels.descriptions import parse_description
from megaclassifier.postprocess.classes import ClassTable
from megaclassifier.postprocess.roll import (
    GEOFENCE_SEMANTICS,
    roll_up,
    speciesnet_ancestor,
    speciesnet_fence,
)


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
        self.by_level: dict[str, int] = dict.fromkeys(GEOFENCE_SEMANTICS.levels, 0)
        self._up = speciesnet_ancestor(taxonomy_map)
        fence = speciesnet_fence(geofence, country, admin1_region)
        self._fence: Callable[[str | None], bool] = fence if fence is not None else (lambda label: False)
        self.unmoved = 0

    def apply(self, det: dict[str, Any]) -> bool:
        """Move one detection when its top class is fenced out; say whether it changed."""
        classes = det.get("classifications")
        if not classes or not self._fence(self.labels.get(str(classes[0][0]))):
            return False
        pairs = [(self.labels.get(str(cid)), float(score)) for cid, score in classes]
        found = roll_up(pairs, self._up, pairs[0][1] - 1e-10, GEOFENCE_SEMANTICS, fenced=self._fence)
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
