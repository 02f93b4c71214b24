"""``run``'s classifier: the engine, its class names, and what the merge sees of its output.

:func:`open_classifier` loads the model once and checks it against its
categories file and the target mapping before any image is read.
:meth:`Classifier.classification_lists` turns a batch of probabilities into
``classifications`` lists exactly as the chain would: through the CSV's float32
text form, summed into targets (``aggregate``), thresholded and rounded (``merge``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megaclassifier.engines import Engine, open_engine
from megaclassifier.formats.probabilities import format_float32
from megaclassifier.labels.aggregate import check_mapping_covers, load_target_mapping, sum_groups
from megaclassifier.merge import Classifications, classification_list, round_confidence
from megaclassifier.models.resolved import ResolvedModel, resolve
from megaclassifier.models.speciesnet import SpeciesNetRelease

logger = logging.getLogger(__name__)


@dataclass
class Classifier:
    """An open engine and the names around it.

    Attributes:
        engine: the loaded model.
        class_names: the model's classes, in output order (the probability CSV's columns).
        merge_names: the classes the merge writes: the targets of a mapping, else ``class_names``.
        groups: each target's class positions, or None without a mapping.
        name: ``info.classifier``.
        release: the SpeciesNet release the model comes from, or None.
        labels: a SpeciesNet release's seven-token label of each class, or None.
        model: the model, resolved once (:mod:`megaclassifier.models.resolved`); the Ray actors open it.
    """

    engine: Engine
    class_names: list[str]
    merge_names: list[str]
    groups: list[list[int]] | None
    name: str
    release: SpeciesNetRelease | None = None
    labels: list[str] | None = None
    model: ResolvedModel | None = None

    @property
    def descriptions(self) -> dict[str, str] | None:
        """``classification_category_descriptions``: a SpeciesNet release's labels (without a target mapping)."""
        if self.labels is None or self.groups is not None:
            return None
        return {str(i): label for i, label in enumerate(self.labels)}

    @property
    def categories(self) -> dict[str, str]:
        """``classification_categories`` of the merged file: class ID -> name."""
        return {str(i): name for i, name in enumerate(self.merge_names)}

    def classification_lists(
        self, probabilities: np.ndarray, *, threshold: float, max_classifications: int | None
    ) -> list[Classifications]:
        """One ``classifications`` list per row of a batch, as the chain's merge writes them."""
        values = chain_float64(probabilities)
        if self.groups is not None:
            values = sum_groups(values, self.groups)
        return batch_classification_lists(values, threshold=threshold, max_classifications=max_classifications)


def batch_classification_lists(
    values: np.ndarray, *, threshold: float, max_classifications: int | None
) -> list[Classifications]:
    """:func:`~megaclassifier.merge.classification_list` of each row of ``values``, per batch with numpy.

    The same lists: classes at or above ``threshold``, rounded as ``round_confidence``, sorted by the
    rounded value descending with ties in class order (one stable sort, the others pushed to the end).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] == 0:
        return [
            classification_list(row, threshold=threshold, max_classifications=max_classifications) for row in values
        ]
    kept = values >= threshold
    rounded = round_confidence(values)
    order = np.argsort(np.where(kept, -rounded, np.inf), axis=1, kind="stable")
    counts = kept.sum(axis=1)
    if max_classifications is not None:
        counts = np.minimum(counts, max_classifications)
    names = [str(i) for i in range(values.shape[1])]
    sorted_values = np.take_along_axis(rounded, order, axis=1).tolist()
    return [
        [[names[i], v] for i, v in zip(ids[:n], row[:n], strict=True)]
        for ids, row, n in zip(order.tolist(), sorted_values, counts.tolist(), strict=True)
    ]


def chain_float64(probabilities: np.ndarray) -> np.ndarray:
    """float32 probabilities as the chain's later steps read them: via their CSV text.

    The CSV holds each float32's shortest round-trip decimal, which the chain reads as
    float64. That decimal is found here with numpy, per batch: for k = 1, 2, ... 9
    significant digits, the nearest k-digit decimal ``m / 10**p`` (``m`` and ``10**p``
    exact in float64, so the division is the correctly rounded parse of that text); the
    first that rounds back to the float32 is the shortest, and closest, one. Values where
    this could differ from the text (near-ties, powers of two, tiny or large exponents)
    go through the text itself. A test checks identity with the text on millions of values.
    """
    x32 = np.asarray(probabilities, dtype=np.float32)
    flat = x32.reshape(-1)
    values, unsure = _shortest_decimals(flat)
    if unsure.any():
        values[unsure] = np.array(format_float32(flat[unsure]), dtype=np.float64)
    return values.reshape(x32.shape)


#: Numerically settled: decimal exponents from -13 to 0 (|x| in [1e-13, 10)), so 10**p stays exact (p <= 22).
_MAGNITUDES = (-13.0, 0.0)


def _shortest_decimals(x32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 of each float32's shortest decimal, and where that was not settled numerically.

    Rounding back to the float32 holds for every digit count from the shortest one up (the nearest
    k+1-digit decimal is never farther than the nearest k-digit one, and a float32 that is not a
    power of two has a symmetric rounding interval), so a binary search over 1..9 digits finds it.
    """
    with np.errstate(invalid="ignore"):  # NaN payloads
        x = x32.astype(np.float64)
    magnitude = np.floor(np.log10(np.abs(np.where(np.isfinite(x) & (x != 0), x, 1.0))))
    magnitude += (np.abs(x) >= 10.0 ** (magnitude + 1)).astype(np.float64)
    magnitude -= (np.abs(x) < 10.0**magnitude).astype(np.float64)
    unsure = ~np.isfinite(x) | (x == 0) | (magnitude < _MAGNITUDES[0]) | (magnitude > _MAGNITUDES[1])
    unsure |= _mantissa_bits(x32) == 0  # powers of two: a lopsided rounding interval
    low, high = np.ones(x.shape), np.full(x.shape, 9.0)
    while True:
        open_ = low < high
        if not open_.any():
            break
        middle = np.floor((low + high) / 2)
        candidate, near_tie = _nearest_decimal(x, middle - 1 - magnitude)
        unsure |= open_ & near_tie
        fits = candidate.astype(np.float32) == x32
        high = np.where(open_ & fits, middle, high)
        low = np.where(open_ & ~fits, middle + 1, low)
    out, near_tie = _nearest_decimal(x, low - 1 - magnitude)
    return out, unsure | near_tie


def _nearest_decimal(x: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The nearest ``m / 10**power`` to each x, and whether x was too near a tie to be sure of it."""
    scale = 10.0 ** np.clip(power, 0, 22)
    scaled = x * scale
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < 1e-6
    return np.round(scaled) / scale, near_tie


def _mantissa_bits(x32: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x32, dtype=np.float32).view(np.uint32) & np.uint32(0x7FFFFF)


def open_classifier(
    model: str | Path | ResolvedModel,
    *,
    classifier_categories: str | Path | None = None,
    target_mapping: str | Path | None = None,
    classifier_name: str | None = None,
    image_size: int | None = None,
    device: str = "auto",
    precision: str = "fp32",
    backend: str = "auto",
    arch: str | None = None,
) -> Classifier:
    """Open the model and check its class names and target mapping.

    Args:
        model: TorchScript file, EfficientNet checkpoint, SpeciesNet release folder or downloaded model name,
            or one of these resolved (:func:`~megaclassifier.models.resolved.resolve`).
        classifier_categories: the model's index-to-name JSON (default: a downloaded model's own,
            else ``0``..``N-1``).
        target_mapping: sum classes into these targets (``aggregate``'s mapping JSON).
        classifier_name: ``info.classifier`` (default: the model file's name without suffix).
        image_size, device, precision, backend, arch: as :func:`~megaclassifier.engines.open_engine`.

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: the engine is closed again.
    """
    from megaclassifier.classify.classify import check_class_count

    resolved = resolve(model)
    names = resolved.class_names(classifier_categories)
    mapping = load_target_mapping(target_mapping) if target_mapping is not None else None
    engine = open_engine(
        resolved, backend=backend, device=device, precision=precision, arch=arch, image_size=image_size
    )
    with contextlib.ExitStack() as guard:
        guard.callback(engine.close)
        check_class_count(engine, names, classifier_categories)
        class_names = names or [str(i) for i in range(engine.num_classes)]
        merge_names, groups = class_names, None
        if mapping is not None and target_mapping is not None:
            check_mapping_covers(
                mapping,
                class_names,
                mapping_path=target_mapping,
                csv_path=classifier_categories or "the model's classes",
            )
            merge_names, groups = _target_groups(mapping, class_names)
        guard.pop_all()
    name = classifier_name or resolved.default_name
    logger.info("%s", engine.describe())
    return Classifier(engine, class_names, merge_names, groups, name, resolved.release, resolved.labels, resolved)


def _target_groups(mapping: dict[str, list[str]], class_names: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """The sorted targets and each target's class positions."""
    position = {name: i for i, name in enumerate(class_names)}
    targets = sorted(mapping)
    return targets, [[position[label] for label in mapping[t]] for t in targets]
