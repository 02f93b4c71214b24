"""Class taxonomy: MegaDetector's taxonomy strings and the files that give them.

A results file may carry ``classification_category_descriptions``, one
seven-token string per class, lower case, as MegaDetector and SpeciesNet write
them (``|`` joins several; the first is used)::

    "classification_category_descriptions": {
     "0": "5c7ce479-...;mammalia;cetartiodactyla;cervidae;odocoileus;virginianus;white-tailed deer",
     "1": "9d3a1b0c-...;mammalia;carnivora;canidae;;;canine family",
     "2": "f1856211-...;;;;;;blank"
    }

The tokens are ``guid;class;order;family;genus;species;common name``; a class
with an empty ``class`` token is not a taxon (blank, vehicle, "animal").

Without descriptions in the file, ``--taxonomy FILE`` maps class names to taxa.
FILE is either a CSV with the columns
``name,kingdom,phylum,class,order,family,genus,species,common`` (``species``
may be the epithet or the binomial)::

    name,kingdom,phylum,class,order,family,genus,species,common
    deer,animalia,chordata,mammalia,cetartiodactyla,cervidae,odocoileus,virginianus,white-tailed deer
    other,,,,,,,,

or the reference taxonomy CSV that ``map-categories`` reads
(:mod:`megaclassifier.labels.taxonomy`), where a class name matches a
``query`` or a ``scientific_name``.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

from megaclassifier.errors import InputFileError
from megaclassifier.formats.reading import open_text

#: The levels a taxonomy string holds, most general first.
LEVELS = ("class", "order", "family", "genus", "species")

#: MegaDetector's level numbers (wi_taxonomy_utils.taxonomy_level_index): 0 for no taxon.
RANK_OF_DEPTH = {0: 0, 1: 3, 2: 4, 3: 5, 4: 6, 5: 7}
SUBSPECIES_RANK = 8
FAMILY_RANK = 5

SIMPLE_COLUMNS = ("name", "kingdom", "phylum", "class", "order", "family", "genus", "species", "common")
_GUID_NAMESPACE = uuid.UUID("8f1d2c3e-5a4b-4c6d-9e8f-0a1b2c3d4e5f")


@dataclass(frozen=True)
class Taxon:
    """One class's place in the taxonomy.

    Attributes:
        tokens: ``(class, order, family, genus, species)``, lower case; trailing ones empty
            above the species level; ``species`` is the epithet (``"virginianus"``).
        common: the common name (may be empty).
        guid: the first token of the description string ("" when we made none up yet).
    """

    tokens: tuple[str, str, str, str, str]
    common: str = ""
    guid: str = ""

    @property
    def depth(self) -> int:
        """How many leading tokens are set (0: not a taxon, 5: a species)."""
        n = 0
        while n < len(self.tokens) and self.tokens[n]:
            n += 1
        return n

    @property
    def rank(self) -> int:
        """MegaDetector's level number: 0 none, 3 class ... 7 species, 8 subspecies."""
        depth = self.depth
        if depth == 5 and " " in self.tokens[4]:
            return SUBSPECIES_RANK
        return RANK_OF_DEPTH[depth]

    @property
    def is_taxon(self) -> bool:
        """False for blank, vehicle, "animal" and other classes without a ``class`` token."""
        return bool(self.tokens[0])

    @property
    def key(self) -> tuple[str, ...]:
        """The set tokens, the identity of the taxon (common name and guid left out)."""
        return self.tokens[: self.depth]

    @property
    def latin(self) -> str:
        """``"odocoileus virginianus"`` for a species, else the lowest set token."""
        depth = self.depth
        if depth == 5:
            return f"{self.tokens[3]} {self.tokens[4]}"
        return self.tokens[depth - 1] if depth else ""

    def at_depth(self, depth: int) -> Taxon:
        """The ancestor holding the first ``depth`` tokens (no common name)."""
        kept = self.tokens[:depth] + ("",) * (len(LEVELS) - depth)
        return Taxon(kept)  # type: ignore[arg-type]

    def is_within(self, other: Taxon) -> bool:
        """Whether ``other`` is this taxon or one of its ancestors (an empty ``other`` is everything)."""
        depth = other.depth
        return self.tokens[:depth] == other.tokens[:depth]

    def description(self) -> str:
        """The seven-token string MegaDetector writes, with a stable made-up guid where none is known."""
        guid = self.guid or str(uuid.uuid5(_GUID_NAMESPACE, ";".join(self.tokens) + "|" + self.common))
        return ";".join([guid, *self.tokens, self.common])


def parse_description(text: str) -> Taxon | None:
    """Parse a description string (the first of ``|``-joined ones); None when malformed."""
    if not isinstance(text, str):
        return None
    tokens = text.split("|")[0].strip().lower().split(";")
    if len(tokens) == 7:
        return Taxon(tuple(t.strip() for t in tokens[1:6]), tokens[6].strip(), tokens[0].strip())  # type: ignore[arg-type]
    if len(tokens) == 5:
        return Taxon(tuple(t.strip() for t in tokens))  # type: ignore[arg-type]
    return None


def non_taxon(name: str) -> Taxon:
    """A class that is no taxon (blank, other, vehicle): only a common name."""
    return Taxon(("", "", "", "", ""), name.strip().lower())


def _species_epithet(genus: str, species: str) -> str:
    """``species`` may be given as the binomial; keep the epithet."""
    if genus and species.startswith(genus + " "):
        return species[len(genus) + 1 :]
    return species


def load_taxonomy_file(path: str | Path) -> dict[str, Taxon]:
    """Read ``--taxonomy FILE``: class name (lower case) -> taxon.

    Raises:
        InputFileError: unreadable, or neither of the two accepted CSV layouts.
    """
    try:
        with open_text(path) as f:
            header = next(csv.reader([f.readline()]), [])
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(path, f"cannot read ({e})") from None
    header = [h.lstrip("\ufeff").strip().lower() for h in header]
    from megaclassifier.labels.taxonomy import REQUIRED_COLUMNS

    try:
        if {"name", "genus", "species"} <= set(header):
            return _load_simple_csv(path)
        if set(REQUIRED_COLUMNS) <= set(header):
            return _load_reference_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputFileError(path, f"cannot read ({e})") from None
    raise InputFileError(
        path,
        f"not a taxonomy CSV; expected the columns {','.join(SIMPLE_COLUMNS)} or the reference taxonomy CSV's "
        f"{','.join(REQUIRED_COLUMNS)}",
    )


def _load_simple_csv(path: str | Path) -> dict[str, Taxon]:
    out: dict[str, Taxon] = {}
    with open_text(path) as f:
        for row in csv.DictReader(f):
            row = {  # a row longer than the header has its extra cells under None: not a column
                k.lstrip("\ufeff").strip().lower(): (v or "").strip().lower() for k, v in row.items() if k is not None
            }
            name = row.get("name", "")
            if not name:
                continue
            genus = row.get("genus", "")
            tokens = (row.get("class", ""), row.get("order", ""), row.get("family", ""), genus,
                      _species_epithet(genus, row.get("species", "")))  # fmt: skip
            out.setdefault(name, Taxon(tokens, row.get("common", "") or name))
    return out


_LEVEL_INDEX = {level: i for i, level in enumerate(LEVELS)}


def _load_reference_csv(path: str | Path) -> dict[str, Taxon]:
    """Each ``query`` and ``scientific_name``, its ancestry read from the tree (which fills a row's gaps)."""
    from megaclassifier.labels.taxonomy import load_taxonomy_csv

    tree = load_taxonomy_csv(path)
    out: dict[str, Taxon] = {}
    for (_, label), key in tree.dataset_labels.items():
        tokens = ["", "", "", "", ""]
        node: tuple[str, str] | None = key
        while node is not None:
            if node[0] in _LEVEL_INDEX:
                tokens[_LEVEL_INDEX[node[0]]] = node[1]
            node = tree.parent.get(node)
        tokens[4] = _species_epithet(tokens[3], tokens[4])
        out.setdefault(label, Taxon(tuple(tokens), label))  # type: ignore[arg-type]
        out.setdefault(key[1], Taxon(tuple(tokens), key[1]))  # type: ignore[arg-type]
    return out


def category_descriptions(categories: dict[str, str], taxonomy: dict[str, Taxon]) -> dict[str, str]:
    """``classification_category_descriptions`` for ``classification_categories``.

    Args:
        categories: class ID -> class name.
        taxonomy: class name (lower case) -> taxon, from :func:`load_taxonomy_file`.

    Returns:
        class ID -> seven-token description; a class the taxonomy does not know is
        written as a non-taxon (``guid;;;;;;name``).
    """
    out = {}
    for cid, name in categories.items():
        taxon = taxonomy.get(name.strip().lower())
        if taxon is None:
            taxon = non_taxon(name)
        elif not taxon.common:
            taxon = Taxon(taxon.tokens, name.strip().lower(), taxon.guid)
        out[cid] = taxon.description()
    return out
