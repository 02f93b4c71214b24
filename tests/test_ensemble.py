"""SpeciesNet's ensemble (megaclassifier.postprocess.ensemble) against SpeciesNet itself.

Oracles: 5.0.6's ``combine_predictions`` (one box) and 5.0.5's ``combine_predictions_for_single_item``
(one image, its top box), on random top-5 lists x box label x conf, with scores and confs drawn
at every threshold of the rules, 1e-9 either side, x countries in and out of the fence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from speciesnet_data import BLANK, EXTRA_TAXA, GEOFENCE, HUMAN, LABELS, UNKNOWN, VEHICLE, build_release
from speciesnet_oracle import oracle_505, oracle_506, oracle_taxonomy

from megaclassifier.models.speciesnet import read_release, read_taxonomy_map
from megaclassifier.postprocess.ensemble import (
    SPECIESNET,
    SPECIESNET_LEGACY,
    EnsembleClasses,
    EnsembleRules,
    combine,
    ensemble_results,
    select_boxes,
)

THRESHOLDS = (0.1, 0.2, 0.4, 0.5, 0.65, 0.7, 0.8, 0.99)
EDGES = sorted({round(t + d, 12) for t in THRESHOLDS for d in (-1e-9, 0.0, 1e-9)} | {0.0, 1.0})
#: Classes the top 5 draws from: the stand-in's outputs, a vehicle, rolled-up taxa.
POOL = [*LABELS, VEHICLE, *EXTRA_TAXA]
#: (country, region): in and out of each fence of the stand-in geofence, and no country.
PLACES = [(None, None), ("USA", None), ("USA", "FL"), ("USA", "MT"), ("CAN", None), ("MEX", None), ("GBR", None),
          ("KEN", None)]  # fmt: skip


@pytest.fixture(scope="module")
def taxonomy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    release = read_release(build_release(tmp_path_factory.mktemp("release") / "always_crop"))
    ours = read_taxonomy_map(release.taxonomy)
    assert ours == oracle_taxonomy(release.taxonomy)  # the ensemble's map, built alike
    return ours


score = st.one_of(st.sampled_from(EDGES), st.floats(0.0, 1.0))


@st.composite
def boxes(draw: Any) -> tuple[list[str], list[float], str, float, tuple[str | None, str | None]]:
    labels = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=5, unique=True))
    scores = sorted((draw(score) for _ in labels), reverse=True)
    detection = draw(st.sampled_from(["animal", "human", "vehicle"]))
    return labels, scores, detection, draw(score), draw(st.sampled_from(PLACES))


def _ours(taxonomy: dict[str, str], box: Any) -> dict[str, Any]:
    labels, scores, detection, conf, (country, region) = box
    answer = combine(labels, scores, detection, conf, EnsembleRules(taxonomy, GEOFENCE, country, region))
    return {"class": answer.label, "score": answer.score, "source": answer.source}


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=boxes())
def test_per_box_equals_speciesnet_506(taxonomy: dict[str, str], box: Any) -> None:
    labels, scores, detection, conf, (country, region) = box
    where = {"country": country, "admin1_region": region, "taxonomy_map": taxonomy, "geofence_map": GEOFENCE}
    assert _ours(taxonomy, box) == oracle_506(labels, scores, detection, conf, **where)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=boxes())
def test_per_image_equals_speciesnet_505(taxonomy: dict[str, str], box: Any) -> None:
    labels, scores, detection, conf, (country, region) = box
    where = {"country": country, "admin1_region": region, "taxonomy_map": taxonomy, "geofence_map": GEOFENCE}
    assert _ours(taxonomy, box) == oracle_505(labels, scores, detection, conf, **where)


#: Hand-picked boxes: each rule once, and each strict or non-strict edge from both sides.
RULES = [
    (["0"], [0.5], "human", 0.7 + 1e-9, None, (HUMAN, 0.7 + 1e-9, "detector")),
    (["8"], [0.5 + 1e-9], "human", 0.7, None, (HUMAN, 0.5 + 1e-9, "classifier")),
    (["8"], [0.5], "human", 0.7, None, ("genus", 0.5, "")),  # 0.5 is not > 0.5: no rule until the roll-up
    (["6"], [0.5 + 1e-9], "animal", 0.2 - 1e-9, None, (BLANK, 0.5 + 1e-9, "classifier")),
    (["6"], [0.6], "animal", 0.2, None, (UNKNOWN, 0.6, "classifier")),  # c < 0.2 is strict
    (["6"], [0.99 + 1e-9], "animal", 0.9, None, (BLANK, 0.99 + 1e-9, "classifier")),
    (["1"], [0.81], "animal", 0.05, "MEX", (LABELS[2], 0.81, "classifier+geofence+rollup_to_family")),
    (["1"], [0.81], "animal", 0.05, "CAN", (LABELS[1], 0.81, "classifier")),
    (["1", "0"], [0.75, 0.2], "animal", 0.9, "MEX", (LABELS[2], 0.75 + 0.2, "classifier+geofence+rollup_to_family")),
    (["1", "0"], [0.4, 0.3], "animal", 0.9, None, (EXTRA_TAXA[0], 0.4 + 0.3, "classifier+rollup_to_genus")),
    (["4"], [0.66], "animal", 0.2 + 1e-9, None, (LABELS[4], 0.66, "classifier")),
    (["4"], [0.66], "animal", 0.2, None, (EXTRA_TAXA[6], 0.66, "classifier+rollup_to_genus")),
    (["4"], [0.65], "animal", 0.5 + 1e-9, None, (LABELS[7], 0.5 + 1e-9, "detector")),
    (["4"], [0.65], "animal", 0.5, None, (UNKNOWN, 0.65, "classifier")),
]


@pytest.mark.parametrize(("top", "scores", "detection", "conf", "country", "want"), RULES)
def test_rules_at_their_edges(
    taxonomy: dict[str, str], top: list[str], scores: list[float], detection: str, conf: float,
    country: str | None, want: tuple[str, float, str],
) -> None:  # fmt: skip
    labels = [LABELS[int(c)] for c in top]
    got = combine(labels, scores, detection, conf, EnsembleRules(taxonomy, GEOFENCE, country))
    if want[0] == "genus":  # human at 0.5 rolls up to homo species
        want = (EXTRA_TAXA[7], 0.5, "classifier+rollup_to_genus") if scores[0] > 0.65 else (UNKNOWN, 0.5, "classifier")
    assert (got.label, got.score, got.source) == want
    where = {"country": country, "admin1_region": None, "taxonomy_map": taxonomy, "geofence_map": GEOFENCE}
    assert oracle_506(labels, scores, detection, conf, **where) == {"class": want[0], "score": want[1],
                                                                     "source": want[2]}  # fmt: skip


def test_boxes_classified() -> None:
    dets = [{"conf": 0.05}, {"conf": 0.1}, {"conf": 0.9}, {"conf": 0.5}, {"conf": 0.9}]
    assert select_boxes(dets, ensemble=SPECIESNET, whole_image=False, max_per_image=None) == {1, 2, 3, 4}
    assert select_boxes(dets, ensemble=SPECIESNET, whole_image=False, max_per_image=2) == {2, 4}
    assert select_boxes(dets, ensemble=SPECIESNET, whole_image=False, max_per_image=3) == {2, 3, 4}
    assert select_boxes(dets, ensemble=SPECIESNET_LEGACY, whole_image=False, max_per_image=None) == {2}
    assert select_boxes(dets, ensemble=SPECIESNET, whole_image=True, max_per_image=None) == {2}
    assert select_boxes([], ensemble=SPECIESNET_LEGACY, whole_image=False, max_per_image=None) == set()


def test_speciesnet_506_select_detections_agrees() -> None:
    from speciesnet_oracle import speciesnet_506

    utils = speciesnet_506("utils")
    dets = [{"conf": c} for c in (0.3, 0.1, 0.0999, 0.8, 0.3, 0.95, 0.3)]
    for limit in (None, 0, 1, 2, 3, 4, 10):
        want = set(utils.select_detections_for_classification(dets, 0.1, limit))
        assert select_boxes(dets, ensemble=SPECIESNET, whole_image=False, max_per_image=limit) == want, limit


def test_results_fields(taxonomy: dict[str, str], tmp_path: Path) -> None:
    data = {
        "detection_categories": {"1": "animal", "2": "person"},
        "classification_categories": {str(i): label.split(";")[-1] for i, label in enumerate(LABELS)},
        "classification_category_descriptions": {str(i): label for i, label in enumerate(LABELS)},
        "images": [{"file": "a.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1],
             "classifications": [["1", 0.6], ["0", 0.3], ["2", 0.05], ["4", 0.03], ["3", 0.01], ["5", 0.005]]},
            {"category": "2", "conf": 0.95, "bbox": [0, 0, 1, 1], "classifications": [["8", 0.4], ["6", 0.3]]},
            {"category": "1", "conf": 0.05, "bbox": [0, 0, 1, 1]},
        ]}],
    }  # fmt: skip
    summary = ensemble_results(data, LABELS, EnsembleRules(taxonomy, GEOFENCE, "MEX"), ensemble=SPECIESNET,
                               threshold=0.02, max_classifications=3)  # fmt: skip
    classes = EnsembleClasses(LABELS, taxonomy)
    canis = classes.by_label[EXTRA_TAXA[0]]
    first, person, unclassified = data["images"][0]["detections"]
    assert first["classifications"] == [[canis, 0.6 + 0.3], ["1", 0.6], ["0", 0.3], ["2", 0.05]]
    assert first["raw_classifications"] == [["1", 0.6], ["0", 0.3], ["2", 0.05]]
    assert first["classification_source"] == "classifier+rollup_to_genus"
    assert person["classifications"][0] == ["8", 0.95] and person["classification_source"] == "detector"
    assert "classification_source" not in unclassified
    assert data["classification_categories"][canis] == "canis species"
    assert data["classification_category_descriptions"][canis] == EXTRA_TAXA[0]
    assert (summary.boxes, summary.changed) == (2, 1)
    assert dict(summary.sources or {}) == {"classifier+rollup_to_genus": 1, "detector": 1}
