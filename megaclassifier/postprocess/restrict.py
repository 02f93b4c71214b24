"""Restrict: keep only the taxa a species list allows (``megaclassifier restrict``).

The list is a CSV with the columns ``latin`` and ``common``, as MegaDetector's
``restrict_to_taxa_list`` reads; ``latin`` is a binomial for a species and
one word for a genus, family, order or class::

    latin,common
    odocoileus virginianus,white-tailed deer
    cervidae,deer family
    canis,canids

Each class of the results moves to its nearest allowed taxon: itself when
listed, else its closest ancestor that is listed or is an ancestor of a listed
taxon (with only the coyote listed, a gray wolf becomes genus *canis*, as
MegaDetector does); a class is added for that taxon when none stands for it.
Classes that are no taxon (blank, vehicle, other) and humans are kept as they
are. The original list stays in ``raw_classifications``. Two semantics
(``--semantics``):

* ``megadetector`` (the default): MegaDetector's ``restrict_to_taxa_list``:
  every class is relabelled where it stands, its score unchanged; a class with
  no allowed ancestor (a bird when only mammals are listed) becomes "animal";
  when two entries land on one class, the first (higher) is kept. The top label
  and score are MegaDetector's.
* ``megaclassifier`` (this toolkit's earlier default): scores of classes that land on
  the same taxon are summed; a class with no allowed ancestor is dropped, and
  the detection's remaining scores are scaled up to the total it had
  (renormalised); the list is re-sorted.

Scores are written with 4 decimals.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError
from megaclassifier.formats.reading import open_text
from megaclassifier.labels.descriptions import Taxon
from megaclassifier.postprocess.classes import ClassTable
from megaclassifier.postprocess.options import DEFAULT_RESTRICT_SEMANTICS

logger = logging.getLogger(__name__)

HUMAN_KEY = ("mammalia", "primates", "hominidae", "homo", "sapiens")


def read_taxa_list(path: str | Path) -> dict[str, str]:
    """Latin name -> common name, lower case, first entry kept for a repeated name.

    Raises:
        InputFileError: unreadable, or no ``latin`` / ``common`` column.
    """
    out: dict[str, str] = {}
    try:
        with open_text(path) as f:
            reader = csv.DictReader(f)
            fields = [(h or "").lstrip("\ufeff").strip().lower() for h in reader.fieldnames or []]
            missing = [c for c in ("latin", "common") if c not in fields]
            if missing:
                raise InputFileError(
                    path, f"no {' or '.join(missing)} column; a taxa list has the columns latin,common"
                )
            reader.fieldnames = fields
            for row in reader:
                latin = " ".join((row.get("latin") or "").lower().split())
                if latin:
                    out.setdefault(latin, (row.get("common") or "").strip().lower())
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(path, f"cannot read ({e})") from None
    return out


class Restriction:
    """The move of each class to its nearest listed taxon.

    Attributes:
        semantics: ``megadetector`` or ``megaclassifier`` (see the module docstring).
        target: class ID -> class ID it moves to, or None when it has no allowed ancestor.
        unknown: list entries that name no taxon of the results.
        changed: detections whose list changed.
        emptied: ``megaclassifier``: detections left without any class.
        to_animal: ``megadetector``: detections whose top class had no allowed ancestor (now "animal").
    """

    def __init__(
        self,
        table: ClassTable,
        taxa_list: dict[str, str],
        *,
        list_path: str | Path,
        semantics: str = DEFAULT_RESTRICT_SEMANTICS,
    ) -> None:
        self.semantics = semantics
        self.table = table
        taxa = table.require_taxonomy("restrict")
        known = _known_taxa(taxa)
        allowed = _allowed({known[latin]: common for latin, common in taxa_list.items() if latin in known})
        self.unknown = [latin for latin in taxa_list if latin not in known]
        if not allowed:
            example = f" (e.g. {next(iter(taxa_list))!r})" if taxa_list else ""
            raise InputFileError(
                list_path,
                f"none of its {len(taxa_list)} taxa is a taxon of {table.source}{example}; "
                "give Latin names (binomials for species)",
            )
        if self.unknown:
            logger.warning("%s: %d taxa are not in the results' taxonomy: %s", list_path, len(self.unknown),
                           ", ".join(self.unknown[:5]))  # fmt: skip
        self.target: dict[str, str | None] = {
            cid: _nearest(table, taxon, allowed, cid) for cid, taxon in list(taxa.items())
        }
        self.changed = 0
        self.emptied = 0
        self.to_animal = 0
        self._animal: str | None = None

    def apply(self, det: dict[str, Any]) -> bool:
        """Move one detection's classes; say whether its list changed."""
        classes = det.get("classifications")
        if not classes or all(self.target.get(c, c) == c for c, _ in classes):
            return False
        if self.semantics == "megadetector":
            return self._relabel(det, classes)
        sums: dict[str, float] = {}
        total = 0.0
        for cid, score in classes:
            total += score
            target = self.target.get(cid, cid)
            if target is not None:
                sums[target] = sums.get(target, 0.0) + score
        det.setdefault("raw_classifications", classes)
        self.changed += 1
        kept = sum(sums.values())
        if kept <= 0:
            del det["classifications"]
            self.emptied += 1
            return True
        scale = total / kept
        moved = [[cid, round(score * scale, 4)] for cid, score in sums.items()]
        det["classifications"] = sorted(moved, key=lambda c: -c[1])
        return True

    def _relabel(self, det: dict[str, Any], classes: list[list[Any]]) -> bool:
        """MegaDetector's: each entry relabelled in place, its score kept, the first entry of a class kept."""
        out: list[list[Any]] = []
        seen: set[str] = set()
        for cid, score in classes:
            target = self.target.get(cid, cid)
            if target is None:
                target = self._animal if self._animal is not None else self.table.animal_id()
                self._animal = target
            if target not in seen:
                seen.add(target)
                out.append([target, score])
        det.setdefault("raw_classifications", classes)
        det["classifications"] = out
        self.changed += 1
        if self.target.get(classes[0][0], classes[0][0]) is None:
            self.to_animal += 1
        return True


def _allowed(listed: dict[Taxon, str]) -> dict[tuple[str, ...], tuple[Taxon, str]]:
    """Listed taxa (with their common names) and, below them in priority, all their ancestors."""
    allowed: dict[tuple[str, ...], tuple[Taxon, str]] = {}
    for taxon in listed:
        for depth in range(1, taxon.depth):
            allowed.setdefault(taxon.key[:depth], (taxon.at_depth(depth), ""))
    allowed.update({taxon.key: (taxon, common) for taxon, common in listed.items()})
    return allowed


def _known_taxa(taxa: dict[str, Taxon]) -> dict[str, Taxon]:
    """Latin name -> taxon, for every class's taxon and all its ancestors."""
    known: dict[str, Taxon] = {}
    for taxon in taxa.values():
        for depth in range(taxon.depth, 0, -1):
            ancestor = taxon.at_depth(depth)
            known.setdefault(ancestor.latin, ancestor)
    return known


def _nearest(
    table: ClassTable, taxon: Taxon, allowed: dict[tuple[str, ...], tuple[Taxon, str]], cid: str
) -> str | None:
    if not taxon.is_taxon or taxon.key == HUMAN_KEY:
        return cid
    for depth in range(taxon.depth, 0, -1):
        hit = allowed.get(taxon.key[:depth])
        if hit is not None:
            listed, common = hit
            if listed.key == taxon.key:
                return cid
            return table.id_for(Taxon(listed.tokens, common), common or table.common_name(listed))
    return None
