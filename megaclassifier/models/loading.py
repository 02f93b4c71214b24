"""Loading a classifier: TorchScript file or efficientnet-pytorch checkpoint, told apart automatically.

Two kinds of model file are accepted:

* **TorchScript**, as the reference's ``*_compiled.pt`` (``torch.jit.save``
  of a traced model): a zip archive with ``code/`` and ``constants.pkl``.
* **Checkpoint**, as ``megaclassifier_v0.1_efficientnet-b3.pt``: a
  ``torch.save`` of ``{"model": state_dict, ...}`` (or of a bare state dict)
  of an efficientnet-pytorch ``EfficientNet``. A ``module.`` prefix
  (DataParallel) is dropped. It is read with ``weights_only=True``: no
  pickled code runs.

The EfficientNet variant is inferred from the weights (number of blocks and
width of the stem and head), for checkpoints and TorchScript alike, so the
native input size is known (B3: 300 px). Files saved on a GPU load on the CPU.

A third kind is a **SpeciesNet release folder** (:mod:`.speciesnet`): its
``info.json`` names a whole pickled module, which is unpickled (code from the
file runs, so only trusted releases belong there); the folder also sets the
preprocessing profile.
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from megaclassifier.constants import EFFICIENTNET_NATIVE_SIZE
from megaclassifier.errors import ModelError, first_line
from megaclassifier.preprocess import REFERENCE, Preprocessing

if TYPE_CHECKING:
    import torch

    from megaclassifier.models.speciesnet import SpeciesNetRelease

logger = logging.getLogger(__name__)

TORCHSCRIPT = "torchscript"
CHECKPOINT = "checkpoint"
SPECIESNET = "speciesnet"

#: Architectures a checkpoint can be built as (``--arch``).
ARCHITECTURES: tuple[str, ...] = tuple(EFFICIENTNET_NATIVE_SIZE)


@dataclass
class LoadedModel:
    """A model in eval mode on the CPU, with what is known about it.

    Attributes:
        module: the ``torch.nn.Module`` (a ``ScriptModule`` for TorchScript).
        path: the file it came from.
        kind: ``torchscript``, ``checkpoint`` or ``speciesnet``.
        arch: the EfficientNet variant (``efficientnet-b3``), or None when not recognised.
        preprocessing: the input the model wants (:data:`~megaclassifier.preprocess.REFERENCE` but
            for SpeciesNet releases).
    """

    module: torch.nn.Module
    path: Path
    kind: str
    arch: str | None
    preprocessing: Preprocessing = REFERENCE


def model_kind(path: str | Path) -> str:
    """Tell a TorchScript file from a checkpoint by its contents.

    Raises:
        ModelError: the file is missing or is neither.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder; expected a TorchScript model or a checkpoint file") from None
    except zipfile.BadZipFile:
        try:
            with open(path, "rb") as f:
                head = f.read(2)
        except OSError as e:
            raise ModelError(f"{path}: {e.strerror or e}") from None
        if head[:1] == b"\x80":  # a pickle: torch.save's legacy format
            return CHECKPOINT
        raise ModelError(
            f"{path}: not a PyTorch model file (neither TorchScript nor a torch.save checkpoint)"
        ) from None
    except OSError as e:
        raise ModelError(f"{path}: {e.strerror or e}") from None
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return TORCHSCRIPT
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return CHECKPOINT
    raise ModelError(f"{path}: a zip archive, but neither a TorchScript model nor a torch.save checkpoint")


@lru_cache(maxsize=1)
def _arch_signatures() -> dict[tuple[int, int, int], str]:
    """(blocks, stem channels, head channels) of each EfficientNet variant, from efficientnet-pytorch."""
    from efficientnet_pytorch.utils import get_model_params, round_filters, round_repeats

    signatures = {}
    for arch in ARCHITECTURES:
        blocks_args, params = get_model_params(arch, {})
        blocks = sum(round_repeats(b.num_repeat, params) for b in blocks_args)
        signatures[(blocks, round_filters(32, params), round_filters(1280, params))] = arch
    return signatures


def infer_arch(state_dict: dict[str, Any]) -> str | None:
    """The EfficientNet variant whose shapes ``state_dict`` has, or None."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
    try:
        stem = int(state_dict["_conv_stem.weight"].shape[0])
        head = int(state_dict["_conv_head.weight"].shape[0])
    except (KeyError, AttributeError, IndexError):
        return None
    blocks = {int(key.split(".")[1]) for key in state_dict if key.startswith("_blocks.")}
    return _arch_signatures().get((len(blocks), stem, head))


def load_model(path: str | Path, *, arch: str | None = None, release: SpeciesNetRelease | None = None) -> LoadedModel:
    """Load a TorchScript model, an EfficientNet checkpoint or a SpeciesNet release on the CPU, in eval mode.

    Args:
        path: the model file (or release folder).
        arch: the EfficientNet variant of a checkpoint; inferred from its weights when None.
        release: the release ``path`` is, already read (:func:`~megaclassifier.models.resolved.resolve`);
            a folder given without it has its ``info.json`` read here.

    Raises:
        ModelError: the file cannot be loaded; the message names it.
    """
    path = Path(path)
    if release is not None or path.is_dir():
        return _load_speciesnet(release or _read_release(path))
    kind = model_kind(path)
    if kind == TORCHSCRIPT:
        module = _load_torchscript(path)
        inferred = infer_arch(dict(module.state_dict()))
        if arch is not None and inferred is not None and arch != inferred:
            raise ModelError(f"{path}: --arch {arch} given, but the weights are those of {inferred}")
        return LoadedModel(module, path, TORCHSCRIPT, arch or inferred)
    module, arch = _load_checkpoint(path, arch)
    return LoadedModel(module, path, CHECKPOINT, arch)


def _read_release(folder: Path) -> SpeciesNetRelease:
    from megaclassifier.models.speciesnet import read_release

    return read_release(folder)


def _load_speciesnet(release: SpeciesNetRelease) -> LoadedModel:
    """A SpeciesNet release: its classifier module (unpickled; see :mod:`.speciesnet`) and profile."""
    from megaclassifier.models.speciesnet import load_classifier

    return LoadedModel(load_classifier(release), release.classifier, SPECIESNET, None, release.preprocessing)


def _load_torchscript(path: Path) -> torch.nn.Module:
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated" (torch >= 2.10)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError and others for damaged archives
        raise ModelError(f"{path}: cannot load as TorchScript ({first_line(e)})") from None
    return module.eval()


def _read_checkpoint(path: Path) -> Any:
    import numpy as np
    import torch

    # numpy scalars (a saved metric, say) are allowed; no other pickled objects are.
    safe: list[Any] = [np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32)), type(np.dtype(np.int64))]
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    safe.append(scalar)
    try:
        with torch.serialization.safe_globals(safe):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError ...
        raise ModelError(f"{path}: cannot load as a checkpoint ({first_line(e)})") from None


def _state_dict_of(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    if isinstance(obj, torch.nn.Module):  # pragma: no cover - weights_only cannot give one
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f'{path}: not a checkpoint of weights (expected {{"model": state_dict}} or a state dict)')
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _load_checkpoint(path: Path, arch: str | None) -> tuple[torch.nn.Module, str]:
    state_dict = _state_dict_of(_read_checkpoint(path), path)
    inferred = infer_arch(state_dict)
    if "_fc.weight" not in state_dict or (inferred is None and arch is None):
        if "fc.weight" in state_dict and "conv1.weight" in state_dict:
            raise ModelError(
                f"{path}: a ResNet checkpoint; only EfficientNet checkpoints can be built here, "
                "use the TorchScript (_compiled.pt) model instead"
            )
        raise ModelError(
            f"{path}: cannot tell which EfficientNet these weights are; give --arch (one of {', '.join(ARCHITECTURES)})"
        )
    if arch is not None and inferred is not None and arch != inferred:
        raise ModelError(f"{path}: --arch {arch} given, but the weights are those of {inferred}")
    arch = arch or inferred
    assert arch is not None
    from efficientnet_pytorch import EfficientNet

    num_classes = int(state_dict["_fc.weight"].shape[0])
    model = EfficientNet.from_name(arch, num_classes=num_classes)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: the weights do not fit {arch} ({first_line(e)})") from None
    # The plain swish traces and exports; the memory-efficient one is a custom autograd function.
    model.set_swish(memory_efficient=False)
    return model.eval(), arch
