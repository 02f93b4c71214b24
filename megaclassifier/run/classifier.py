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
from megaclassifier.merge import Classifications, classification_list
from megaclassifier.models import categories_for
from megaclassifier.models.registry import release_for
from megaclassifier.models.speciesnet import SpeciesNetRelease, read_labels

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
    """

    engine: Engine
    class_names: list[str]
    merge_names: list[str]
    groups: list[list[int]] | None
    name: str
    release: SpeciesNetRelease | None = None
    labels: list[str] | None = None

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
        return [
            classification_list(row, threshold=threshold, max_classifications=max_classifications) for row in values
        ]


def chain_float64(probabilities: np.ndarray) -> np.ndarray:
    """float32 probabilities as the chain's later steps read them: via their CSV text."""
    flat = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    return np.array(format_float32(flat), dtype=np.float64).reshape(np.shape(probabilities))


def open_classifier(
    model: str | Path,
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
        model: TorchScript file, EfficientNet checkpoint, SpeciesNet release folder or downloaded model name.
        classifier_categories: the model's index-to-name JSON (default: a downloaded model's own,
            else ``0``..``N-1``).
        target_mapping: sum classes into these targets (``aggregate``'s mapping JSON).
        classifier_name: ``info.classifier`` (default: the model file's name without suffix).
        image_size, device, precision, backend, arch: as :func:`~megaclassifier.engines.open_engine`.

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: the engine is closed again.
    """
    from megaclassifier.classify.classify import check_class_count

    names = categories_for(model, classifier_categories)
    mapping = load_target_mapping(target_mapping) if target_mapping is not None else None
    engine = open_engine(model, backend=backend, device=device, precision=precision, arch=arch, image_size=image_size)
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
    release = release_for(model)
    name = classifier_name or (release.name if release else Path(str(model)).name.rsplit(".", 1)[0])
    labels = read_labels(release.classifier_labels) if release is not None else None
    logger.info("%s", engine.describe())
    return Classifier(engine, class_names, merge_names, groups, name, release, labels)


def _target_groups(mapping: dict[str, list[str]], class_names: Sequence[str]) -> tuple[list[str], list[list[int]]]:
    """The sorted targets and each target's class positions."""
    position = {name: i for i, name in enumerate(class_names)}
    targets = sorted(mapping)
    return targets, [[position[label] for label in mapping[t]] for t in targets]
