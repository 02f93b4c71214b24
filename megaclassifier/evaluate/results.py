"""What an evaluation found: the entities scored (a detection, an image or a sequence), each
variant's result, and the summary the command prints and the page shows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from megaclassifier.evaluate.metrics import Scores


@dataclass(frozen=True)
class Entity:
    """One labelled image, crop or sequence, and what each variant predicts for it."""

    key: str
    file: str
    detection: int | None
    label: str
    predicted: tuple[str, ...]
    scores: tuple[float, ...]


@dataclass
class VariantResult:
    """One variant's scores at each level (``image``, ``sequence``)."""

    name: str
    results: Path
    levels: dict[str, Scores] = field(default_factory=dict)


@dataclass
class EvaluationSummary:
    """What ``evaluate`` did."""

    out_dir: Path
    variants: list[VariantResult]
    entities: int = 0
    sequences: int = 0
    held_out: bool = False
    warnings: Counter[str] = field(default_factory=Counter)
    page: Path | None = None
