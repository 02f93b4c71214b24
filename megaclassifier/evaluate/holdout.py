"""The held-out set: whole cameras (folders or locations) kept out of learning, the same in every command.

``learn-mapping``, ``train-head`` and ``evaluate`` given the same labels and the
same ``--holdout-by``/``--holdout-fraction`` (or ``--holdout GROUP``) hold out the
same images, so their figures compare on one held-out set. Groups are ordered
by a hash of their name (not by chance, not by file order) and the first
``fraction`` of them, at least one and never all, are held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from megaclassifier.errors import MegaClassifierError
from megaclassifier.evaluate.labels import Labels
from megaclassifier.formats.results_table import image_folder

#: ``--holdout-by`` choices: no held-out set, the image's folder, the labels' location (else the folder).
HOLDOUT_BY = ("none", "folder", "location")
DEFAULT_HOLDOUT_FRACTION = 0.2


def group_of(key: str, labels: Labels, by: str) -> str:
    """The camera ``key`` belongs to: its folder, or its location in the labels (else its folder)."""
    if by == "location":
        return labels.locations.get(key) or image_folder(key)
    return image_folder(key)


def held_out_groups(groups: Iterable[str], *, fraction: float, chosen: Sequence[str] = ()) -> set[str]:
    """The groups to hold out: ``chosen`` when given, else a ``fraction`` of them by name hash.

    Raises:
        MegaClassifierError: ``chosen`` names a group that has no labelled image, or there is one group only.
    """
    names = sorted(set(groups))
    if chosen:
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise MegaClassifierError(f"--holdout {unknown[0]}: no labelled image in that group (groups: {shown})")
        return set(chosen)
    if len(names) < 2:
        raise MegaClassifierError(
            f"only one group ({names[0] if names else 'none'}) to hold out by; "
            "label images of two or more cameras, or use --holdout-by none"
        )
    ordered = sorted(names, key=lambda g: hashlib.sha1(g.encode("utf-8")).hexdigest())
    count = min(len(names) - 1, max(1, round(fraction * len(names))))
    return set(ordered[:count])


def split_keys(
    keys: Iterable[str], labels: Labels, *, by: str, fraction: float, chosen: Sequence[str] = ()
) -> tuple[set[str], set[str]]:
    """(learning keys, held-out keys); with ``by="none"`` everything is for learning and nothing held out."""
    keys = set(keys)
    if by == "none":
        return keys, set()
    groups = {key: group_of(key, labels, by) for key in keys}
    out = held_out_groups(groups.values(), fraction=fraction, chosen=chosen)
    held = {key for key, group in groups.items() if group in out}
    return keys - held, held
