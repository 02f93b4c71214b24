"""``train-head``: a linear head on ``features`` embeddings, saved with its backbone as one model.

Each crop of FEATURES (``.npz`` or ``.csv`` from ``features``) takes the label of
its detection (a crop in a class folder) or of its image. scikit-learn's
``LogisticRegression`` (L-BFGS, ``class_weight="balanced"``, on standardised
features) is fitted on the crops outside the held-out cameras and scored on the
held-out ones; the standardisation is folded into the weights, so the head is
one ``Linear(F, K)``.

The output is a TorchScript file: BACKBONE (the model FEATURES came from: an
EfficientNet checkpoint or a TorchScript model whose last layer is linear) with
its last linear layer replaced by the head, traced; the class names ride inside
it (``extra/megaclassifier.json``, see :func:`~megaclassifier.models.loading.embedded_class_names`),
so ``classify`` and ``run`` take it as MODEL and write the user's classes::

    {"class_names": ["bear", "cattle", "elephant"], "feature_size": 1280,
     "backbone": "lite0.pt", "image_size": 224}
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from megaclassifier.errors import InputFileError, MegaClassifierError, ModelError
from megaclassifier.evaluate.holdout import DEFAULT_HOLDOUT_FRACTION, split_keys
from megaclassifier.evaluate.labels import Labels, match_key, read_labels
from megaclassifier.evaluate.metrics import Scores, score
from megaclassifier.evaluate.rules import Rules
from megaclassifier.formats.atomic import atomic_path
from megaclassifier.formats.naming import parse_crop_filename
from megaclassifier.formats.outputs import check_writable
from megaclassifier.formats.probabilities import ProbabilityCsvReader
from megaclassifier.models.loading import EMBEDDED_INFO

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_C = 1.0
DEFAULT_MAX_ITER = 1000


@dataclass
class HeadSummary:
    """What ``train-head`` did.

    Attributes:
        output: the model written.
        classes: its class names, in output order.
        train_crops, held_out_crops: crops fitted on and scored on.
        unlabelled: crops of FEATURES without a label (left out).
        held_out: held-out scores (None without a held-out set).
        train_accuracy: accuracy on the fitted crops.
        counts: training crops per class.
    """

    output: Path
    classes: list[str]
    train_crops: int
    held_out_crops: int = 0
    unlabelled: int = 0
    held_out: Scores | None = None
    train_accuracy: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)


def read_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The crop keys and float32 features of a ``features`` output (``.npz``, ``.csv``, ``.csv.gz``).

    Raises:
        InputFileError: not a features file.
    """
    path = Path(path)
    if path.name.lower().endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as data:
                return [str(p) for p in data["paths"]], np.asarray(data["features"], dtype=np.float32)
        except (OSError, ValueError, KeyError) as e:
            raise InputFileError(path, f'not a features .npz (arrays "paths" and "features"): {e}') from None
    with ProbabilityCsvReader(path) as reader:
        paths, blocks = [], []
        for chunk_paths, values, _ in reader.iter_chunks():
            paths.extend(chunk_paths)
            blocks.append(values.astype(np.float32))
    if not paths:
        raise InputFileError(path, "no feature rows")
    return paths, np.concatenate(blocks)


def crop_labels(paths: Sequence[str], truth: Labels, *, ignore_case: bool) -> tuple[list[str | None], list[str]]:
    """Each crop's label (None: unlabelled) and image match key."""
    labels: list[str | None] = []
    keys = []
    for crop_key in paths:
        try:
            name = parse_crop_filename(crop_key)
        except ValueError:
            raise InputFileError(
                crop_key, "a FEATURES row that is not a crop file name; is this a features file?"
            ) from None
        key = match_key(name.file, ignore_case=ignore_case)
        keys.append(key)
        labels.append(truth.crops.get((key, name.index), truth.images.get(key)))
    return labels, keys


def train_head(
    features: str | Path,
    labels: str | Path,
    output: str | Path,
    *,
    backbone: str | Path,
    label_column: str | None = None,
    ignore_case: bool = False,
    holdout_by: str = "folder",
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION,
    holdout: Sequence[str] = (),
    c: float = DEFAULT_C,
    max_iter: int = DEFAULT_MAX_ITER,
) -> HeadSummary:
    """Fit the head on FEATURES' labelled crops and write BACKBONE + head as one TorchScript model.

    Args:
        features: ``features`` output.
        labels: see :func:`~megaclassifier.evaluate.labels.read_labels`.
        output: the model file to write (``.pt``).
        backbone: the model FEATURES came from.
        label_column, ignore_case: as for ``read_labels``.
        holdout_by, holdout_fraction, holdout: the held-out cameras (:mod:`~megaclassifier.evaluate.holdout`).
        c: inverse regularisation strength of the logistic regression.
        max_iter: L-BFGS iterations at most.

    Raises:
        InputFileError: FEATURES or LABELS unusable, or fewer than two classes to learn.
        ModelError: BACKBONE cannot carry the head (its features are not as wide as FEATURES').
    """
    output = Path(output)
    check_writable(output)
    paths, x = read_features(features)
    truth = read_labels(labels, label_column=label_column, ignore_case=ignore_case)
    rules = Rules()
    names, keys = crop_labels(paths, truth, ignore_case=ignore_case)
    labelled = [i for i, n in enumerate(names) if n is not None]
    if not labelled:
        raise InputFileError(truth.source, f"labels none of the {len(paths)} crops of {features} (paths must match)")
    y = np.array([rules.label(names[i]) for i in labelled])  # type: ignore[arg-type]
    learn, held = split_keys(
        {keys[i] for i in labelled}, truth, by=holdout_by, fraction=holdout_fraction, chosen=holdout
    )
    train = np.array([keys[i] in learn for i in labelled])
    classes = sorted(set(y[train]))
    if len(classes) < 2:
        raise InputFileError(truth.source, f"the learning set has {len(classes)} class; a head needs two or more")
    weight, bias, train_accuracy = _fit(x[labelled][train], y[train], classes, c=c, max_iter=max_iter)
    summary = HeadSummary(output, classes, int(train.sum()), unlabelled=len(paths) - len(labelled))
    summary.train_accuracy, summary.counts = train_accuracy, Counter(y[train].tolist())
    if (~train).any():
        predicted = np.array(classes)[np.argmax(x[labelled][~train] @ weight.T + bias, axis=1)]
        summary.held_out = score(y[~train].tolist(), predicted.tolist())
        summary.held_out_crops = int((~train).sum())
    unseen = sorted(set(y[~train]) - set(classes))
    if unseen:
        logger.warning("held-out classes with no training crop (always wrong): %s", ", ".join(unseen))
    save_headed_model(backbone, output, weight, bias, classes)
    return summary


def _fit(
    x: np.ndarray, y: np.ndarray, classes: list[str], *, c: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit the standardised, class-balanced logistic regression; return (W, b) on raw features and train accuracy."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(scaler.transform(x), y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning("the logistic regression did not converge in %d iterations; try --max-iter", max_iter)
    order = [list(model.classes_).index(name) for name in classes]
    coef = model.coef_ if len(classes) > 2 else np.vstack([-model.coef_[0] / 2, model.coef_[0] / 2])
    intercept = model.intercept_ if len(classes) > 2 else np.array([-model.intercept_[0] / 2, model.intercept_[0] / 2])
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    weight = (coef[order] / scale).astype(np.float32)
    bias = (intercept[order] - (coef[order] / scale) @ scaler.mean_).astype(np.float32)
    accuracy = float(np.mean(np.array(classes)[np.argmax(x @ weight.T + bias, axis=1)] == y))
    return weight, bias, accuracy


def save_headed_model(
    backbone: str | Path,
    output: Path,
    weight: np.ndarray,
    bias: np.ndarray,
    classes: Sequence[str],
) -> None:
    """Put the head on BACKBONE in place of its last linear layer and save it as TorchScript with its names.

    A checkpoint is traced at its native input size (224 when not recognised), as ``classify`` runs it.

    Raises:
        ModelError: BACKBONE is a SpeciesNet release, or its last layer does not take ``weight``'s width.
    """
    import torch

    from megaclassifier.constants import DEFAULT_IMAGE_SIZE, EFFICIENTNET_NATIVE_SIZE
    from megaclassifier.engines.torch_engine import run_probe
    from megaclassifier.models.loading import SPECIESNET, TORCHSCRIPT, load_model
    from megaclassifier.models.registry import resolve_model

    path = resolve_model(backbone, role="checkpoint")
    loaded = load_model(path)
    if loaded.kind == SPECIESNET:
        raise ModelError(f"{path}: train-head needs an EfficientNet checkpoint or a TorchScript model as --backbone")
    size = EFFICIENTNET_NATIVE_SIZE.get(loaded.arch or "", DEFAULT_IMAGE_SIZE)
    module = loaded.module
    _replace_head(module, torch.from_numpy(weight), torch.from_numpy(bias), path)
    logits = run_probe(module, path, size)
    if logits.shape[1] != len(classes):
        raise ModelError(f"{path}: the model's output did not become the head's {len(classes)} classes")
    if loaded.kind != TORCHSCRIPT:
        with torch.no_grad():
            module = torch.jit.trace(module, torch.zeros(1, 3, size, size), check_trace=False)
    info = {
        "class_names": list(classes),
        "feature_size": int(weight.shape[1]),
        "backbone": path.name,
        "image_size": size,
    }
    with atomic_path(output) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.save is deprecated" (torch >= 2.10)
        torch.jit.save(module, str(tmp), _extra_files={EMBEDDED_INFO: json.dumps(info)})


def _replace_head(module: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor, path: Path) -> None:
    import torch

    from megaclassifier.engines.torch_engine import _find_head

    head: Any = getattr(module, "_fc", None)
    if head is None:
        outputs = _output_width(module, path)
        head = _find_head(module, outputs)
    if head is None or getattr(head, "weight", None) is None:
        raise ModelError(f"{path}: no final linear layer found to put the head in place of")
    if int(head.weight.shape[1]) != int(weight.shape[1]):
        raise ModelError(
            f"{path}: its last layer takes {int(head.weight.shape[1])} features, FEATURES have {int(weight.shape[1])}; "
            "is this the model the features came from?"
        )
    wrap: Any = torch.nn.Parameter if isinstance(head, torch.nn.Linear) else (lambda t: t)
    head.weight = wrap(weight.clone())
    head.bias = wrap(bias.clone())
    if isinstance(head, torch.nn.Linear):
        head.out_features = int(weight.shape[0])


def _output_width(module: torch.nn.Module, path: Path) -> int:
    from megaclassifier.engines.torch_engine import run_probe

    try:
        return int(run_probe(module, path, 224).shape[1])
    except MegaClassifierError:
        return -1
