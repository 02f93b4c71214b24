"""Rollup: an uncertain species becomes the genus, family, order, class or kingdom the scores agree on.

The scores of a detection's classes are summed level by level up the taxonomy;
the first level where one taxon's sum passes THRESHOLD labels the detection.
Three semantics, by name (``--semantics``):

* ``speciesnet`` (the default): SpeciesNet 5.0.6's roll-up
  (``roll_up_labels_to_first_matching_level`` as its ensemble calls it): levels
  genus, family, order, class, kingdom; a sum must be strictly above THRESHOLD;
  with a geofence (``--country``), a taxon fenced out there is passed over. A
  detection whose top class is above THRESHOLD and not fenced out keeps it, as
  the ensemble keeps a confident species before it ever rolls up.
* ``megadetector``: MegaDetector's ``run_md_and_speciesnet``: levels species to
  kingdom, strictly above THRESHOLD, fenced taxa passed over; with a geofence,
  a fenced-out top class is first moved to the first of family..kingdom whose
  sum reaches its score (SpeciesNet's ``geofence_animal_classification``), or,
  when no allowed taxon holds any score, to SpeciesNet's "no cv result"; when
  no level passes, the raw top-1 is kept.
* ``megaclassifier`` (this toolkit's earlier default): only detections whose top score
  is below THRESHOLD; levels species to class; a sum must reach THRESHOLD (>=).

Example::

    [["deer", 0.45], ["elk", 0.40], ["cow", 0.10]]   at --threshold 0.6
    -> [["cervidae", 0.85], ["deer", 0.45], ["elk", 0.40], ["cow", 0.10]]

The taxon's class is added to ``classification_categories`` (named by its
Latin name; the kingdom is the class "animal") when no class stands for it yet;
the sum (4 decimals) is its score, first in the list; the original list stays
in ``raw_classifications``. A class without a taxon (blank, other) never adds
to a sum; a class named "animal" adds to the kingdom only.

:func:`roll_up` is the one roll-up, on plain ``(label, score)`` lists: for a
release's labels (the SpeciesNet ensemble) with :func:`speciesnet_ancestor` and
:func:`speciesnet_fence`, for a results file's classes with their taxa (:class:`Rollup`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from megaclassifier.labels.descriptions import LEVELS, Taxon
from megaclassifier.postprocess.classes import ClassTable
from megaclassifier.postprocess.options import DEFAULT_ROLLUP_SEMANTICS as DEFAULT_SEMANTICS
from megaclassifier.postprocess.roll import (
    GEOFENCE_SEMANTICS,
    KEEP,
    SEMANTICS,
    is_fenced_out,
    roll_up,
)


@dataclass(frozen=True)
class RollupFence:
    """Where the images are, for ``rollup --country``: the release's geofence rules, country and region."""

    geofence: dict[str, dict[str, Any]]
    country: str
    admin1_region: str | None = None

    def __call__(self, key: tuple[str, ...]) -> bool:
        """Whether the taxon with these leading tokens is fenced out."""
        tokens = list(key) + [""] * (len(LEVELS) - len(key))
        return bool(key) and is_fenced_out(";".join(tokens), self.geofence, self.country, self.admin1_region)


class Rollup:
    """Rolls detections up the taxonomy of one results file.

    Attributes:
        threshold: the score a taxon's sum must pass.
        semantics: the rules (:data:`SEMANTICS`).
        fence: the geofence (``--country``), or None (``megaclassifier`` has none: it is ignored there).
        by_level: detections relabelled at each level.
    """

    def __init__(
        self, table: ClassTable, threshold: float, semantics: str = DEFAULT_SEMANTICS, fence: RollupFence | None = None
    ) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"unknown roll-up semantics {semantics!r}; expected one of {', '.join(SEMANTICS)}")
        self.table = table
        self.taxa = table.require_taxonomy("rollup")
        self.threshold = threshold
        self.semantics = SEMANTICS[semantics]
        self.fence = fence if semantics != "megaclassifier" else None
        self.by_level: dict[str, int] = dict.fromkeys(self.semantics.levels, 0)
        self._animal = {cid for cid in table.ids_named(("animal",)) if cid in self.taxa and not self.taxa[cid].is_taxon}

    def apply(self, det: dict[str, Any]) -> bool:
        """Roll one detection up when its semantics says so; say whether it changed."""
        classes = det.get("classifications")
        if not classes:
            return False
        top_id, top = classes[0][0], classes[0][1]
        fenced_top = self.fence is not None and self._fenced_class(top_id)
        name = self.semantics.name
        if name == "megaclassifier" and top >= self.threshold:
            return False
        if name == "speciesnet" and top > self.threshold and not fenced_top:
            return False
        pairs = [(cid, float(score)) for cid, score in classes]
        if name == "megadetector" and fenced_top:
            found = roll_up(pairs, self._ancestor, top - 1e-10, GEOFENCE_SEMANTICS, fenced=self.fence)
            if found is None:  # nothing allowed holds any score: SpeciesNet's "no cv result" (rollup_failed)
                det.setdefault("raw_classifications", classes)
                det["classifications"] = [[self._unknown_id(), 0.0], *([c, s] for c, s in classes)]
                self.by_level["unknown"] = self.by_level.get("unknown", 0) + 1
                return True
        else:
            found = roll_up(pairs, self._ancestor, self.threshold, self.semantics, fenced=self.fence)
        if found is None:
            return False
        key, total, level = found
        cid = self._class_for(key)
        if cid == top_id and total == top:
            return False  # the top class itself (megadetector's species level)
        det.setdefault("raw_classifications", classes)
        det["classifications"] = [[cid, round(total, 4)], *([c, s] for c, s in classes if c != cid)]
        self.by_level[level] = self.by_level.get(level, 0) + 1
        return True

    def _ancestor(self, cid: str, level: str) -> tuple[str, ...] | None:
        taxon = self.taxa.get(cid)
        if taxon is None:
            return None
        keep = KEEP[level]
        if keep == 0:
            return () if taxon.is_taxon or cid in self._animal else None
        return taxon.key[:keep] if taxon.depth >= keep else None

    def _fenced_class(self, cid: str) -> bool:
        taxon = self.taxa.get(cid)
        return taxon is not None and taxon.is_taxon and self.fence is not None and self.fence(taxon.key)

    def _unknown_id(self) -> str:
        """The class of SpeciesNet's "no cv result" label, added when none is."""
        from megaclassifier.models.speciesnet import UNKNOWN_LABEL

        guid, *tokens, common = UNKNOWN_LABEL.split(";")
        return self.table.id_for(Taxon(tuple(tokens), common, guid), common)  # type: ignore[arg-type]

    def _class_for(self, key: tuple[str, ...]) -> str:
        if not key:
            cid = self.table.animal_id()
            self._animal.add(cid)
            return cid
        taxon = Taxon(key + ("",) * (len(LEVELS) - len(key)))  # type: ignore[arg-type]
        return self.table.id_for(taxon, self.table.common_name(taxon))

    @property
    def changed(self) -> int:
        """Detections relabelled."""
        return sum(self.by_level.values())
