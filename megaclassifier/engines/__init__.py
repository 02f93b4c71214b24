"""Engines: run a loaded classifier, turning preprocessed batches into probabilities.

* :func:`open_engine` resolves a model name or path (:mod:`megaclassifier.models`),
  picks a backend and a device, and returns a ready engine.
* :mod:`.torch_engine` runs it with PyTorch (CPU, or CUDA with fp16/bf16
  autocast); :mod:`.onnx_engine` with ONNX Runtime from a cached ONNX export;
  :mod:`.openvino_engine` with OpenVINO (optional extra) from the same export.

Engines only run models: the registry of published models, their download and
their loading live in :mod:`megaclassifier.models`; devices and CPU counts in
:mod:`megaclassifier.hardware`. Nothing here imports torch, onnxruntime or openvino until
an engine is opened.
"""

from megaclassifier.engines.api import choose_backend, open_engine
from megaclassifier.engines.base import Engine, Pending, pipelined

__all__ = ["Engine", "Pending", "choose_backend", "open_engine", "pipelined"]
