"""``run --ensemble`` on the real photos, against SpeciesNet's own combiner on our raw top 5.

A seeded stand-in release (tests/speciesnet_data.py, confident enough that every rule has work)
classifies the photos; SpeciesNet 5.0.6's ``select_detections_for_classification`` and
``combine_predictions`` (5.0.5's ``combine_predictions_for_single_item`` for the legacy ensemble)
must give exactly the boxes, classes, scores and sources of the output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cluster_data import without_time
from conftest import PhotoSet
from helpers import invoke
from speciesnet_data import build_release
from speciesnet_oracle import oracle_505, oracle_506, oracle_taxonomy, speciesnet_506

from megaclassifier.models.speciesnet import read_release
from megaclassifier.run import pipeline as pipeline_module

PLACES = [(None, None), ("USA", None), ("USA", "FL"), ("GBR", None)]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_release(tmp_path_factory.mktemp("ensemble") / "always_crop", seed=11, scale=80.0)


def _run(photos: PhotoSet, release: Path, out: Path, *flags: Any) -> dict[str, Any]:
    result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                    "--num-workers", 0, "--logdir", out.parent, *flags)  # fmt: skip
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def _where(flags: tuple[Any, ...]) -> list[Any]:
    country, region = flags
    return [*(["--country", country] if country else []), *(["--admin1-region", region] if region else [])]


@pytest.fixture(scope="module", params=PLACES, ids=lambda p: "-".join(x for x in p if x) or "nowhere")
def per_box(
    request: pytest.FixtureRequest, photos: PhotoSet, release: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[str | None, str | None], dict[str, Any]]:
    out = tmp_path_factory.mktemp("per_box") / "out.json"
    return request.param, _run(photos, release, out, "--classification-threshold", 0, *_where(request.param))


def _detection_label(data: dict[str, Any], det: dict[str, Any]) -> str:
    name = data["detection_categories"][det["category"]]
    return "human" if name == "person" else name


def _answer(data: dict[str, Any], det: dict[str, Any]) -> dict[str, Any]:
    cid, score = det["classifications"][0]
    return {"class": data["classification_category_descriptions"][cid], "score": score,
            "source": det["classification_source"]}  # fmt: skip


def test_per_box_equals_speciesnet(
    per_box: tuple[tuple[str | None, str | None], dict[str, Any]], release: Path, photos: PhotoSet
) -> None:
    (country, region), data = per_box
    taxonomy = oracle_taxonomy(read_release(release).taxonomy)
    geofence = json.loads(read_release(release).geofence.read_text(encoding="utf-8"))
    select = speciesnet_506("utils").select_detections_for_classification
    descriptions = data["classification_category_descriptions"]
    checked = 0
    for image in data["images"]:
        dets = image.get("detections") or []
        assert [i for i, d in enumerate(dets) if "classifications" in d] == select(dets, 0.1, None)
        for det in dets:
            if "classifications" not in det:
                continue
            raw = det["raw_classifications"]
            assert len(raw) == 9  # --classification-threshold 0: every class
            labels, scores = [descriptions[c] for c, _ in raw[:5]], [s for _, s in raw[:5]]
            want = oracle_506(labels, scores, _detection_label(data, det), det["conf"], country=country,
                              admin1_region=region, taxonomy_map=taxonomy, geofence_map=geofence)  # fmt: skip
            assert _answer(data, det) == want
            assert det["classifications"][1:] == [c for c in raw if c[0] != det["classifications"][0][0]]
            checked += 1
    assert checked == sum(len(select(im.get("detections") or [], 0.1, None)) for im in data["images"]) > 40
    names = data["classification_categories"]
    assert all(names[cid] == label.split(";")[-1] for cid, label in descriptions.items())
    step = data["info"]["classification_postprocessing"][-1]
    assert (step["step"], step["ensemble"], step["country"], step["admin1_region"]) == (
        "ensemble", "speciesnet", country, region)  # fmt: skip


def test_sources_cover_the_rules(per_box: tuple[tuple[str | None, str | None], dict[str, Any]]) -> None:
    (country, region), data = per_box
    sources = {d["classification_source"] for im in data["images"] for d in im.get("detections") or []
               if "classification_source" in d}  # fmt: skip
    assert {"classifier", "detector", "classifier+rollup_to_genus", "classifier+rollup_to_class"} <= sources
    if (country, region) in (("USA", "FL"), ("GBR", None)):  # elk blocked in Florida, deer in Great Britain
        assert any(s.startswith("classifier+geofence+rollup_to_") for s in sources)
    else:
        assert not any("geofence" in s for s in sources)


def test_threshold_trims_the_raw_list_only(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    every = _run(photos, release, tmp_path / "all.json", "--classification-threshold", 0, "--country", "USA")
    default = _run(photos, release, tmp_path / "default.json", "--country", "USA", "--max-classifications", 2)
    for image_all, image in zip(every["images"], default["images"], strict=True):
        for det_all, det in zip(image_all.get("detections") or [], image.get("detections") or [], strict=True):
            assert det.get("classifications", [[]])[:1] == det_all.get("classifications", [[]])[:1]
            if "raw_classifications" in det:
                assert det["raw_classifications"] == [c for c in det_all["raw_classifications"] if c[1] >= 0.1][:2]


def test_legacy_is_one_answer_per_image(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    data = _run(photos, release, tmp_path / "legacy.json", "--ensemble", "speciesnet-legacy",
                "--classification-threshold", 0, "--country", "USA", "--admin1-region", "FL")  # fmt: skip
    taxonomy = oracle_taxonomy(read_release(release).taxonomy)
    geofence = json.loads(read_release(release).geofence.read_text(encoding="utf-8"))
    descriptions = data["classification_category_descriptions"]
    images = 0
    for image in data["images"]:
        dets = image.get("detections") or []
        classified = [i for i, d in enumerate(dets) if "classifications" in d]
        if not dets:
            assert classified == []
            continue
        top = max(range(len(dets)), key=lambda i: (dets[i]["conf"], -i))
        assert classified == [top]
        det = dets[top]
        raw = det["raw_classifications"]
        want = oracle_505([descriptions[c] for c, _ in raw[:5]], [s for _, s in raw[:5]], _detection_label(data, det),
                          det["conf"], country="USA", admin1_region="FL", taxonomy_map=taxonomy,
                          geofence_map=geofence)  # fmt: skip
        assert _answer(data, det) == want
        images += 1
    assert images > 10
    assert data["info"]["classification_postprocessing"][-1]["ensemble"] == "speciesnet-legacy"


def test_max_classifications_per_image(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    data = _run(photos, release, tmp_path / "one.json", "--max-classifications-per-image", 1)
    select = speciesnet_506("utils").select_detections_for_classification
    for image in data["images"]:
        dets = image.get("detections") or []
        assert [i for i, d in enumerate(dets) if "classifications" in d] == select(dets, 0.1, 1)


def test_none_is_the_raw_top_k(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    data = _run(photos, release, tmp_path / "none.json", "--ensemble", "none", "--threshold", 0.15)
    dets = [d for im in data["images"] for d in im.get("detections") or [] if "classifications" in d]
    assert len(dets) == len(photos.animal_boxes(0.15))
    assert not any("classification_source" in d or "raw_classifications" in d for d in dets)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--ensemble", "speciesnet"],
         "Error: --ensemble speciesnet is SpeciesNet's: give a SpeciesNet release folder"),
        (["--ensemble", "speciesnet-legacy"],
         "Error: --ensemble speciesnet-legacy is SpeciesNet's: give a SpeciesNet release folder"),
        (["--max-classifications-per-image", 2], "Error: --max-classifications-per-image applies under --ensemble "
                                                 "speciesnet"),
    ],
)  # fmt: skip
def test_usage_errors(tiny_model: Path, photos: PhotoSet, tmp_path: Path, flags: list[Any], message: str) -> None:
    result = invoke("run", photos.detections, tiny_model, "--output-json", tmp_path / "o.json",
                    "--images-dir", photos.images, *flags)  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == message
    assert not (tmp_path / "o.json").exists()


def test_release_flags_errors(release: Path, photos: PhotoSet, tmp_path: Path) -> None:
    result = invoke("run", photos.detections, release, "--output-json", tmp_path / "o.json",
                    "--ensemble", "speciesnet-legacy", "--max-classifications-per-image", 2)  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: --max-classifications-per-image applies under --ensemble speciesnet"
    )


def test_shards_combine_to_the_unsharded_run(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    flags = ["--country", "USA", "--admin1-region", "FL"]
    whole = tmp_path / "whole" / "out.json"
    whole.parent.mkdir()
    _run(photos, release, whole, *flags)
    shards = []
    for index in range(2):
        out = tmp_path / f"shard{index}" / "out.json"
        out.parent.mkdir()
        _run(photos, release, out, *flags, "--shard", f"{index}/2")
        shards.append(out)
    result = invoke("combine", tmp_path / "combined.json", *shards)
    assert result.exit_code == 0, result.output
    assert without_time(tmp_path / "combined.json") == without_time(whole)


def test_resume_equals_an_uninterrupted_run(
    photos: PhotoSet, release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = tmp_path / "whole" / "out.json"
    whole.parent.mkdir()
    _run(photos, release, whole, "--country", "GBR")
    original = pipeline_module.classified_rows

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        for n, row in enumerate(original(*args, **kwargs)):
            if n == 20:
                raise KeyboardInterrupt
            yield row

    out = tmp_path / "resumed" / "out.json"
    out.parent.mkdir()
    with monkeypatch.context() as m:
        m.setattr(pipeline_module, "classified_rows", interrupted)
        result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                        "--num-workers", 0, "--logdir", out.parent, "--country", "GBR")  # fmt: skip
        assert result.exit_code == 130, result.output
    assert (out.parent / "out.json.journal").is_file()
    _run(photos, release, out, "--country", "GBR")
    assert without_time(out) == without_time(whole)


def test_whole_image_release_answers_on_the_top_box(photos: PhotoSet, tmp_path: Path) -> None:
    release = build_release(tmp_path / "full_image", release_type="full_image", seed=11, scale=80.0)
    data = _run(photos, release, tmp_path / "full.json", "--classification-threshold", 0, "--country", "GBR")
    taxonomy = oracle_taxonomy(read_release(release).taxonomy)
    geofence = json.loads(read_release(release).geofence.read_text(encoding="utf-8"))
    descriptions = data["classification_category_descriptions"]
    images = 0
    for image in data["images"]:
        dets = image.get("detections") or []
        classified = [i for i, d in enumerate(dets) if "classifications" in d]
        if dets:  # SpeciesNet ensembles the whole image's answer with the top detection
            top = max(range(len(dets)), key=lambda i: (dets[i]["conf"], -i))
            assert classified == [top]
            det = dets[top]
            raw = det["raw_classifications"]
            want = oracle_506([descriptions[c] for c, _ in raw[:5]], [s for _, s in raw[:5]],
                              _detection_label(data, det), det["conf"], country="GBR", admin1_region=None,
                              taxonomy_map=taxonomy, geofence_map=geofence)  # fmt: skip
            assert _answer(data, det) == want
            images += 1
    assert images > 10


def test_merge_with_the_release_equals_run(photos: PhotoSet, release: Path, tmp_path: Path) -> None:
    flags = ["--country", "USA", "--admin1-region", "FL", "--classification-threshold", 0.05]
    ran = _run(photos, release, tmp_path / "run.json", *flags, "--output-csv", tmp_path / "probs.csv")
    index = tmp_path / "index.json"
    names = {k: v for k, v in ran["classification_categories"].items() if int(k) < 9}
    index.write_text(json.dumps(names), encoding="utf-8")
    result = invoke("merge", tmp_path / "probs.csv", index, "-o", tmp_path / "merged.json", "-n", "speciesnet",
                    "-j", photos.detections, "-t", 0.05, "--release", release, *flags[:4])  # fmt: skip
    assert result.exit_code == 0, result.output
    merged = json.loads((tmp_path / "merged.json").read_text(encoding="utf-8"))
    for key in ("classification_categories", "classification_category_descriptions", "images"):
        assert merged[key] == ran[key], key
    assert merged["info"]["classification_postprocessing"] == ran["info"]["classification_postprocessing"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--country", "USA"], "Error: --country feeds the ensemble's geofence: give --release"),
        (["--release", "RELEASE", "--ensemble", "none"], "Error: --release is for --ensemble speciesnet or "
                                                         "speciesnet-legacy"),
        (["--ensemble", "speciesnet"], "Error: --ensemble speciesnet is SpeciesNet's: give a SpeciesNet release "
                                       "folder"),
        (["--release", "NOT"], "Error: --release: NOT is not a SpeciesNet release folder (no info.json)"),
    ],
)  # fmt: skip
def test_merge_usage_errors(release: Path, photos: PhotoSet, tmp_path: Path, flags: list[str], message: str) -> None:
    csv, index = tmp_path / "p.csv", tmp_path / "i.json"
    csv.write_text("path,coyote\n", encoding="utf-8")
    index.write_text('{"0": "coyote"}', encoding="utf-8")
    (tmp_path / "not").mkdir()
    swap = {"RELEASE": str(release), "NOT": str(tmp_path / "not")}
    result = invoke("merge", csv, index, "-o", tmp_path / "o.json", "-n", "x", "-j", photos.detections,
                    *(swap.get(f, f) for f in flags))  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == message.replace("NOT", str(tmp_path / "not"))
