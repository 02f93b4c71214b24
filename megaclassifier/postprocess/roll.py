"""The one roll-up: scores summed by ancestor level by level (SpeciesNet's
roll_up_labels_to_first_matching_level and its variants), and a SpeciesNet release's
ancestors and geofence. The ensemble, the geofence step and rollup all sum here.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from megaclassifier.models.speciesnet import ANIMAL_LABEL, taxa_key
from megaclassifier.postprocess.options import DEFAULT_ROLLUP_SEMANTICS as DEFAULT_SEMANTICS


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


#: How many ``class;order;family;genus;species`` tokens each level keeps (the kingdom: none).
KEEP = {"species": 5, "genus": 4, "family": 3, "order": 2, "class": 1, "kingdom": 0}


@dataclass(frozen=True)
class Semantics:
    """One roll-up's rules.

    Attributes:
        name: its ``--semantics`` name.
        levels: the levels tried, in order.
        strict: a sum must be above the threshold (else: at least it).
    """

    name: str
    levels: tuple[str, ...]
    strict: bool


SEMANTICS = {
    "speciesnet": Semantics("speciesnet", ("genus", "family", "order", "class", "kingdom"), True),
    "megadetector": Semantics("megadetector", ("species", "genus", "family", "order", "class", "kingdom"), True),
    "megaclassifier": Semantics("megaclassifier", ("species", "genus", "family", "order", "class"), False),
}


#: SpeciesNet's geofence roll-up of a fenced-out top class (``geofence_animal_classification``).
GEOFENCE_SEMANTICS = Semantics("geofence", ("family", "order", "class", "kingdom"), True)


L = TypeVar("L", bound=Hashable)


A = TypeVar("A", bound=Hashable)


def roll_up(
    scores: Iterable[tuple[L, float]],
    ancestor: Callable[[L, str], A | None],
    threshold: float,
    semantics: str | Semantics = DEFAULT_SEMANTICS,
    *,
    fenced: Callable[[A], bool] | None = None,
) -> tuple[A, float, str] | None:
    """The first level whose best sum passes ``threshold``: ``(ancestor, sum, level)``, or None.

    At each level of the semantics, each label's score is added (in list order) to its
    ancestor's sum (``ancestor(label, level)``; None: the label adds to no sum there);
    the largest sum above 0 whose ancestor is not ``fenced`` (the first on ties) passes
    when it is above ``threshold`` (``megaclassifier``: at least it). With
    ``semantics="speciesnet"`` this is SpeciesNet's ``roll_up_labels_to_first_matching_level``
    as its ensemble calls it (the source it records is ``f"classifier+rollup_to_{level}"``).
    """
    rules = SEMANTICS[semantics] if isinstance(semantics, str) else semantics
    pairs = list(scores)
    for level in rules.levels:
        sums: dict[A, float] = {}
        for label, score in pairs:
            up = ancestor(label, level)
            if up is not None:
                sums[up] = sums.get(up, 0.0) + score
        best: A | None = None
        best_sum = 0.0
        for up, total in sums.items():
            if total > best_sum and not (fenced is not None and fenced(up)):
                best, best_sum = up, total
        if best is not None and (best_sum > threshold if rules.strict else best_sum >= threshold):
            return best, best_sum, level
    return None


def speciesnet_ancestor(taxonomy_map: dict[str, str]) -> Callable[[str | None, str], str | None]:
    """``ancestor`` for :func:`roll_up` on a release's labels: SpeciesNet's ``get_ancestor_at_level``.

    ``taxonomy_map``: taxa key -> label (:func:`megaclassifier.models.speciesnet.read_taxonomy_map`).
    A None label (a class without one) has no ancestor.
    """
    memo: dict[tuple[str, str], str | None] = {}  # a release has a few thousand labels: worth keeping

    def up(label: str | None, level: str) -> str | None:
        if not label:
            return None
        key = (label, level)
        if key not in memo:
            memo[key] = ancestor(label, KEEP[level], taxonomy_map)
        return memo[key]

    return up


def speciesnet_fence(
    geofence: dict[str, dict[str, Any]], country: str | None, admin1_region: str | None = None
) -> Callable[[str | None], bool] | None:
    """``fenced`` for :func:`roll_up` on a release's labels: SpeciesNet's ``should_geofence_animal_classification``.

    None without a country (nothing is fenced); a None label (a class without one) is never fenced.
    The answers are kept: a release has a few thousand labels.
    """
    if not country:
        return None
    memo: dict[str, bool] = {}

    def fenced(label: str | None) -> bool:
        if not label:
            return False
        if label not in memo:
            memo[label] = is_fenced_out(taxa_key(label), geofence, country, admin1_region)
        return memo[label]

    return fenced
