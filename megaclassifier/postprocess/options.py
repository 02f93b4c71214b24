"""The options of ``smooth``, with MegaDetector's defaults as ours.

The first group mirrors ``ClassificationSmoothingOptions`` of MegaDetector's
``classification_postprocessing`` (same names, same defaults); the rest choose
the level, the method and where sequences come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: MegaDetector's "other" class names: overwritten by a dominant class.
DEFAULT_OTHER_NAMES = ("other", "unknown", "no cv result", "animal", "blank", "mammal")
DEFAULT_GAP_SECONDS = 60.0
DEFAULT_EVIDENCE_THRESHOLD = 0.7

#: ``rollup --semantics`` (and ``smooth --rollup-semantics``): whose roll-up rules, the default first.
ROLLUP_SEMANTICS = ("speciesnet", "megadetector", "megaclassifier")
DEFAULT_ROLLUP_SEMANTICS = "speciesnet"
ROLLUP_SEMANTICS_HELP = (
    "Whose roll-up. speciesnet: SpeciesNet 5.0.6's (genus..kingdom, a sum > T, geofenced taxa skipped with "
    "--country; a top class > T is kept); megadetector: run_md_and_speciesnet's (species..kingdom, > T, the raw "
    "top-1 kept when nothing passes); megaclassifier: this toolkit's earlier default (only tops < T, species..class, "
    "a sum >= T)."
)
#: ``restrict --semantics``, the default first.
RESTRICT_SEMANTICS = ("megadetector", "megaclassifier")
DEFAULT_RESTRICT_SEMANTICS = "megadetector"
RESTRICT_SEMANTICS_HELP = (
    "megadetector: restrict_to_taxa_list's (each class relabelled where it stands, its score kept; no listed "
    "ancestor: animal); megaclassifier: this toolkit's earlier default (scores landing on one taxon summed, unlisted "
    "classes dropped, the rest renormalised)."
)


@dataclass
class SmoothOptions:
    """What ``smooth`` does; every field is a command-line flag of the same name (``_`` as ``-``).

    Attributes:
        min_detections_to_overwrite_secondary: a dominant class needs this many votes to
            overwrite non-dominant classes.
        max_detections_nondominant_class: a non-dominant class with more votes than this is left alone.
        min_detections_to_overwrite_secondary_same_family: votes a dominant genus/species needs
            to overwrite classes of its family (<= 0: off).
        max_detections_nondominant_class_same_family: a same-family class with more votes than
            this is left alone (<= 1 with the default -1: the same-family rule never fires).
        min_detections_to_overwrite_other: votes a dominant class needs to overwrite "other" classes.
        other_category_names: class names treated as "other".
        classification_confidence_threshold: a detection votes only when its top score is at least this.
        detection_confidence_threshold: a detection votes only when its ``conf`` is at least this.
        propagate_classifications_through_taxonomy: relabel a parent taxon as its most
            frequent / most specific child present (needs a taxonomy).
        taxonomy_propagation_level_weight: weight of the child's level in that choice.
        taxonomy_propagation_count_weight: weight of the child's count (breaks ties).
        detection_category_names_to_smooth: detection categories that take part.
        level: ``image`` or ``sequence``.
        method: ``counts`` (MegaDetector's rules) or ``probabilities`` (confidence-weighted mean).
        evidence_threshold: ``probabilities``: relabel when the group's best mean score is at least this.
        sequences: a COCO Camera Traps file with ``seq_id`` per image (``level="sequence"``).
        images_dir: where the images are, to read their EXIF times when ``sequences`` is None.
        camera_depth: how many leading folder levels name a camera (None: the whole folder).
        gap_seconds: a larger gap between two images of a camera starts a new sequence.
        rollup: roll uncertain detections up the taxonomy first (see :mod:`.rollup`) at this threshold.
        rollup_semantics: whose roll-up rules (``speciesnet``, ``megadetector``, ``megaclassifier``).
    """

    min_detections_to_overwrite_secondary: int = 4
    max_detections_nondominant_class: int = 1
    min_detections_to_overwrite_secondary_same_family: int = 2
    max_detections_nondominant_class_same_family: int = -1
    min_detections_to_overwrite_other: int = 2
    other_category_names: tuple[str, ...] = DEFAULT_OTHER_NAMES
    classification_confidence_threshold: float = 0.5
    detection_confidence_threshold: float = 0.15
    propagate_classifications_through_taxonomy: bool = True
    taxonomy_propagation_level_weight: float = 1.0
    taxonomy_propagation_count_weight: float = 0.01
    detection_category_names_to_smooth: tuple[str, ...] = ("animal",)
    level: Literal["image", "sequence"] = "image"
    method: Literal["counts", "probabilities"] = "counts"
    evidence_threshold: float = DEFAULT_EVIDENCE_THRESHOLD
    sequences: Path | None = None
    images_dir: Path | None = None
    camera_depth: int | None = None
    gap_seconds: float = DEFAULT_GAP_SECONDS
    rollup: float | None = None
    rollup_semantics: str = DEFAULT_ROLLUP_SEMANTICS

    def recorded(self) -> dict[str, object]:
        """The options as written into ``info`` (paths as strings, unused sequence fields left out)."""
        out: dict[str, object] = {}
        for key, value in vars(self).items():
            if key in ("sequences", "images_dir", "camera_depth", "gap_seconds") and self.level != "sequence":
                continue
            if key == "rollup_semantics" and self.rollup is None:
                continue
            out[key] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out
