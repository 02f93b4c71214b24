"""SpeciesNet's own ensemble as the oracle: 5.0.6 (installed) and 5.0.5 (``--no-deps`` into the venv).

Both are loaded without the package ``__init__`` (which imports the detector's ``yolov5``), as
SpeciesNet's tests stub heavy dependencies. 5.0.5 lives in ``<venv>/speciesnet-5.0.5`` (the
Makefile installs it there); its modules import ``speciesnet.*``, so they are loaded with a
stub package of that name standing for 5.0.5 and then kept under the alias ``speciesnet_505``.
The tests that need one skip, naming it, where it is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

LEGACY_DIR = Path(sys.prefix) / "speciesnet-5.0.5" / "speciesnet"
LEGACY_ALIAS = "speciesnet_505"


def _stub(name: str, folder: str) -> types.ModuleType:
    package = types.ModuleType(name)
    package.__path__ = [folder]
    return package


def speciesnet_506(module: str) -> Any:
    """``speciesnet.<module>`` of the installed SpeciesNet (5.0.6)."""
    if "speciesnet" not in sys.modules:
        spec = importlib.util.find_spec("speciesnet")
        if spec is None or spec.submodule_search_locations is None:
            pytest.skip("the speciesnet package (the oracle) is not installed: pip install --no-deps speciesnet")
        package = _stub("speciesnet", list(spec.submodule_search_locations)[0])
        package.__spec__ = spec
        sys.modules["speciesnet"] = package
    try:
        return importlib.import_module(f"speciesnet.{module}")
    except ImportError as e:
        pytest.skip(f"speciesnet.{module} cannot be imported ({e}); install the test extra")


def speciesnet_505(module: str) -> Any:
    """``speciesnet.<module>`` of SpeciesNet 5.0.5, under :data:`LEGACY_ALIAS`."""
    name = f"{LEGACY_ALIAS}.{module}"
    if name in sys.modules:
        return sys.modules[name]
    if not (LEGACY_DIR / "ensemble_prediction_combiner.py").is_file():
        pytest.skip(f"SpeciesNet 5.0.5 (the legacy oracle) is not in {LEGACY_DIR.parent}: make installs it")
    saved = {k: v for k, v in sys.modules.items() if k == "speciesnet" or k.startswith("speciesnet.")}
    for key in saved:
        del sys.modules[key]
    sys.modules["speciesnet"] = _stub("speciesnet", str(LEGACY_DIR))
    try:
        loaded = importlib.import_module(f"speciesnet.{module}")
        for key in [k for k in sys.modules if k.startswith("speciesnet.")]:
            sys.modules[f"{LEGACY_ALIAS}.{key.split('.', 1)[1]}"] = sys.modules[key]
    except ImportError as e:
        pytest.skip(f"SpeciesNet 5.0.5's {module} cannot be imported ({e})")
    finally:
        for key in [k for k in sys.modules if k == "speciesnet" or k.startswith("speciesnet.")]:
            del sys.modules[key]
        sys.modules.update(saved)
    return loaded


def oracle_506(labels: list[str], scores: list[float], detection: str, conf: float, **where: Any) -> dict[str, Any]:
    """5.0.6's ``combine_predictions`` on one box: ``{class, score, source}``."""
    combiner = speciesnet_506("ensemble_prediction_combiner")
    geofence_utils = speciesnet_506("geofence_utils")
    return combiner.combine_predictions(
        classifications_list=[{"classes": labels, "scores": scores}],
        detections=[{"label": detection, "conf": conf}],
        enable_geofence=True,
        geofence_fn=geofence_utils.geofence_animal_classification,
        roll_up_fn=geofence_utils.roll_up_labels_to_first_matching_level,
        **where,
    )[0]


def oracle_505(labels: list[str], scores: list[float], detection: str, conf: float, **where: Any) -> dict[str, Any]:
    """5.0.5's ``combine_predictions_for_single_item`` on an image whose top box is this one."""
    combiner = speciesnet_505("ensemble_prediction_combiner")
    geofence_utils = speciesnet_505("geofence_utils")
    label, score, source = combiner.combine_predictions_for_single_item(
        classifications={"classes": labels, "scores": scores},
        detections=[{"label": detection, "conf": conf}],
        enable_geofence=True,
        geofence_fn=geofence_utils.geofence_animal_classification,
        roll_up_fn=geofence_utils.roll_up_labels_to_first_matching_level,
        **where,
    )
    return {"class": getattr(label, "value", label), "score": score, "source": source}


def oracle_taxonomy(path: Path) -> dict[str, str]:
    """5.0.6's own taxonomy map of a release's taxonomy file."""
    return speciesnet_506("ensemble")._load_taxonomy_from_file(str(path))
