"""Classifying crops: discovery, preprocessing, batched loading, and the ``classify`` and ``features`` commands.

* :mod:`.discovery` finds the crops (MegaDetector JSON order, or a sorted walk).
* :mod:`.preprocess` is the reference's resize, centre crop and normalisation.
* :mod:`.loader` reads crops in batches with worker processes.
* :mod:`.classify` writes the probability CSV; :mod:`.features` the embeddings.

The models themselves are run by :mod:`megaclassifier.engines`.
"""

from megaclassifier.classify.classify import ClassifySummary, CropFailure, classify_crops
from megaclassifier.classify.discovery import CropList, discover_crops
from megaclassifier.classify.features import FeatureSummary, extract_features
from megaclassifier.classify.loader import default_num_workers
from megaclassifier.constants import DEFAULT_BATCH_SIZE
from megaclassifier.preprocess import preprocess_image

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ClassifySummary",
    "CropFailure",
    "CropList",
    "FeatureSummary",
    "classify_crops",
    "default_num_workers",
    "discover_crops",
    "extract_features",
    "preprocess_image",
]
