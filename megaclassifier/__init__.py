"""megaclassifier: classify the animals MegaDetector finds in camera-trap images.

The pipeline: ``crop`` the boxes of a MegaDetector results file, ``classify``
the crops, optionally ``aggregate`` the classifier's classes into a project's
targets, and ``merge`` the probabilities back into the MegaDetector JSON.
``run`` does all of it in one pass.

The library's public names are listed once, in ``__all__`` below, and imported
only when first used (``import megaclassifier`` stays light: no torch)::

    import megaclassifier as mc
    model = mc.resolve("megaclassifier-v0.1")
    summary = mc.run_pipeline("md.json", model, mc.RunOptions(output_json="out.json", images_dir="photos"))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

#: Each public name and the module that defines it.
_PUBLIC = {
    # crop -> classify -> aggregate -> merge, and run in one pass
    "crop_detections": "megaclassifier.crop",
    "CropSummary": "megaclassifier.crop",
    "classify_crops": "megaclassifier.classify",
    "ClassifySummary": "megaclassifier.classify",
    "extract_features": "megaclassifier.classify",
    "FeatureSummary": "megaclassifier.classify",
    "aggregate_probabilities": "megaclassifier.labels",
    "map_categories": "megaclassifier.labels",
    "csv_to_json": "megaclassifier.labels",
    "merge_classifications": "megaclassifier.merge",
    "merge_rows": "megaclassifier.merge",
    "MergeSummary": "megaclassifier.merge",
    "run_pipeline": "megaclassifier.run",
    "RunOptions": "megaclassifier.run",
    "RunSummary": "megaclassifier.run",
    "run_on_ray": "megaclassifier.cluster.ray_run",
    "combine_shards": "megaclassifier.cluster.combine",
    # post-processing, reports, exports
    "smooth_results": "megaclassifier.postprocess",
    "smooth_file": "megaclassifier.postprocess",
    "SmoothOptions": "megaclassifier.postprocess",
    "rollup_file": "megaclassifier.postprocess",
    "restrict_file": "megaclassifier.postprocess",
    "write_report": "megaclassifier.report",
    "export_results": "megaclassifier.export",
    # models and engines
    "resolve": "megaclassifier.models.resolved",
    "ResolvedModel": "megaclassifier.models.resolved",
    "KNOWN_MODELS": "megaclassifier.models",
    "load_model": "megaclassifier.models",
    "open_engine": "megaclassifier.engines",
    "Engine": "megaclassifier.engines",
    # formats and errors
    "load_detections": "megaclassifier.formats.detections",
    "write_detections": "megaclassifier.formats.detections",
    "MegaClassifierError": "megaclassifier.errors",
    "InputFileError": "megaclassifier.errors",
    "ModelError": "megaclassifier.errors",
    "OutputFileError": "megaclassifier.errors",
    "OutputLockedError": "megaclassifier.errors",
    "NothingWorkedError": "megaclassifier.errors",
}

__all__ = [
    "__version__",
    "ClassifySummary",
    "CropSummary",
    "Engine",
    "FeatureSummary",
    "InputFileError",
    "KNOWN_MODELS",
    "MegaClassifierError",
    "MergeSummary",
    "ModelError",
    "NothingWorkedError",
    "OutputFileError",
    "OutputLockedError",
    "ResolvedModel",
    "RunOptions",
    "RunSummary",
    "SmoothOptions",
    "aggregate_probabilities",
    "classify_crops",
    "combine_shards",
    "crop_detections",
    "csv_to_json",
    "export_results",
    "extract_features",
    "load_detections",
    "load_model",
    "map_categories",
    "merge_classifications",
    "merge_rows",
    "open_engine",
    "resolve",
    "restrict_file",
    "rollup_file",
    "run_on_ray",
    "run_pipeline",
    "smooth_file",
    "smooth_results",
    "write_detections",
    "write_report",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module when the name is first used (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'megaclassifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from megaclassifier.classify import ClassifySummary, FeatureSummary, classify_crops, extract_features
    from megaclassifier.cluster.combine import combine_shards
    from megaclassifier.cluster.ray_run import run_on_ray
    from megaclassifier.crop import CropSummary, crop_detections
    from megaclassifier.engines import Engine, open_engine
    from megaclassifier.errors import (
        InputFileError,
        MegaClassifierError,
        ModelError,
        NothingWorkedError,
        OutputFileError,
        OutputLockedError,
    )
    from megaclassifier.export import export_results
    from megaclassifier.formats.detections import load_detections, write_detections
    from megaclassifier.labels import aggregate_probabilities, csv_to_json, map_categories
    from megaclassifier.merge import MergeSummary, merge_classifications, merge_rows
    from megaclassifier.models import KNOWN_MODELS, load_model
    from megaclassifier.models.resolved import ResolvedModel, resolve
    from megaclassifier.postprocess import SmoothOptions, restrict_file, rollup_file, smooth_file, smooth_results
    from megaclassifier.report import write_report
    from megaclassifier.run import RunOptions, RunSummary, run_pipeline
