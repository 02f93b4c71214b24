"""Synthetic classified results for the smoothing tests: a small taxonomy and seeded random images."""

from __future__ import annotations

import copy
import random
from typing import Any

# (name, "class;order;family;genus;species")
CLASSES = [
    ("white-tailed deer", "mammalia;cetartiodactyla;cervidae;odocoileus;virginianus"),
    ("mule deer", "mammalia;cetartiodactyla;cervidae;odocoileus;hemionus"),
    ("elk", "mammalia;cetartiodactyla;cervidae;cervus;canadensis"),
    ("deer family", "mammalia;cetartiodactyla;cervidae;;"),
    ("coyote", "mammalia;carnivora;canidae;canis;latrans"),
    ("gray wolf", "mammalia;carnivora;canidae;canis;lupus"),
    ("canis", "mammalia;carnivora;canidae;canis;"),
    ("carnivore", "mammalia;carnivora;;;"),
    ("cattle", "mammalia;cetartiodactyla;bovidae;bos;taurus"),
    ("other", ";;;;"),
    ("blank", ";;;;"),
    ("animal", ";;;;"),
    ("mammal", "mammalia;;;;"),
    ("wild turkey", "aves;galliformes;phasianidae;meleagris;gallopavo"),
]
ID = {name: str(i) for i, (name, _) in enumerate(CLASSES)}


def descriptions() -> dict[str, str]:
    """MegaDetector-style seven-token descriptions (made-up guids)."""
    return {str(i): f"guid-{i};{taxa};{name}" for i, (name, taxa) in enumerate(CLASSES)}


def results(images: list[dict[str, Any]], *, taxonomy: bool = True) -> dict[str, Any]:
    """A classified results file around ``images``."""
    data: dict[str, Any] = {
        "info": {
            "format_version": "1.4",
            "detector": "md_v5a.0.0.pt",
            "classifier": "synthetic",
            "classifier_metadata": {"typical_classification_threshold": 0.75},
        },
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "classification_categories": {str(i): name for i, (name, _) in enumerate(CLASSES)},
        "images": images,
    }
    if taxonomy:
        data["classification_category_descriptions"] = descriptions()
    return data


def det(*classes: tuple[str, float], conf: float = 0.9, category: str = "1") -> dict[str, Any]:
    """A detection with ``classifications`` given as (class name, score) pairs."""
    out: dict[str, Any] = {"category": category, "conf": conf, "bbox": [0.1, 0.1, 0.2, 0.2]}
    if classes:
        out["classifications"] = [[ID[name], score] for name, score in classes]
    return out


def image(file: str, *detections: dict[str, Any]) -> dict[str, Any]:
    return {"file": file, "detections": list(detections)}


def random_results(seed: int, n_images: int = 150, *, taxonomy: bool = True) -> dict[str, Any]:
    """Images whose detections mostly agree on a favourite class, with scores, confs and persons mixed in."""
    rng = random.Random(seed)
    k = len(CLASSES)
    images = []
    for i in range(n_images):
        favourite = rng.randrange(k)
        detections = []
        for _ in range(rng.randrange(0, 9)):
            d: dict[str, Any] = {"category": rng.choice("1112"), "conf": round(rng.random(), 3),
                                 "bbox": [0.1, 0.1, 0.2, 0.2]}  # fmt: skip
            if rng.random() < 0.9:
                classes = [favourite if rng.random() < 0.6 else rng.randrange(k)]
                while len(classes) < rng.randrange(1, 4):
                    c = rng.randrange(k)
                    if c not in classes:
                        classes.append(c)
                scores = sorted((round(rng.random(), 4) for _ in classes), reverse=True)
                d["classifications"] = [[str(c), s] for c, s in zip(classes, scores, strict=True)]
            detections.append(d)
        images.append({"file": f"cam{i % 7}/img{i:05d}.jpg", "detections": detections})
    images.append({"file": "cam0/failed.jpg", "failure": "image access failure", "detections": None})
    return results(images, taxonomy=taxonomy)


def cct_sequences(data: dict[str, Any], seed: int, size: int = 5) -> dict[str, Any]:
    """A COCO Camera Traps file putting every ``size`` consecutive images in a sequence, listed shuffled."""
    rng = random.Random(seed)
    listed = [{"id": str(i), "file_name": im["file"], "seq_id": f"s{i // size}"} for i, im in enumerate(data["images"])]
    rng.shuffle(listed)
    return {"images": listed}


def tops(data: dict[str, Any]) -> list[list[tuple[str, float] | None]]:
    """Each detection's top (class, score), None without classifications."""
    return [
        [(d["classifications"][0][0], d["classifications"][0][1]) if d.get("classifications") else None
         for d in (im.get("detections") or [])]
        for im in data["images"]
    ]  # fmt: skip


def copy_of(data: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(data)
