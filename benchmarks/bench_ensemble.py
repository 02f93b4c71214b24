"""SpeciesNet's ensemble per box (``run --ensemble speciesnet``'s merged step): its cost per box.

    .venv/bin/python benchmarks/bench_ensemble.py [--boxes 1000000] [--country USA]

Builds BOXES classified detections (random top-5 lists over a taxonomy shaped as a release's:
species in genera in families in orders in two classes, plus blank, human and vehicle; random
categories and confs; a geofence on a tenth of the species) and times
:func:`~megaclassifier.postprocess.ensemble.ensemble_results` on them, the whole step: the rules,
the roll-ups, the lists it writes. Prints microseconds per box and boxes per second, to set
against the classifier's crops per second (``bench_speciesnet.py``).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from megaclassifier.models.speciesnet import ANIMAL_LABEL, BLANK_LABEL, HUMAN_LABEL, VEHICLE_LABEL
from megaclassifier.postprocess.ensemble import SPECIESNET, EnsembleRules, ensemble_results


def taxonomy(species: int = 2000) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """Class labels, the taxonomy map and a geofence of a made-up release."""
    labels, taxa, fence = [], {}, {}
    for i in range(species):
        cls, order, family, genus = f"class{i % 2}", f"order{i % 20}", f"family{i % 100}", f"genus{i % 500}"
        label = f"id{i};{cls};{order};{family};{genus};sp{i};species {i}"
        labels.append(label)
        for keep, name in ((4, "genus"), (3, "family"), (2, "order"), (1, "class")):
            tokens = [cls, order, family, genus][:keep] + [""] * (5 - keep)
            taxa.setdefault(";".join(tokens), f"up-{keep}-{i};{';'.join(tokens)};{name} of {i}")
        if i % 10 == 0:
            fence[f"{cls};{order};{family};{genus};sp{i}"] = {"allow": {"CAN": []}}
    labels += [BLANK_LABEL, HUMAN_LABEL, VEHICLE_LABEL]
    taxa.update({";".join(label.split(";")[1:6]): label for label in labels[:-3]})
    taxa.update({";;;;": ANIMAL_LABEL, ";".join(HUMAN_LABEL.split(";")[1:6]): HUMAN_LABEL})
    return labels, taxa, fence


def results(boxes: int, classes: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    images = []
    for start in range(0, boxes, 4):
        dets = []
        for _ in range(min(4, boxes - start)):
            scores = sorted((rng.random() ** 3 for _ in range(5)), reverse=True)
            total = sum(scores) or 1.0
            ids = rng.sample(range(classes), 5)
            top = [[str(c), round(s / total, 4)] for c, s in zip(ids, scores, strict=True)]
            dets.append({"category": rng.choice("1112"), "conf": round(rng.random(), 3), "classifications": top})
        images.append({"file": f"{start}.jpg", "detections": dets})
    return {"detection_categories": {"1": "animal", "2": "person", "3": "vehicle"}, "images": images}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=1_000_000)
    parser.add_argument("--country", default="USA")
    args = parser.parse_args()
    labels, taxa, fence = taxonomy()
    data = results(args.boxes, len(labels))
    rules = EnsembleRules(taxa, fence, args.country or None)
    start = time.perf_counter()
    summary = ensemble_results(data, labels, rules, ensemble=SPECIESNET, threshold=0.1, max_classifications=None)
    seconds = time.perf_counter() - start
    print(f"{summary.boxes} boxes in {seconds:.2f} s: {1e6 * seconds / summary.boxes:.1f} us/box, "
          f"{summary.boxes / seconds:,.0f} boxes/s ({summary.changed} differ from the top class)")  # fmt: skip
    print("sources:", dict(summary.sources or {}))


if __name__ == "__main__":
    main()
