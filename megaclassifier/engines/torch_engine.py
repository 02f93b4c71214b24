"""The PyTorch engine: CPU or CUDA, fp32 or autocast fp16/bf16.

The model runs in channels-last memory format (faster with cuDNN and with
oneDNN on the CPU), under ``torch.inference_mode``. On a CUDA device,
``cudnn.benchmark`` is on, TF32 convolutions are off in fp32 (so fp32 on the
GPU agrees with the CPU; fp16 and bf16 are the fast settings), and batches are
staged in two pinned host buffers used in turn and copied with
``non_blocking=True``, so :meth:`TorchEngine.submit` returns while the GPU
works and the next batch is staged meanwhile (a buffer is reused only once its
upload is done). uint8 pixel batches are uploaded as they are (a quarter of
the bytes) and normalised on the device with the same float32 arithmetic as
:func:`~megaclassifier.preprocess.normalize`.
On the CPU, torch uses one thread per physical core, and bf16 runs through
CPU autocast.

Features (:meth:`TorchEngine.features`) are the EfficientNet's pooled final
features, the input of its last linear layer (1536 values for B3), as the
reference README computes them: ``model._avg_pooling(model.extract_features(x)).flatten(1)``.
For TorchScript models, a second copy of the model gets an identity matrix
as its last linear layer; this is checked to give back the model's logits
(``W f + b``) before it is used.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from megaclassifier.constants import IMAGENET_MEAN, IMAGENET_STD
from megaclassifier.engines.base import Engine, Pending, is_pixel_batch
from megaclassifier.errors import ModelError, first_line
from megaclassifier.hardware import physical_cpu_count
from megaclassifier.models.loading import CHECKPOINT, SPECIESNET, LoadedModel, load_model
from megaclassifier.preprocess import REFERENCE, Preprocessing, input_shape

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Names of the final linear layer in efficientnet-pytorch, torchvision ResNet and timm models.
_HEAD_NAMES = ("_fc", "fc", "classifier", "head")


def probe_input(image_size: int, batch: int = 2, profile: Preprocessing = REFERENCE) -> torch.Tensor:
    """A fixed pseudo-random input batch in the model's layout, for checks that compare engines."""
    import torch

    generator = torch.Generator().manual_seed(1234)
    x = torch.randn(input_shape(profile, batch, image_size), generator=generator)
    return x.sigmoid() if profile.channels_last else x  # [0, 1] as the model expects


def run_probe(module: torch.nn.Module, path: Path, image_size: int, profile: Preprocessing = REFERENCE) -> np.ndarray:
    """Run ``module`` on :func:`probe_input` and return its logits, checking their shape.

    Raises:
        ModelError: the model fails, or does not return one row of logits per input.
    """
    import torch

    x = probe_input(image_size, profile=profile)
    try:
        with torch.inference_mode():
            out = module(x)
    except Exception as e:  # any failure inside the model
        problem = f"the model fails on a {'x'.join(map(str, x.shape))} input ({first_line(e)})"
        raise ModelError(f"{path}: {problem}") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(f"{path}: expected logits of shape (batch, classes) from the model, got {shape}")
    return out.float().numpy()


def _find_head(module: torch.nn.Module, num_classes: int) -> Any:
    """The final linear layer: by its usual name, else the last ``Linear`` with ``num_classes`` outputs."""
    import torch

    for name in _HEAD_NAMES:
        head = getattr(module, name, None)
        weight = getattr(head, "weight", None)
        if weight is not None and weight.ndim == 2 and weight.shape[0] == num_classes:
            return head
    linears = [m for m in module.modules() if isinstance(m, torch.nn.Linear) and m.out_features == num_classes]
    return linears[-1] if linears else None


class _Slot:
    """A host staging buffer and the event that marks its last upload done."""

    __slots__ = ("buffer", "uploaded")

    def __init__(self) -> None:
        self.buffer: torch.Tensor | None = None
        self.uploaded: Any = None


class TorchEngine(Engine):
    """Runs a loaded model with PyTorch."""

    backend = "torch"

    def __init__(self, loaded: LoadedModel, *, device: str, precision: str, image_size: int, num_classes: int) -> None:
        import torch

        self.device = device
        self.precision = precision
        self.image_size = image_size
        self.num_classes = num_classes
        self.arch = loaded.arch
        self.model_path = loaded.path
        self.preprocessing = loaded.preprocessing
        self._loaded = loaded
        self._torch_device = torch.device(device)
        self._cuda = self._torch_device.type == "cuda"
        self._stage = self._cuda  # staged uploads (tests run that path on the CPU, unpinned)
        self._pin = self._cuda
        self._slots = (_Slot(), _Slot())
        self._next_slot = 0
        # normalisation constants as device tensors: a CPU scalar divisor would become a multiplication
        # by its reciprocal on CUDA, one bit away from numpy's division
        self._scale = torch.full((1, 1, 1, 1), 255.0, device=self._torch_device)
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=self._torch_device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=self._torch_device).view(1, 3, 1, 1)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
        self._autocast_dtype = dtype
        if self._cuda:
            torch.backends.cudnn.benchmark = True
            # fp32 means fp32: cuDNN's default TF32 convolutions keep 10 bits of mantissa, as fp16 does
            torch.backends.cudnn.allow_tf32 = dtype is not None
        else:
            torch.set_num_threads(physical_cpu_count())
        self._model = self._place(loaded.module)
        self._feature_model: torch.nn.Module | None = None

    def _place(self, module: torch.nn.Module) -> torch.nn.Module:
        import torch

        # channels-last suits cuDNN and oneDNN alike (EfficientNet-B3 runs ~1.6x faster on the CPU with it)
        module = module.to(self._torch_device).to(memory_format=torch.channels_last)
        return module.eval()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self._torch_device.type, dtype=self._autocast_dtype)

    def _to_device(self, batch: np.ndarray) -> torch.Tensor:
        """The batch on the device: normalised float32 (N, 3, S, S), channels-last."""
        import torch

        if isinstance(batch, torch.Tensor):  # run's GPU decoder: uint8 (N, S, S, 3) already on the device
            x, pixels = batch.to(self._torch_device), batch.dtype == torch.uint8
        else:
            pixels = is_pixel_batch(batch, self.image_size, self.preprocessing)
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.uint8 if pixels else np.float32))
            if self._stage:
                x = self._upload(x)
        if self.preprocessing.channels_last:  # the model takes NHWC in [0, 1] (SpeciesNet)
            return x.float().div_(self._scale) if pixels else x
        if not pixels:
            return x.contiguous(memory_format=torch.channels_last)
        # (N, S, S, 3) viewed as (N, 3, S, S) is channels-last already; then ToTensor + Normalize
        x = x.permute(0, 3, 1, 2).float()
        return x.div_(self._scale).sub_(self._mean).div_(self._std)

    def _upload(self, x: torch.Tensor) -> torch.Tensor:
        """Copy ``x`` into the next staging buffer and start its asynchronous upload."""
        import torch

        slot = self._slots[self._next_slot]
        self._next_slot ^= 1
        if slot.uploaded is not None:
            slot.uploaded.synchronize()  # its previous upload is done: the buffer may be overwritten
        n = x.shape[0]
        buffer = slot.buffer
        if buffer is None or buffer.dtype != x.dtype or buffer.shape[1:] != x.shape[1:] or buffer.shape[0] < n:
            buffer = slot.buffer = torch.empty(x.shape, dtype=x.dtype, pin_memory=self._pin)
        staged = buffer[:n]
        staged.copy_(x)
        on_device = staged.to(self._torch_device, non_blocking=True)
        if self._cuda:
            slot.uploaded = torch.cuda.Event()
            slot.uploaded.record()
        elif on_device.data_ptr() == staged.data_ptr():
            on_device = on_device.clone()  # the CPU "upload" is the buffer itself, which the next batch overwrites
        return on_device

    def logits(self, batch: np.ndarray) -> torch.Tensor:
        """The model's raw output on the device, float32 (N, C)."""
        import torch

        x = self._to_device(batch)
        with torch.inference_mode(), self._autocast():
            out = self._model(x)
        if not isinstance(out, torch.Tensor) or out.shape != (x.shape[0], self.num_classes):
            raise ModelError(f"{self.model_path}: unexpected model output for a batch of {x.shape[0]}")
        return out.float()

    def submit(self, batch: np.ndarray) -> Pending:
        """Queue the batch on the device; on a GPU this returns before the model has run."""
        import torch

        if len(batch) == 0:
            return Pending.ready(np.zeros((0, self.num_classes), np.float32))
        with torch.inference_mode():
            probs = torch.softmax(self.logits(batch), dim=1)
        return Pending(lambda: probs.cpu().numpy())

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities, float32 (N, C)."""
        return self.submit(batch).result()

    @property
    def feature_size(self) -> int | None:
        head = _find_head(self._loaded.module, self.num_classes)
        return int(head.weight.shape[1]) if head is not None else None

    def features(self, batch: np.ndarray) -> np.ndarray:
        """Pooled final features, float32 (N, F): the input of the last linear layer."""
        import torch

        x = self._to_device(batch)
        with torch.inference_mode(), self._autocast():
            if self._loaded.kind == CHECKPOINT:
                model: Any = self._model
                out = model._avg_pooling(model.extract_features(x)).flatten(start_dim=1)
            else:
                features_model: Any = self._features_model()
                out = features_model(x)
        return out.float().cpu().numpy()

    def _features_model(self) -> torch.nn.Module:
        """A copy of the TorchScript model whose last linear layer is the identity (checked)."""
        import torch

        if self._feature_model is not None:
            return self._feature_model
        path = self.model_path
        copy = load_model(path.parent if self._loaded.kind == SPECIESNET else path).module
        head = _find_head(copy, self.num_classes)
        if head is None:
            raise ModelError(
                f"{path}: no final linear layer found in this TorchScript model; "
                "features need the checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt)"
            )
        weight = head.weight.detach().clone()
        bias = head.bias.detach().clone() if getattr(head, "bias", None) is not None else None
        width = int(weight.shape[1])
        logits = torch.from_numpy(run_probe(copy, path, self.image_size, self.preprocessing))
        wrap: Any = torch.nn.Parameter if isinstance(head, torch.nn.Linear) else (lambda t: t)
        head.weight = wrap(torch.eye(width))
        if bias is not None:
            head.bias = wrap(torch.zeros(width))
        with torch.inference_mode():
            feats = copy(probe_input(self.image_size, profile=self.preprocessing))
        ok = isinstance(feats, torch.Tensor) and feats.shape == (2, width)
        if ok:
            rebuilt = feats.float() @ weight.T + (bias if bias is not None else 0)
            ok = bool(torch.allclose(rebuilt, logits, rtol=1e-3, atol=1e-3))
        if not ok:
            raise ModelError(
                f"{path}: cannot take the features of this TorchScript model (its last linear layer is not "
                "its output); features need the checkpoint (as megaclassifier_v0.1_efficientnet-b3.pt)"
            )
        self._feature_model = self._place(copy)
        return self._feature_model

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]
        self._feature_model = None
        self._slots = (_Slot(), _Slot())
