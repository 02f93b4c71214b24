"""Engines: load a classifier once, then turn preprocessed batches into probabilities.

* :func:`open_engine` resolves a model name or path, loads a TorchScript model
  or an EfficientNet checkpoint, picks a backend and a device.
* :mod:`.torch_engine` runs it with PyTorch (CPU, or CUDA with fp16/bf16
  autocast); :mod:`.onnx_engine` with ONNX Runtime from a cached ONNX export.
* :mod:`.models` knows the published models; :mod:`.download` fetches them.

Nothing here imports torch or onnxruntime until an engine is opened.
"""

from megaclassifier.engines.api import choose_backend, open_engine
from megaclassifier.engines.base import Engine
from megaclassifier.engines.devices import (
    BACKENDS,
    PRECISIONS,
    available_cpus,
    parse_device,
    physical_cpu_count,
    resolve_device,
)
from megaclassifier.engines.loading import ARCHITECTURES
from megaclassifier.engines.models import KNOWN_MODELS, known_model, resolve_model, user_cache_dir

__all__ = [
    "ARCHITECTURES",
    "BACKENDS",
    "KNOWN_MODELS",
    "PRECISIONS",
    "Engine",
    "available_cpus",
    "choose_backend",
    "known_model",
    "open_engine",
    "parse_device",
    "physical_cpu_count",
    "resolve_device",
    "resolve_model",
    "user_cache_dir",
]
