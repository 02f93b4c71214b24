"""MegaDetector's smoothing rules (``--method counts``) on the votes of one image or sequence.

A *vote* is a detection that takes part: its category is smoothed (``animal``),
its ``conf`` and its top score clear the thresholds. The rules look only at
each vote's top class, count the classes, and relabel, in four steps:

1. **other**: when the most common class is not an "other" class and has at
   least ``min_detections_to_overwrite_other`` votes, every "other" vote
   becomes it (cow/cow/other -> cow/cow/cow). An "other" class tied first
   with a real class yields first place to it.
2. **dominant**: when the most common class has at least
   ``min_detections_to_overwrite_secondary`` votes, a class with fewer votes
   and at most ``max_detections_nondominant_class`` becomes it; with a
   taxonomy, a child of the dominant class, or a non-taxon, is left for step 3.
3. **taxonomic** (needs a taxonomy): a vote for a parent taxon becomes the
   best of its children present, scored ``level * level_weight + count *
   count_weight`` (carnivora/fox/fox -> fox/fox/fox).
4. **same family** (needs a taxonomy): when the most common class is a genus or
   species with at least ``min_detections_to_overwrite_secondary_same_family``
   votes, a class of the same family with at most
   ``max_detections_nondominant_class_same_family`` votes (and not tied)
   becomes it; a species is not turned into its own genus.

Counts are taken afresh between steps, never within one. Ties keep the order
in which the classes first voted. Each relabelled vote keeps its score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from megaclassifier.labels.descriptions import FAMILY_RANK, Taxon
from megaclassifier.postprocess.options import SmoothOptions

RULES = ("other", "dominant", "taxonomic", "same_family")


@dataclass(slots=True)
class Vote:
    """One detection's top class (changed by the rules), and where it came from.

    Attributes:
        cls: the class, relabelled in place by the rules.
        score: the top score (kept when relabelled).
        image: the image's index in the results.
        detection: the detection's index in the image.
        order: the image's position in its sequence (votes are ordered by it).
        original: the class before the rules.
    """

    cls: str
    score: float
    image: int = 0
    detection: int = 0
    order: int = 0
    original: str = ""


@dataclass
class RuleContext:
    """What the rules need besides the votes."""

    options: SmoothOptions
    other_ids: set[str]
    taxa: dict[str, Taxon] | None

    @property
    def taxonomic(self) -> bool:
        return bool(self.taxa)


@dataclass
class RuleChanges:
    """Votes relabelled by each rule."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    def add(self, other: RuleChanges) -> None:
        for rule, n in other.counts.items():
            self.counts[rule] += n


def count_votes(votes: list[Vote]) -> dict[str, int]:
    """Class -> votes, most votes first, ties in order of first vote."""
    counts: dict[str, int] = {}
    for vote in votes:
        counts[vote.cls] = counts.get(vote.cls, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def smooth_votes(votes: list[Vote], ctx: RuleContext) -> RuleChanges:
    """Apply the four rules to one group's votes, in place; return how many each changed."""
    changes = RuleChanges()
    counts = count_votes(votes)
    if len(counts) <= 1:
        return changes
    changes.counts["other"] = _overwrite_other(votes, counts, ctx)
    counts = count_votes(votes)
    changes.counts["dominant"] = _overwrite_nondominant(votes, counts, ctx)
    counts = count_votes(votes)
    taxonomic = ctx.taxonomic and len(counts) > 1
    if taxonomic and ctx.options.propagate_classifications_through_taxonomy:
        changes.counts["taxonomic"] = _propagate_down(votes, counts, ctx)
    counts = count_votes(votes)
    if taxonomic:
        changes.counts["same_family"] = _overwrite_same_family(votes, counts, ctx)
    return changes


def _overwrite_other(votes: list[Vote], counts: dict[str, int], ctx: RuleContext) -> int:
    ranked = list(counts)
    if ranked[0] in ctx.other_ids and ranked[1] not in ctx.other_ids and counts[ranked[0]] == counts[ranked[1]]:
        ranked[0], ranked[1] = ranked[1], ranked[0]
    top = ranked[0]
    if counts[top] < ctx.options.min_detections_to_overwrite_other or top in ctx.other_ids:
        return 0
    changed = 0
    for vote in votes:
        if vote.cls in ctx.other_ids:
            vote.cls = top
            changed += 1
    return changed


def _overwrite_nondominant(votes: list[Vote], counts: dict[str, int], ctx: RuleContext) -> int:
    top = next(iter(counts))
    top_count = counts[top]
    if top in ctx.other_ids or top_count < ctx.options.min_detections_to_overwrite_secondary:
        return 0
    taxa = ctx.taxa if ctx.taxonomic and len(counts) > 1 else None
    changed = 0
    for vote in votes:
        if vote.cls == top:
            continue
        if taxa is not None:
            own = taxa[vote.cls]
            if not own.is_taxon or own.is_within(taxa[top]):
                continue
        n = counts[vote.cls]
        if top_count > n and n <= ctx.options.max_detections_nondominant_class:
            vote.cls = top
            changed += 1
    return changed


def _propagate_down(votes: list[Vote], counts: dict[str, int], ctx: RuleContext) -> int:
    taxa = ctx.taxa or {}
    options = ctx.options
    changed = 0
    for vote in votes:
        parent = taxa[vote.cls]
        if not parent.is_taxon:
            continue
        best, best_score = None, 0.0
        for cid, n in counts.items():
            child = taxa[cid]
            if cid == vote.cls or not child.is_taxon or child.key == parent.key or not child.is_within(parent):
                continue
            score = (
                child.rank * options.taxonomy_propagation_level_weight + n * options.taxonomy_propagation_count_weight
            )
            if best is None or score > best_score:
                best, best_score = cid, score
        if best is not None:
            vote.cls = best
            changed += 1
    return changed


def _overwrite_same_family(votes: list[Vote], counts: dict[str, int], ctx: RuleContext) -> int:
    taxa = ctx.taxa or {}
    options = ctx.options
    top = next(iter(counts))
    top_taxon, top_count = taxa[top], counts[top]
    if (
        options.min_detections_to_overwrite_secondary_same_family <= 0
        or top in ctx.other_ids
        or top_taxon.rank <= FAMILY_RANK
        or top_count < options.min_detections_to_overwrite_secondary_same_family
    ):
        return 0
    changed = 0
    for vote in votes:
        n = counts[vote.cls]
        if vote.cls == top or n > options.max_detections_nondominant_class_same_family or n == top_count:
            continue
        own = taxa[vote.cls]
        family, genus = own.tokens[2], own.tokens[3]
        if not family or not top_taxon.tokens[2] or family != top_taxon.tokens[2]:
            continue
        if genus == top_taxon.tokens[3] and own.rank > top_taxon.rank:
            continue
        vote.cls = top
        changed += 1
    return changed
