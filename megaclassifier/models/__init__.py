"""Models: the registry of published classifiers, their download, and loading model files.

* :mod:`.registry` knows the published models (files, image size), where they
  are downloaded to, and turns a model name or path into the file to load;
  :func:`~.resolved.categories_for` finds a model's class names.
* :mod:`.download` fetches a published model's files (``megaclassifier download``).
* :mod:`.loading` loads a TorchScript file or an EfficientNet checkpoint.

Nothing here runs a model: that is :mod:`megaclassifier.engines`. Nothing here
imports torch until a model file is loaded.
"""

from megaclassifier.models.loading import ARCHITECTURES, LoadedModel, load_model, model_kind
from megaclassifier.models.registry import (
    KNOWN_MODELS,
    KnownModel,
    default_model_dir,
    known_model,
    resolve_model,
    user_cache_dir,
)
from megaclassifier.models.resolved import categories_for

__all__ = [
    "ARCHITECTURES",
    "KNOWN_MODELS",
    "KnownModel",
    "LoadedModel",
    "categories_for",
    "default_model_dir",
    "known_model",
    "load_model",
    "model_kind",
    "resolve_model",
    "user_cache_dir",
]
