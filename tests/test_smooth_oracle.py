"""Our smoothing, restriction and roll-up against MegaDetector's and SpeciesNet's own functions (test-only).

With the same options, each detection's top classification (class and score)
equals the one ``smooth_classification_results_image_level`` and
``smooth_classification_results_sequence_level`` give, on seeded synthetic
files built so that every rule fires, and on the real test images classified
by ``run`` with the seeded EfficientNet-B0 of ``tests/models.py``.
``restrict_to_taxa_list`` gives the same top label and score as ``restrict``
(its default, MegaDetector's semantics) on every detection, for several taxa
lists. The roll-up equals SpeciesNet 5.0.6's ``roll_up_labels_to_first_matching_level``
(random top-5 lists, thresholds at sums +- 1e-9, countries in and out of the
fence) and MegaDetector's ``run_md_and_speciesnet`` roll-up step. Outputs pass
``validate_batch_results`` with no errors. The oracles come from the ``test`` extra
(``megadetector-utils``) and the Makefile (``pip install --no-deps speciesnet``);
the tests needing one skip, saying why, without it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import speciesnet_module
from smooth_data import CLASSES, cct_sequences, descriptions, random_results, tops
from speciesnet_data import ANIMAL, BLANK, EXTRA_TAXA, GEOFENCE, HUMAN, LABELS

from megaclassifier.cli import cli
from megaclassifier.labels.descriptions import load_taxonomy_file, parse_description
from megaclassifier.models.speciesnet import read_taxonomy_map
from megaclassifier.postprocess import (
    SmoothOptions,
    category_descriptions,
    restrict_results,
    rollup_results,
    smooth_results,
)
from megaclassifier.postprocess.roll import roll_up, speciesnet_ancestor, speciesnet_fence
from megaclassifier.postprocess.rollup import RollupFence
from megaclassifier.postprocess.sequences import sequences_from_exif

_WHY = "megadetector-utils (the oracle) is in the test extra: pip install -e '.[test]'"
md = pytest.importorskip("megadetector.postprocessing.classification_postprocessing", reason=_WHY)
_validator = pytest.importorskip("megadetector.postprocessing.validate_batch_results", reason=_WHY)
ValidateBatchResultsOptions = _validator.ValidateBatchResultsOptions
validate_batch_results = _validator.validate_batch_results

OPTION_SETS = {
    "defaults": {},
    "looser": {"min_detections_to_overwrite_secondary": 2, "max_detections_nondominant_class": 3},
    "same_family": {
        "classification_confidence_threshold": 0.3,
        "min_detections_to_overwrite_secondary": 3,
        "max_detections_nondominant_class": 2,
        "max_detections_nondominant_class_same_family": 3,
    },
    "no_propagation": {"propagate_classifications_through_taxonomy": False, "min_detections_to_overwrite_other": 1},
    "all_categories": {"detection_category_names_to_smooth": None, "detection_confidence_threshold": 0.5},
}


def validate(data: dict) -> dict:
    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    return validate_batch_results(data, options)["validation_results"]


def md_options(options: dict[str, Any]) -> md.ClassificationSmoothingOptions:
    out = md.ClassificationSmoothingOptions()
    for key, value in options.items():
        setattr(out, key, value)
    return out


def our_options(options: dict[str, Any], **more: Any) -> SmoothOptions:
    ours = dict(options)
    if "detection_category_names_to_smooth" in ours and ours["detection_category_names_to_smooth"] is None:
        ours["detection_category_names_to_smooth"] = ()
    return SmoothOptions(**ours, **more)


def md_image_level(data: dict, options: dict[str, Any]) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        return md.smooth_classification_results_image_level(copy.deepcopy(data), options=md_options(options))


def md_sequence_level(data: dict, cct: dict, options: dict[str, Any]) -> dict:
    with contextlib.redirect_stdout(io.StringIO()):
        return md.smooth_classification_results_sequence_level(
            copy.deepcopy(data), copy.deepcopy(cct), options=md_options(options)
        )


def changed_tops(before: dict, after: dict) -> int:
    return sum(a != b for x, y in zip(tops(before), tops(after), strict=True) for a, b in zip(x, y, strict=True))


# --- synthetic files


@pytest.mark.parametrize("taxonomy", [True, False], ids=["taxonomy", "no_taxonomy"])
@pytest.mark.parametrize("option_set", list(OPTION_SETS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_image_level_matches_megadetector(seed: int, option_set: str, taxonomy: bool) -> None:
    data = random_results(seed, taxonomy=taxonomy)
    expected = md_image_level(data, OPTION_SETS[option_set])
    ours = copy.deepcopy(data)
    summary = smooth_results(ours, our_options(OPTION_SETS[option_set]))
    assert tops(ours) == tops(expected)
    assert summary.detections_changed >= changed_tops(data, ours) > 0
    assert validate(ours)["errors"] == []


@pytest.mark.parametrize("option_set", ["defaults", "looser", "same_family"])
@pytest.mark.parametrize("seed", [4, 5])
def test_sequence_level_matches_megadetector(tmp_path: Path, seed: int, option_set: str) -> None:
    data = random_results(seed, n_images=120)
    cct = cct_sequences(data, seed)
    cct["images"] = cct["images"][5:]  # a few images in no sequence: both leave them alone
    expected = md_sequence_level(data, cct, OPTION_SETS[option_set])
    path = tmp_path / "cct.json"
    path.write_text(json.dumps(cct), encoding="utf-8")
    ours = copy.deepcopy(data)
    summary = smooth_results(ours, our_options(OPTION_SETS[option_set], level="sequence", sequences=path))
    assert tops(ours) == tops(expected)
    assert changed_tops(data, ours) > 0
    assert summary.sequences is not None and summary.sequences.not_in_file == 5
    assert validate(ours)["errors"] == []


def test_every_rule_fires_on_the_synthetic_files() -> None:
    totals: dict[str, int] = {}
    for seed in (1, 2, 3):
        summary = smooth_results(random_results(seed), our_options(OPTION_SETS["same_family"]))
        for rule, n in summary.changed.items():
            totals[rule] = totals.get(rule, 0) + n
    assert all(n > 0 for n in totals.values()), totals


def speciesnet_taxonomy(path: Path, descriptions_by_id: dict[str, str]) -> Path:
    """A SpeciesNet-style taxonomy file (seven-token lines) for restrict_to_taxa_list."""
    lines = [d for d in descriptions_by_id.values() if d.split(";")[1] or d.endswith(";animal")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def md_restrict(data: dict, taxa: Path, taxonomy: Path, tmp_path: Path) -> dict:
    source, target = tmp_path / "md_in.json", tmp_path / "md_out.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    with contextlib.redirect_stdout(io.StringIO()):
        md.restrict_to_taxa_list(str(taxa), str(taxonomy), str(source), str(target), verbose=False)
    return json.loads(target.read_text(encoding="utf-8"))


def top_taxa(data: dict) -> list[tuple[str, ...] | None]:
    """Each detection's top class as its taxon key (None without classifications, () for a non-taxon)."""
    return [None if top is None else top[0] for top in top_scores(data)]


def top_scores(data: dict) -> list[tuple[tuple[str, ...] | str, float] | None]:
    """Each detection's top (taxon key, or a non-taxon's common name, and score); None without classifications."""
    found: list[tuple[tuple[str, ...] | str, float] | None] = []
    for im in data["images"]:
        for d in im.get("detections") or []:
            if not d.get("classifications"):
                found.append(None)
                continue
            cid, score = d["classifications"][0]
            taxon = parse_description(data["classification_category_descriptions"][cid])
            assert taxon is not None
            found.append((taxon.key if taxon.is_taxon else taxon.common, round(score, 4)))
    return found


def test_restrict_matches_megadetector(tmp_path: Path) -> None:
    data = random_results(6)
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("latin,common\ncervidae,deer family\ncanis latrans,coyote\nbos taurus,cattle\n", encoding="utf-8")
    expected = md_restrict(data, taxa, speciesnet_taxonomy(tmp_path / "tax.txt", descriptions()), tmp_path)
    ours = copy.deepcopy(data)
    summary = restrict_results(ours, taxa)
    assert top_scores(ours) == top_scores(expected)
    assert summary.changed["moved"] > 0 and summary.changed["to_animal"] > 0
    assert validate(ours)["errors"] == []
    # the old semantics agrees only where no class is dropped and no two land on one taxon
    old = copy.deepcopy(data)
    restrict_results(old, taxa, semantics="megaclassifier")
    differ = sum(a != b for a, b in zip(top_scores(old), top_scores(expected), strict=True))
    assert (differ, sum(top is not None for top in top_scores(expected))) == (118, 569), differ


# --- the real test images, classified by run


TAXONOMY_CSV = """name,kingdom,phylum,class,order,family,genus,species,common
deer,animalia,chordata,mammalia,cetartiodactyla,cervidae,odocoileus,odocoileus virginianus,white-tailed deer
elk,animalia,chordata,mammalia,cetartiodactyla,cervidae,cervus,canadensis,elk
cow,animalia,chordata,mammalia,cetartiodactyla,bovidae,bos,taurus,domestic cattle
bear,animalia,chordata,mammalia,carnivora,ursidae,ursus,americanus,american black bear
coyote,animalia,chordata,mammalia,carnivora,canidae,canis,latrans,coyote
"""
CLASS_NAMES = ["deer", "elk", "cow", "bear", "coyote"]  # the seeded B0 has 5 outputs


@pytest.fixture(scope="module")
def classified(cameratrap: Path, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real test images classified by ``run`` (seeded B0, 64 px), with taxonomy descriptions."""
    folder = tmp_path_factory.mktemp("smooth_real")
    model = Path(shutil.copyfile(b0_checkpoint, folder / "b0.pt"))
    categories = folder / "index_to_name.json"
    categories.write_text(json.dumps(dict(enumerate(CLASS_NAMES))), encoding="utf-8")
    out = folder / "merged.json"
    result = CliRunner().invoke(cli, ["-q", "run", str(cameratrap / "detections.json"), str(model), "--output-json",
                                      str(out), "--images-dir", str(cameratrap / "images"), "--square-crops",
                                      "--threshold", "0.15", "--classifier-categories", str(categories),
                                      "--classification-threshold", "0.01", "--image-size", "64",
                                      "--backend", "torch", "--num-workers", "0", "--logdir", str(folder)])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    taxonomy = folder / "taxonomy.csv"
    taxonomy.write_text(TAXONOMY_CSV, encoding="utf-8")
    data["classification_category_descriptions"] = category_descriptions(
        data["classification_categories"], load_taxonomy_file(taxonomy)
    )
    return data


REAL_OPTIONS = {
    "defaults": {},
    "loose": {
        "classification_confidence_threshold": 0.2,
        "min_detections_to_overwrite_secondary": 2,
        "max_detections_nondominant_class": 2,
    },  # fmt: skip
}


@pytest.mark.testdata
@pytest.mark.parametrize("option_set", list(REAL_OPTIONS))
def test_real_images_image_level_matches_megadetector(classified: dict, option_set: str) -> None:
    options = REAL_OPTIONS[option_set]
    expected = md_image_level(classified, options)
    ours = copy.deepcopy(classified)
    smooth_results(ours, our_options(options))
    assert tops(ours) == tops(expected)
    if option_set == "loose":
        assert changed_tops(classified, ours) > 0
    assert validate(ours)["errors"] == []


@pytest.mark.testdata
def test_real_images_sequences_from_exif_match_megadetector_given_the_same_sequences(
    classified: dict, cameratrap: Path
) -> None:
    options = REAL_OPTIONS["loose"]
    built = sequences_from_exif(
        [im["file"] for im in classified["images"]], cameratrap / "images", camera_depth=None, gap_seconds=60
    )
    # the three elephant photos share one EXIF time; three images have no time; the rest are alone
    assert (built.count, built.without_time) == (12, 3)
    elephants = {f for f in built.of if f.startswith("african_elephants") and "_bw" not in f and "_cmyk" not in f}
    assert len({built.of[f][0] for f in elephants}) == 1 and len(elephants) == 3
    cct = {"images": [{"file_name": f, "seq_id": str(s)} for f, (s, _) in sorted(built.of.items(), key=lambda x: x[1])]}
    expected = md_sequence_level(classified, cct, options)
    ours = copy.deepcopy(classified)
    summary = smooth_results(ours, our_options(options, level="sequence", images_dir=cameratrap / "images"))
    assert tops(ours) == tops(expected)
    assert summary.sequences is not None and summary.sequences.count == 12
    assert validate(ours)["errors"] == []


#: Taxa lists for the real images, and how many of their classified detections' top labels (class, score)
#: the old semantics (megaclassifier) gives otherwise than MegaDetector.
TAXA_LISTS = {
    # every class moves to a distinct taxon and none is dropped: nothing is summed or renormalised
    "distinct": ("odocoileus,deer\ncervus canadensis,elk\nbovidae,bovids\nursidae,bears\ncanis latrans,coyote\n", 0),
    # bear and coyote sum into carnivora above the elk, where MegaDetector keeps the elk first
    "elk_and_carnivores": ("cervus canadensis,elk\ncarnivora,carnivores\n", 21),
    "deer_family_and_coyote": ("cervidae,deer family\ncanis latrans,coyote\n", 5),
    "black_bear_only": ("ursus americanus,american black bear\n", 5),
    "mammals": ("mammalia,mammals\n", 32),
    "cattle_and_deer": ("bos taurus,cattle\nodocoileus virginianus,white-tailed deer\n", 21),
}


@pytest.mark.testdata
@pytest.mark.parametrize("name", list(TAXA_LISTS))
def test_real_images_restrict_matches_megadetector(classified: dict, tmp_path: Path, name: str) -> None:
    rows, old_differ = TAXA_LISTS[name]
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("latin,common\n" + rows, encoding="utf-8")
    taxonomy = speciesnet_taxonomy(tmp_path / "tax.txt", classified["classification_category_descriptions"])
    expected = md_restrict(classified, taxa, taxonomy, tmp_path)
    ours = copy.deepcopy(classified)
    restrict_results(ours, taxa)
    assert top_scores(ours) == top_scores(expected)
    assert sum(top is not None for top in top_scores(ours)) == 38
    assert validate(ours)["errors"] == []
    old = copy.deepcopy(classified)
    restrict_results(old, taxa, semantics="megaclassifier")
    differ = sum(a != b for a, b in zip(top_scores(old), top_scores(expected), strict=True))
    assert differ == old_differ, differ


def test_synthetic_taxonomy_covers_every_level() -> None:
    ranks = {parse_description(d).rank for d in descriptions().values()}  # type: ignore[union-attr]
    assert ranks == {0, 3, 4, 5, 6, 7} and len(CLASSES) == 14


# --- the roll-up against SpeciesNet's roll_up_labels_to_first_matching_level and run_md_and_speciesnet

#: The stand-in release's labels and taxonomy, with the taxa its species need so that every ancestor exists (a
#: real release's taxonomy has them all; SpeciesNet never rolls up to a taxon missing there, we make it up).
ANCESTORS = [
    "0b1f0a3e-0201-4000-8000-000000000201;mammalia;cetartiodactyla;cervidae;odocoileus;;odocoileus species",
    "0b1f0a3e-0202-4000-8000-000000000202;mammalia;cetartiodactyla;cervidae;cervus;;cervus species",
    "0b1f0a3e-0203-4000-8000-000000000203;mammalia;primates;hominidae;homo;;homo species",
    "0b1f0a3e-0204-4000-8000-000000000204;mammalia;primates;hominidae;;;hominid family",
    "0b1f0a3e-0205-4000-8000-000000000205;mammalia;primates;;;;primates",
]
ROLLUP_LABELS = LABELS + EXTRA_TAXA
COUNTRIES = [(None, None), ("USA", None), ("USA", "AK"), ("USA", "FL"), ("CAN", None), ("GBR", None)]


@pytest.fixture(scope="module")
def taxonomy_map(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("taxonomy") / "taxonomy_release.txt"
    path.write_text("\n".join(ROLLUP_LABELS + ANCESTORS) + "\n", encoding="utf-8")
    return read_taxonomy_map(path)


def random_top5(rng: Any, labels: list[str]) -> tuple[list[str], list[float]]:
    """Up to 5 distinct labels with scores on a 0.05 grid (so sums tie and hit thresholds), most confident first."""
    chosen = rng.sample(labels, rng.randint(1, 5))
    scores = sorted((rng.randint(0, 20) * 0.05 for _ in chosen), reverse=True)
    return chosen, scores


def thresholds(rng: Any, scores: list[float]) -> list[float]:
    """SpeciesNet's 0.65, and a sum of some of the scores, each exactly and +- 1e-9."""
    total = 0.0
    for score in scores[: rng.randint(1, len(scores))]:
        total += score
    return [t + d for t in (0.65, total) for d in (0.0, 1e-9, -1e-9)]


@pytest.mark.parametrize("levels", ["ensemble", "megadetector"])
def test_roll_up_matches_speciesnet(taxonomy_map: dict[str, str], levels: str) -> None:
    import random

    oracle = speciesnet_module("geofence_utils").roll_up_labels_to_first_matching_level
    target = ["genus", "family", "order", "class", "kingdom"]
    semantics = "speciesnet"
    if levels == "megadetector":
        target, semantics = ["species", *target], "megadetector"
    rng = random.Random(20)
    passed = {level: 0 for level in target}
    compared = 0
    for _ in range(600):
        labels, scores = random_top5(rng, ROLLUP_LABELS)
        for threshold in thresholds(rng, scores):
            for country, region in COUNTRIES:
                expected = oracle(labels=labels, scores=scores, country=country, admin1_region=region,
                                  target_taxonomy_levels=target, non_blank_threshold=threshold,
                                  taxonomy_map=taxonomy_map, geofence_map=GEOFENCE,
                                  enable_geofence=country is not None)  # fmt: skip
                got = roll_up(list(zip(labels, scores, strict=True)), speciesnet_ancestor(taxonomy_map), threshold,
                              semantics, fenced=speciesnet_fence(GEOFENCE, country, region))  # fmt: skip
                assert (None if got is None else (got[0], got[1], f"classifier+rollup_to_{got[2]}")) == expected, (
                    labels, scores, threshold, country, region)  # fmt: skip
                compared += 1
                if got is not None:
                    passed[got[2]] += 1
    assert compared == 600 * 6 * len(COUNTRIES)
    assert all(n > 0 for n in passed.values()), passed  # every level is reached


def test_geofence_roll_up_matches_speciesnet(taxonomy_map: dict[str, str]) -> None:
    """With the geofence levels and threshold (top score - 1e-10): SpeciesNet's geofence_animal_classification."""
    import random

    from megaclassifier.postprocess.roll import GEOFENCE_SEMANTICS

    oracle = speciesnet_module("geofence_utils").geofence_animal_classification
    rng = random.Random(21)
    fenced = failed = 0
    for _ in range(600):
        labels, scores = random_top5(rng, [lab for lab in ROLLUP_LABELS if lab not in (BLANK, ANIMAL, HUMAN)])
        for country, region in COUNTRIES[1:]:
            expected = oracle(labels=labels, scores=scores, country=country, admin1_region=region,
                              taxonomy_map=taxonomy_map, geofence_map=GEOFENCE, enable_geofence=True)  # fmt: skip
            fence = speciesnet_fence(GEOFENCE, country, region)
            assert fence is not None
            if not fence(labels[0]):
                assert expected == (labels[0], scores[0], "classifier")
                continue
            fenced += 1
            got = roll_up(list(zip(labels, scores, strict=True)), speciesnet_ancestor(taxonomy_map),
                          scores[0] - 1e-10, GEOFENCE_SEMANTICS, fenced=fence)  # fmt: skip
            if got is None:  # nothing allowed passes (e.g. a fenced top score of 0): SpeciesNet gives up too
                assert expected[2] == "classifier+geofence+rollup_failed", (labels, scores, country, region)
                failed += 1
                continue
            assert (got[0], got[1], f"classifier+geofence+rollup_to_{got[2]}") == expected
    assert fenced > 100 and failed < fenced / 10


def speciesnet_results(rng: Any, n: int) -> dict[str, Any]:
    """A results file as ``run`` writes with a SpeciesNet release: classes by common name, labels as descriptions."""
    labels = ROLLUP_LABELS
    ids = {label: str(i) for i, label in enumerate(labels)}
    images = []
    for i in range(n):
        chosen, scores = random_top5(rng, labels)
        pairs = [[ids[label], round(score, 4)] for label, score in zip(chosen, scores, strict=True)]
        images.append({"file": f"img{i:04d}.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2], "classifications": pairs}]})  # fmt: skip
    return {"info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt", "classifier": "speciesnet-test"},
            "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
            "classification_categories": {ids[label]: label.split(";")[-1] for label in labels},
            "classification_category_descriptions": {ids[label]: label for label in labels},
            "images": images}  # fmt: skip


def md_run_rollup(data: dict[str, Any], taxonomy_map: dict[str, str], threshold: float, country: str | None,
                  region: str | None) -> list[tuple[tuple[str, ...] | str, float]]:  # fmt: skip
    """Each detection's top (taxon key or common name, score) from run_md_and_speciesnet's own classification step."""
    geofence_utils = speciesnet_module("geofence_utils")
    run_md = pytest.importorskip("megadetector.detection.run_md_and_speciesnet", reason=_WHY)
    # it imports SpeciesNet's functions beside SpeciesNetClassifier, which needs the detector's yolov5: give
    # it the two functions of the installed package directly
    run_md.roll_up_labels_to_first_matching_level = geofence_utils.roll_up_labels_to_first_matching_level
    run_md.geofence_animal_classification = geofence_utils.geofence_animal_classification
    labels = data["classification_category_descriptions"]
    batch = run_md.CropBatch()
    answers = []
    for im in data["images"]:
        d = im["detections"][0]
        batch.add_crop(None, run_md.CropMetadata(im["file"], 0, d["bbox"], 100, 100))
        answers.append({"classifications_list": [{"classes": [labels[c] for c, _ in d["classifications"]],
                                                  "scores": [s for _, s in d["classifications"]]}]})  # fmt: skip

    class Classifier:  # the model's answers: the file's own top-5 lists
        def batch_predict(self, filepaths: list[str], crops: list[Any]) -> list[dict[str, Any]]:
            return answers

    results: dict[str, Any] = {im["file"]: {} for im in data["images"]}
    run_md._process_classification_batch(batch, Classifier(), results, True, taxonomy_map, GEOFENCE, country, region,
                                         threshold)  # fmt: skip
    out = []
    for im in data["images"]:
        label, score = results[im["file"]][0]["classifications"][0]
        taxon = parse_description(label)
        assert taxon is not None
        out.append((taxon.key if taxon.is_taxon else taxon.common, round(score, 4)))
    return out


@pytest.mark.parametrize(("country", "region"), [(None, None), ("USA", None), ("USA", "FL"), ("GBR", None)])
def test_rollup_megadetector_matches_run_md_and_speciesnet(
    taxonomy_map: dict[str, str], tmp_path: Path, country: str | None, region: str | None
) -> None:
    import random

    data = speciesnet_results(random.Random(22), 400)
    for threshold in (0.65, 0.5):
        expected = md_run_rollup(data, taxonomy_map, threshold, country, region)
        ours = copy.deepcopy(data)
        fence = RollupFence(GEOFENCE, country, region) if country else None
        summary = rollup_results(ours, threshold, semantics="megadetector", fence=fence)
        assert top_scores(ours) == expected
        assert summary.detections_changed > 50
        assert validate(ours)["errors"] == []
