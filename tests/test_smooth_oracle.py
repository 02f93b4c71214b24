"""Our smoothing and restriction against MegaDetector's own functions (``megadetector-utils``, test-only).

With the same options, each detection's top classification (class and score)
equals the one ``smooth_classification_results_image_level`` and
``smooth_classification_results_sequence_level`` give, on seeded synthetic
files built so that every rule fires, and on the real test images classified
by ``run`` with the seeded EfficientNet-B0 of ``tests/models.py``.
``restrict_to_taxa_list`` agrees on the taxon each detection's top class moves
to. Outputs pass ``validate_batch_results`` with no errors.
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
from megadetector.postprocessing import classification_postprocessing as md
from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results
from smooth_data import CLASSES, cct_sequences, descriptions, random_results, tops

from megaclassifier.cli import cli
from megaclassifier.labels.descriptions import load_taxonomy_file, parse_description
from megaclassifier.postprocess import SmoothOptions, category_descriptions, restrict_results, smooth_results
from megaclassifier.postprocess.sequences import sequences_from_exif

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
    found = []
    for im in data["images"]:
        for d in im.get("detections") or []:
            if not d.get("classifications"):
                found.append(None)
                continue
            taxon = parse_description(data["classification_category_descriptions"][d["classifications"][0][0]])
            found.append(taxon.key if taxon is not None else ())
    return found


def test_restrict_matches_megadetector(tmp_path: Path) -> None:
    data = random_results(6)
    for im in data["images"]:  # one class per detection: where the two behaviours overlap exactly
        for d in im.get("detections") or []:
            if d.get("classifications"):
                d["classifications"] = d["classifications"][:1]
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("latin,common\ncervidae,deer family\ncanis latrans,coyote\nbos taurus,cattle\n", encoding="utf-8")
    expected = top_taxa(md_restrict(data, taxa, speciesnet_taxonomy(tmp_path / "tax.txt", descriptions()), tmp_path))
    ours = copy.deepcopy(data)
    summary = restrict_results(ours, taxa)
    got = top_taxa(ours)
    compared = dropped = 0
    for mine, theirs in zip(got, expected, strict=True):
        if theirs == ():  # MegaDetector labels a class with no listed ancestor "animal"; we drop it
            dropped += mine is None
            compared += mine in (None, ())
        else:
            assert mine == theirs
            compared += 1
    assert compared == len(got) and dropped == summary.changed["left_unclassified"] > 0
    assert summary.changed["moved"] > 0
    assert validate(ours)["errors"] == []


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


@pytest.mark.testdata
def test_real_images_restrict_matches_megadetector(classified: dict, tmp_path: Path) -> None:
    taxa = tmp_path / "taxa.csv"  # every class moves to a distinct taxon, so no scores are summed
    taxa.write_text("latin,common\nodocoileus,deer\ncervus canadensis,elk\nbovidae,bovids\nursidae,bears\n"
                    "canis latrans,coyote\n", encoding="utf-8")  # fmt: skip
    taxonomy = speciesnet_taxonomy(tmp_path / "tax.txt", classified["classification_category_descriptions"])
    expected = top_taxa(md_restrict(classified, taxa, taxonomy, tmp_path))
    ours = copy.deepcopy(classified)
    restrict_results(ours, taxa)
    assert top_taxa(ours) == expected
    moved = {("mammalia", "cetartiodactyla", "cervidae", "odocoileus"), ("mammalia", "carnivora", "ursidae")}
    assert moved <= set(expected), set(expected)
    assert validate(ours)["errors"] == []


def test_synthetic_taxonomy_covers_every_level() -> None:
    ranks = {parse_description(d).rank for d in descriptions().values()}  # type: ignore[union-attr]
    assert ranks == {0, 3, 4, 5, 6, 7} and len(CLASSES) == 14
