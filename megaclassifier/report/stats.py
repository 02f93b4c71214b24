"""Per-species numbers of a report: counts, confidence summary, histogram, review flags.

A *species* is a detection's label (its top class, or its detection category
when unclassified). A detection is flagged for review when its score is below
``review_below`` or its top two classes are within ``margin`` of each other::

    flag_reason(row, review_below=0.5, margin=0.1)
    # "low confidence" (0.42), "close second: elk 0.38" (deer 0.45), or None
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from megaclassifier.formats.results_table import DetectionRow, image_folder

#: Histogram bins over [0, 1].
HISTOGRAM_BINS = 10


@dataclass
class SpeciesStats:
    """One species' detections and their numbers.

    Attributes:
        name: the label.
        rows: its detections, ordered for its pages (flagged first, then by score, highest first).
        flags: the review reason of each row in ``rows`` (None: not flagged).
        images: number of distinct images.
        mean, median: of the scores.
        histogram: counts of scores per bin of width 1 / HISTOGRAM_BINS (1.0 in the last bin).
    """

    name: str
    rows: list[DetectionRow] = field(default_factory=list)
    flags: list[str | None] = field(default_factory=list)
    images: int = 0
    mean: float = 0.0
    median: float = 0.0
    histogram: list[int] = field(default_factory=list)

    @property
    def detections(self) -> int:
        return len(self.rows)

    @property
    def flagged(self) -> int:
        return sum(flag is not None for flag in self.flags)


def flag_reason(row: DetectionRow, *, review_below: float, margin: float) -> str | None:
    """Why a detection needs a look (low score, or a close second class), or None."""
    if row.score < review_below:
        return "low confidence"
    if row.second_score is not None and round(row.score - row.second_score, 9) < margin:  # 0.6 - 0.5 is 0.1
        return f"close second: {row.second_class} {row.second_score:.2f}"
    return None


def histogram(scores: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Counts of ``scores`` in ``bins`` equal bins over [0, 1] (1.0 counts in the last)."""
    counts = [0] * bins
    for score in scores:
        counts[min(max(int(score * bins), 0), bins - 1)] += 1
    return counts


def species_stats(rows: list[DetectionRow], *, review_below: float, margin: float) -> list[SpeciesStats]:
    """Group rows by label; most detections first (ties by name)."""
    groups: dict[str, list[DetectionRow]] = defaultdict(list)
    for row in rows:
        groups[row.label].append(row)
    out = [_one_species(name, members, review_below, margin) for name, members in groups.items()]
    return sorted(out, key=lambda s: (-s.detections, s.name))


def _one_species(name: str, rows: list[DetectionRow], review_below: float, margin: float) -> SpeciesStats:
    flagged = [(flag_reason(row, review_below=review_below, margin=margin), row) for row in rows]
    flagged.sort(key=lambda pair: (pair[0] is None, -pair[1].score, pair[1].file, pair[1].index))
    scores = [row.score for row in rows]
    return SpeciesStats(
        name,
        rows=[row for _, row in flagged],
        flags=[flag for flag, _ in flagged],
        images=len({row.file for row in rows}),
        mean=statistics.fmean(scores),
        median=statistics.median(scores),
        histogram=histogram(scores),
    )


@dataclass
class ImageSummary:
    """One image of the results: its detections at the threshold and its species counts.

    Attributes:
        file: the image's ``file``.
        folder: its folder (the deployment: a camera or site), ``.`` at the root.
        rows: its detections, in file order.
        species: label -> detections, most first (ties by name); empty for a blank image.
    """

    file: str
    folder: str
    rows: list[DetectionRow] = field(default_factory=list)
    species: dict[str, int] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return not self.rows


@dataclass
class DeploymentStats:
    """One folder's numbers: images, blank images, detections and detections per species."""

    folder: str
    images: int = 0
    blank: int = 0
    detections: int = 0
    species: dict[str, int] = field(default_factory=dict)


def image_summaries(files: list[str], rows: list[DetectionRow]) -> list[ImageSummary]:
    """One summary per image of ``files``, ordered by folder, then file."""
    by_file = {file: ImageSummary(file, image_folder(file)) for file in files}
    for row in rows:
        by_file[row.file].rows.append(row)
    for image in by_file.values():
        counts: dict[str, int] = defaultdict(int)
        for row in image.rows:
            counts[row.label] += 1
        image.species = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return sorted(by_file.values(), key=lambda image: (image.folder, image.file))


def deployment_stats(images: list[ImageSummary]) -> list[DeploymentStats]:
    """One entry per folder, in folder order (``images`` as :func:`image_summaries` orders them)."""
    out: dict[str, DeploymentStats] = {}
    for image in images:
        stats = out.setdefault(image.folder, DeploymentStats(image.folder))
        stats.images += 1
        stats.blank += image.blank
        stats.detections += len(image.rows)
        for label, count in image.species.items():
            stats.species[label] = stats.species.get(label, 0) + count
    for stats in out.values():
        stats.species = dict(sorted(stats.species.items(), key=lambda kv: (-kv[1], kv[0])))
    return list(out.values())
