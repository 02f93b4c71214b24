"""Per-class precision, recall, F1 and support, and the confusion matrix, with their files.

``per_class.csv`` (``support``: how many images are labelled with the class;
``predicted``: how many were predicted as it; undefined ratios are 0, as
scikit-learn's ``zero_division=0``)::

    class,precision,recall,f1,support,predicted
    deer,0.9000,0.8182,0.8571,11,10

``confusion_matrix.csv``: one row per label, one column per predicted class::

    label \\ predicted,deer,elk
    deer,9,2
    elk,1,7

``confusion_matrix.png``: the matrix as a heatmap coloured by each row's share
(so rare classes show as clearly as common ones), counts written in the cells
while they fit; it grows with the classes and stays readable at 50.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megaclassifier.formats.atomic import atomic_output, atomic_path


@dataclass(frozen=True)
class ClassMetrics:
    """One class's row of ``per_class.csv``."""

    name: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclass(frozen=True)
class Scores:
    """A confusion matrix and what follows from it.

    Attributes:
        classes: row and column names, sorted.
        matrix: ``matrix[i, j]``: entities labelled ``classes[i]`` predicted ``classes[j]``.
        per_class: one entry per class.
    """

    classes: list[str]
    matrix: np.ndarray
    per_class: list[ClassMetrics]

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.matrix) / self.total) if self.total else 0.0

    def macro(self, attribute: str) -> float:
        """The mean of ``precision``, ``recall`` or ``f1`` over the classes with labelled entities."""
        values = [getattr(m, attribute) for m in self.per_class if m.support > 0]
        return float(np.mean(values)) if values else 0.0


def score(truth: Sequence[str], predicted: Sequence[str]) -> Scores:
    """The confusion matrix and per-class metrics of paired labels and predictions."""
    classes = sorted(set(truth) | set(predicted))
    position = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    if truth:
        np.add.at(matrix, ([position[t] for t in truth], [position[p] for p in predicted]), 1)
    support, predicted_count, tp = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    per_class = []
    for i, name in enumerate(classes):
        precision = tp[i] / predicted_count[i] if predicted_count[i] else 0.0
        recall = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            ClassMetrics(name, float(precision), float(recall), float(f1), int(support[i]), int(predicted_count[i]))
        )
    return Scores(classes, matrix, per_class)


def write_per_class(path: Path, scores: Scores) -> None:
    """Write ``per_class.csv``."""
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["class", "precision", "recall", "f1", "support", "predicted"])
        for m in scores.per_class:
            writer.writerow([m.name, f"{m.precision:.4f}", f"{m.recall:.4f}", f"{m.f1:.4f}", m.support, m.predicted])


def write_matrix(path: Path, scores: Scores) -> None:
    """Write ``confusion_matrix.csv``."""
    with atomic_output(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["label \\ predicted", *scores.classes])
        for name, row in zip(scores.classes, scores.matrix, strict=True):
            writer.writerow([name, *(int(v) for v in row)])


def write_heatmap(path: Path, scores: Scores, *, title: str) -> None:
    """Write the confusion matrix as a PNG heatmap (matplotlib, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = max(1, len(scores.classes))
    rows = scores.matrix.sum(axis=1, keepdims=True)
    share = np.divide(scores.matrix, rows, out=np.zeros(scores.matrix.shape), where=rows > 0)
    side = min(40.0, 3.0 + 0.32 * n)
    font = 9 if n <= 20 else 7 if n <= 40 else 6
    # past 20 classes the names are small (6-7 pt): 150 dpi keeps them 12 px or more high
    fig, ax = plt.subplots(figsize=(side + 1.5, side), dpi=100 if n <= 20 else 150)
    try:
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(n), scores.classes, rotation=90, fontsize=font)
        ax.set_yticks(range(n), scores.classes, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("label")
        ax.set_title(title, fontsize=10)
        if n <= 60:
            for i, j in zip(*np.nonzero(scores.matrix), strict=True):
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, str(scores.matrix[i, j]), ha="center", va="center", fontsize=font - 1, color=colour)
        fig.colorbar(image, ax=ax, fraction=0.04, label="share of the label's images")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
