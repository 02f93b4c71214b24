"""The classes of a results file, their taxa, and the classes steps add.

:class:`ClassTable` wraps ``classification_categories`` (ID -> name) and, when
known, each class's :class:`~megaclassifier.labels.descriptions.Taxon` (from
``classification_category_descriptions``, else ``--taxonomy FILE``). Steps
that label a taxon no class stands for (rollup to a genus, restrict to a
family) add a class for it here; :meth:`ClassTable.write_into` puts both maps
back into the results header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.labels.descriptions import Taxon, load_taxonomy_file, non_taxon, parse_description


class TaxonomyNeededError(MegaClassifierError):
    """A step needs a taxonomy and the results file has none."""


class ClassTable:
    """Class IDs, names and taxa of one results file.

    Attributes:
        names: class ID -> name (``classification_categories``).
        taxa: class ID -> taxon, or None without a taxonomy.
        source: the results file (for messages).
        added: IDs of the classes added by steps.
    """

    def __init__(self, names: dict[str, str], taxa: dict[str, Taxon] | None, source: str) -> None:
        self.names = dict(names)
        self.taxa = taxa
        self.source = source
        self.added: list[str] = []
        self._by_key: dict[tuple[str, ...], str] = {}
        for cid, taxon in (taxa or {}).items():
            if taxon.is_taxon:
                self._by_key.setdefault(taxon.key, cid)

    @classmethod
    def from_header(cls, header: dict[str, Any], source: str, taxonomy: str | Path | None = None) -> ClassTable:
        """Build from a results header; ``taxonomy`` is used when the file has no descriptions.

        Raises:
            InputFileError: the file has no classes, or ``taxonomy`` cannot be read.
        """
        names = header.get("classification_categories") or {}
        if not names:
            raise InputFileError(
                source, 'no "classification_categories": these results are not classified (run merge or run first)'
            )
        descriptions = header.get("classification_category_descriptions") or {}
        taxa: dict[str, Taxon] | None = None
        if descriptions:
            taxa = {}
            for cid, name in names.items():
                taxon = parse_description(descriptions.get(cid, ""))
                taxa[cid] = taxon if taxon is not None else non_taxon(name)
        elif taxonomy is not None:
            by_name = load_taxonomy_file(taxonomy)
            taxa = {cid: by_name.get(name.strip().lower()) or non_taxon(name) for cid, name in names.items()}
        return cls(names, taxa, source)

    def require_taxonomy(self, step: str) -> dict[str, Taxon]:
        """The taxa, or a one-line error saying ``step`` needs them."""
        if self.taxa is None or not any(t.is_taxon for t in self.taxa.values()):
            raise TaxonomyNeededError(
                f"{self.source}: {step} needs a taxonomy: the file has no classification_category_descriptions "
                "naming taxa; give --taxonomy FILE"
            )
        return self.taxa

    def ids_named(self, names: tuple[str, ...] | list[str]) -> set[str]:
        """IDs of the classes with these names (case-insensitive)."""
        wanted = {n.strip().lower() for n in names}
        return {cid for cid, name in self.names.items() if name.strip().lower() in wanted}

    def id_for(self, taxon: Taxon, name: str) -> str:
        """The class standing for ``taxon``, added (as ``name``) when none does."""
        cid = self._by_key.get(taxon.key)
        if cid is not None:
            return cid
        cid = str(max((int(k) for k in self.names if k.lstrip("-").isdigit()), default=-1) + 1)
        self.names[cid] = name
        if self.taxa is not None:
            self.taxa[cid] = Taxon(taxon.tokens, taxon.common or name)
        self._by_key[taxon.key] = cid
        self.added.append(cid)
        return cid

    def animal_id(self) -> str:
        """The class "animal" (no taxon: SpeciesNet's kingdom, MegaDetector's unplaced animal), added when none is.

        A class of the file named "animal" without a taxon is it (the lowest ID when several are).
        """
        taxa = self.taxa or {}
        same = [c for c in self.ids_named(("animal",)) if c in taxa and not taxa[c].is_taxon]
        if same:
            return min(same, key=lambda c: (len(c), c))
        from megaclassifier.models.speciesnet import ANIMAL_LABEL

        animal = Taxon(("", "", "", "", ""), "animal", ANIMAL_LABEL.split(";")[0])
        cid = self.id_for(animal, "animal")
        if self.taxa is not None:
            self.taxa[cid] = animal
        return cid

    def common_name(self, taxon: Taxon) -> str:
        """A name for a taxon: a known class's common name for it, else its Latin name."""
        cid = self._by_key.get(taxon.key)
        return self.names[cid] if cid is not None else taxon.latin

    def write_into(self, header: dict[str, Any]) -> None:
        """Store the classes (and their descriptions, when known) in a results header."""
        header["classification_categories"] = dict(self.names)
        if self.taxa is not None:
            header["classification_category_descriptions"] = {
                cid: _description(self.taxa[cid], header, cid) for cid in self.names
            }


def _description(taxon: Taxon, header: dict[str, Any], cid: str) -> str:
    """The file's own description when it had one for this class, else ours."""
    own = (header.get("classification_category_descriptions") or {}).get(cid)
    return own if isinstance(own, str) and own else taxon.description()
