"""Scientific names of a results file's classes, for Camtrap DP's ``scientificName``.

Each class's taxon comes from the file's ``classification_category_descriptions``
(the seven-token strings ``merge --taxonomy``, MegaDetector and SpeciesNet
write), else from ``--taxonomy FILE`` (:mod:`megaclassifier.labels.descriptions`).
Its scientific name is the genus and species for a species (``Loxodonta
africana``, ``taxonRank`` ``species``; three words: ``subspecies``), else the
lowest named taxon (``Cervidae``, ``family``)::

    guid;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant
      -> ScientificName("Loxodonta africana", "species", ...)

A class without a taxon (``other``, ``blank``, ``vehicle``) has no scientific
name; its observation type is ``blank``, ``human`` or ``vehicle`` when its
name says so, else ``unknown`` (Camtrap DP: neither humans nor AI can say what
was recorded).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megaclassifier.labels.descriptions import LEVELS, Taxon, load_taxonomy_file, non_taxon, parse_description

#: observationType of a class without a taxon, by its (lower-case) name; others are ``unknown``.
NON_TAXON_TYPES = {"blank": "blank", "empty": "blank", "human": "human", "person": "human", "vehicle": "vehicle"}


@dataclass(frozen=True)
class ScientificName:
    """A class's scientific name, rank and taxon."""

    name: str
    rank: str
    taxon: Taxon

    def taxonomic(self) -> dict[str, Any]:
        """The package's ``taxonomic`` entry: name, rank, higher taxa, English common name."""
        out: dict[str, Any] = {"scientificName": self.name, "taxonRank": self.rank}
        for level, token in zip(LEVELS[:4], self.taxon.tokens[:4], strict=True):
            if token:
                out[level] = token.capitalize()
        if self.taxon.common:
            out["vernacularNames"] = {"eng": self.taxon.common}
        return out


def scientific_name(taxon: Taxon) -> ScientificName | None:
    """The scientific name of a taxon (None for a class that is no taxon)."""
    depth = taxon.depth
    if not taxon.is_taxon or depth == 0:
        return None
    if depth == len(LEVELS):
        epithet = taxon.tokens[4]
        return ScientificName(f"{taxon.tokens[3].capitalize()} {epithet}",
                              "subspecies" if " " in epithet else "species", taxon)  # fmt: skip
    return ScientificName(taxon.tokens[depth - 1].capitalize(), LEVELS[depth - 1], taxon)


def class_taxa(classes: Iterable[str], descriptions: dict[str, str], taxonomy: Path | None) -> dict[str, Taxon] | None:
    """Class name -> taxon, from the file's descriptions, else ``taxonomy``; None when neither is there.

    Raises:
        InputFileError: ``taxonomy`` cannot be read.
    """
    if descriptions:
        parsed = {name: parse_description(text) for name, text in descriptions.items()}
        return {name: parsed.get(name) or non_taxon(name) for name in classes}
    if taxonomy is None:
        return None
    known = load_taxonomy_file(taxonomy)
    return {name: known.get(name.strip().lower()) or non_taxon(name) for name in classes}


def observation_type(taxon: Taxon) -> str:
    """Camtrap DP's ``observationType`` for a class: ``animal`` (``human`` for *Homo*) or as :data:`NON_TAXON_TYPES`."""
    if taxon.is_taxon:
        return "human" if taxon.tokens[3] == "homo" else "animal"
    return NON_TAXON_TYPES.get(taxon.common.strip().lower(), "unknown")
