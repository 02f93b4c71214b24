"""A classified results file over the bundled demo images, for the report and export tests.

The demo's MegaDetector results with ``classifications`` written on its animal
boxes at conf >= 0.15, as ``merge`` would: known classes and scores, so every
count, mean and flag the tests check is known here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "demo" / "data"
CLASSES = {"0": "elephant", "1": "cattle", "2": "bear", "3": "dog", "4": "ocelot"}
ELEPHANT = [[["0", 0.95]], [["0", 0.9]], [["0", 0.85]], [["0", 0.8]], [["0", 0.4]], [["0", 0.55], ["1", 0.5]]]
#: file -> classifications of its detections 0, 1, ... (the boxes at conf >= 0.15)
CLASSIFICATIONS = {
    "african_elephants.jpg": ELEPHANT,
    "african_elephants_with_exif_orientation.jpg": ELEPHANT,
    "domestic_cattle.jpg": [[["1", 0.7]], [["1", 0.6], ["0", 0.1]], [["1", 0.3], ["0", 0.1]]],
    "american_black_bear.jpg": [[["2", 0.99]]],
    "domestic_dog.jpg": [[["3", 0.88]]],
    "ocelot.jpg": [[["4", 0.77]]],
}
#: species -> (detections, images, mean, median, flagged) at threshold 0.15 with the default flags
EXPECTED = {
    "elephant": (12, 2, 0.742, 0.825, 4),
    "cattle": (3, 1, 0.533, 0.600, 1),
    "bear": (1, 1, 0.990, 0.990, 0),
    "dog": (1, 1, 0.880, 0.880, 0),
    "ocelot": (1, 1, 0.770, 0.770, 0),
    "person": (1, 1, 0.933, 0.933, 0),
}


def demo_detections() -> dict:
    """The demo's MegaDetector results."""
    return json.loads((DEMO_DATA / "detections.json").read_text())


def write_classified_demo(path: Path) -> Path:
    """Write the classified demo results at ``path``."""
    data = copy.deepcopy(demo_detections())
    for image in data["images"]:
        for det, classes in zip(image["detections"], CLASSIFICATIONS.get(image["file"], []), strict=False):
            det["classifications"] = classes
    data["info"].update({"classifier": "synthetic_v1", "classification_completion_time": "2026-11-25 14:03:27"})
    data["classification_categories"] = CLASSES
    path.write_text(json.dumps(data, indent=1))
    return path
