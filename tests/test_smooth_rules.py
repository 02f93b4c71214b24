"""Each smoothing rule, rollup and restrict on hand-built results: exact outputs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from smooth_data import ID, det, image, results

from megaclassifier.errors import InputFileError
from megaclassifier.labels.descriptions import Taxon, parse_description
from megaclassifier.postprocess import (
    SmoothOptions,
    TaxonomyNeededError,
    restrict_results,
    rollup_results,
    smooth_results,
)
from megaclassifier.postprocess.rollup import RollupFence
from megaclassifier.postprocess.sequences import camera_of, parse_exif_time, sequences_from_times


def lists(data: dict[str, Any], i: int = 0) -> list[Any]:
    """Each detection's classifications of image ``i`` (None when it has none)."""
    return [d.get("classifications") for d in data["images"][i]["detections"]]


def smoothed(*detections: dict[str, Any], taxonomy: bool = True, **options: Any) -> tuple[dict, Any]:
    data = results([image("a.jpg", *detections)], taxonomy=taxonomy)
    summary = smooth_results(data, SmoothOptions(**options))
    return data, summary


# --- MegaDetector's four rules


def test_other_becomes_the_dominant_class() -> None:
    data, summary = smoothed(det(("cattle", 0.9)), det(("cattle", 0.8)), det(("other", 0.7), ("cattle", 0.2)))
    assert lists(data) == [[[ID["cattle"], 0.9]], [[ID["cattle"], 0.8]], [[ID["cattle"], 0.7]]]
    assert data["images"][0]["detections"][2]["raw_classifications"] == [[ID["other"], 0.7], [ID["cattle"], 0.2]]
    assert "raw_classifications" not in data["images"][0]["detections"][0]
    assert summary.changed == {"other": 1, "dominant": 0, "taxonomic": 0, "same_family": 0}
    assert summary.groups_changed == 1


def test_other_needs_two_votes_of_the_dominant_class() -> None:
    data, summary = smoothed(det(("cattle", 0.9)), det(("other", 0.7)))
    assert lists(data) == [[[ID["cattle"], 0.9]], [[ID["other"], 0.7]]]
    assert summary.detections_changed == 0


def test_other_tied_first_yields_to_the_real_class() -> None:
    data, summary = smoothed(det(("other", 0.9)), det(("other", 0.8)), det(("cattle", 0.7)), det(("cattle", 0.6)))
    assert [c[0][0] for c in lists(data)] == [ID["cattle"]] * 4
    assert summary.changed["other"] == 2


def test_dominant_class_overwrites_a_lone_unrelated_class() -> None:
    data, summary = smoothed(*(det(("coyote", 0.9)) for _ in range(4)), det(("white-tailed deer", 0.6), ("elk", 0.3)))
    assert lists(data)[4] == [[ID["coyote"], 0.6]]
    assert summary.changed["dominant"] == 1


def test_dominant_class_needs_four_votes() -> None:
    data, summary = smoothed(*(det(("coyote", 0.9)) for _ in range(3)), det(("white-tailed deer", 0.6)))
    assert lists(data)[3] == [[ID["white-tailed deer"], 0.6]]
    assert summary.detections_changed == 0


def test_without_taxonomy_a_child_is_overwritten_by_its_dominant_parent(caplog: pytest.LogCaptureFixture) -> None:
    data, summary = smoothed(*(det(("canis", 0.9)) for _ in range(4)), det(("coyote", 0.6)), taxonomy=False)
    assert lists(data)[4] == [[ID["canis"], 0.6]]
    assert summary.changed == {"other": 0, "dominant": 1, "taxonomic": 0, "same_family": 0}
    assert caplog.messages == [
        "<results>: no taxonomy (no classification_category_descriptions, no --taxonomy): "
        "the taxonomic and same-family rules are skipped"
    ]


def test_with_taxonomy_a_dominant_parent_becomes_its_child() -> None:
    data, summary = smoothed(*(det(("canis", 0.9)) for _ in range(4)), det(("coyote", 0.6)))
    assert [c[0] for c in lists(data)] == [[ID["coyote"], 0.9]] * 4 + [[ID["coyote"], 0.6]]
    assert summary.changed == {"other": 0, "dominant": 0, "taxonomic": 4, "same_family": 0}


def test_taxonomic_rule_prefers_the_more_frequent_child() -> None:
    data, summary = smoothed(
        det(("deer family", 0.8)), det(("white-tailed deer", 0.9)), det(("mule deer", 0.9)), det(("mule deer", 0.7))
    )
    assert [c[0][0] for c in lists(data)] == [
        ID["mule deer"],
        ID["white-tailed deer"],
        ID["mule deer"],
        ID["mule deer"],
    ]
    assert summary.changed["taxonomic"] == 1


def test_taxonomic_rule_can_be_turned_off() -> None:
    data, summary = smoothed(
        det(("carnivore", 0.8)), det(("coyote", 0.9)), propagate_classifications_through_taxonomy=False
    )
    assert lists(data)[0] == [[ID["carnivore"], 0.8]]
    assert summary.detections_changed == 0


def test_same_family_rule_is_off_by_default() -> None:
    data, summary = smoothed(det(("white-tailed deer", 0.9)), det(("white-tailed deer", 0.9)), det(("elk", 0.8)))
    assert lists(data)[2] == [[ID["elk"], 0.8]]
    assert summary.detections_changed == 0


def test_same_family_rule_overwrites_another_genus_of_the_family() -> None:
    data, summary = smoothed(
        det(("white-tailed deer", 0.9)), det(("white-tailed deer", 0.9)), det(("elk", 0.8)),
        max_detections_nondominant_class_same_family=1,
    )  # fmt: skip
    assert lists(data)[2] == [[ID["white-tailed deer"], 0.8]]
    assert summary.changed == {"other": 0, "dominant": 0, "taxonomic": 0, "same_family": 1}


def test_same_family_rule_never_turns_a_species_into_its_genus() -> None:
    data, summary = smoothed(
        det(("canis", 0.9)), det(("canis", 0.9)), det(("coyote", 0.8)),
        max_detections_nondominant_class_same_family=1, propagate_classifications_through_taxonomy=False,
    )  # fmt: skip
    assert lists(data)[2] == [[ID["coyote"], 0.8]]
    assert summary.detections_changed == 0


@pytest.mark.parametrize(
    "odd",
    [
        det(("other", 0.9), conf=0.1),  # detection below --detection-confidence-threshold
        det(("other", 0.4)),  # top score below --classification-confidence-threshold
        det(("other", 0.9), category="2"),  # a person box
    ],
)
def test_detections_below_thresholds_or_not_animals_neither_vote_nor_change(odd: dict[str, Any]) -> None:
    data, summary = smoothed(det(("cattle", 0.9)), det(("cattle", 0.8)), odd)
    assert lists(data)[2] == odd["classifications"]
    assert summary.detections_changed == 0


def test_lists_are_sorted_most_confident_first_and_info_records_the_step() -> None:
    data, summary = smoothed(det(("elk", 0.2), ("cattle", 0.7)))
    assert lists(data) == [[[ID["cattle"], 0.7], [ID["elk"], 0.2]]]
    record = data["info"]["classification_postprocessing"][-1]
    assert record["step"] == "smooth" and record["level"] == "image" and record["method"] == "counts"
    assert record["detections_changed"] == {"other": 0, "dominant": 0, "taxonomic": 0, "same_family": 0}
    assert record["options"]["min_detections_to_overwrite_secondary"] == 4
    assert data["info"]["classifier_metadata"] == {"typical_classification_threshold": 0.75}


# --- the probabilities method


def probability_image() -> list[dict[str, Any]]:
    return [
        det(("white-tailed deer", 0.9), ("mule deer", 0.1), conf=0.9),
        det(("white-tailed deer", 0.8), ("elk", 0.2), conf=0.9),
        det(("elk", 0.6), ("white-tailed deer", 0.4), conf=0.5),
    ]


def test_probabilities_relabel_when_the_weighted_mean_clears_the_threshold() -> None:
    data, summary = smoothed(*probability_image(), method="probabilities")
    # weights 0.9, 0.9, 0.5: deer (0.81 + 0.72 + 0.2) / 2.3, elk (0.18 + 0.3) / 2.3, mule deer 0.09 / 2.3
    mean = [[ID["white-tailed deer"], 0.7522], [ID["elk"], 0.2087], [ID["mule deer"], 0.0391]]
    assert lists(data) == [[[ID["white-tailed deer"], 0.9], [ID["mule deer"], 0.1]],
                           [[ID["white-tailed deer"], 0.8], [ID["elk"], 0.2]], mean]  # fmt: skip
    assert data["images"][0]["detections"][2]["raw_classifications"] == [
        [ID["elk"], 0.6],
        [ID["white-tailed deer"], 0.4],
    ]
    assert summary.changed == {"probabilities": 1}


def test_probabilities_leave_the_group_below_the_threshold() -> None:
    data, summary = smoothed(*probability_image(), method="probabilities", evidence_threshold=0.76)
    assert lists(data)[2] == [[ID["elk"], 0.6], [ID["white-tailed deer"], 0.4]]
    assert summary.changed == {"probabilities": 0}


# --- rollup


def rolled(*detections: dict[str, Any], threshold: float = 0.6, semantics: str = "megaclassifier",
           fence: RollupFence | None = None) -> tuple[dict, Any]:  # fmt: skip
    data = results([image("a.jpg", *detections)])
    return data, rollup_results(data, threshold, semantics=semantics, fence=fence)


def test_rollup_to_a_new_genus_class() -> None:
    data, summary = rolled(det(("white-tailed deer", 0.45), ("mule deer", 0.2), ("elk", 0.15), ("cattle", 0.1)))
    assert lists(data)[0] == [["14", 0.65], [ID["white-tailed deer"], 0.45], [ID["mule deer"], 0.2],
                              [ID["elk"], 0.15], [ID["cattle"], 0.1]]  # fmt: skip
    assert data["classification_categories"]["14"] == "odocoileus"
    added = parse_description(data["classification_category_descriptions"]["14"])
    assert added is not None and added.tokens == ("mammalia", "cetartiodactyla", "cervidae", "odocoileus", "")
    assert summary.changed == {"species": 0, "genus": 1, "family": 0, "order": 0, "class": 0}
    assert summary.classes_added == ["odocoileus"]
    assert data["info"]["classification_postprocessing"][0]["semantics"] == "megaclassifier"


def test_rollup_to_an_existing_family_class_folds_its_own_score() -> None:
    data, summary = rolled(det(("white-tailed deer", 0.3), ("deer family", 0.2), ("elk", 0.1), ("cattle", 0.1)))
    assert lists(data)[0] == [[ID["deer family"], 0.6], [ID["white-tailed deer"], 0.3], [ID["elk"], 0.1],
                              [ID["cattle"], 0.1]]  # fmt: skip
    assert summary.changed["family"] == 1 and summary.classes_added == []


def test_rollup_leaves_confident_and_unresolved_detections() -> None:
    confident = det(("coyote", 0.8), ("gray wolf", 0.1))
    unresolved = det(("coyote", 0.3), ("white-tailed deer", 0.3), ("other", 0.3))
    data, summary = rolled(confident, unresolved, threshold=0.7)
    assert lists(data) == [confident["classifications"], unresolved["classifications"]]
    assert summary.detections_changed == 0


TIE = (("white-tailed deer", 0.3), ("mule deer", 0.3), ("coyote", 0.3))  # the genus sums to 0.6 exactly
TWO_CLASSES = (("coyote", 0.3), ("wild turkey", 0.3), ("other", 0.3))  # only the kingdom passes 0.5


def test_rollup_semantics_speciesnet_is_strict_and_goes_to_the_kingdom() -> None:
    data, summary = rolled(det(*TIE), det(*TWO_CLASSES), det(("coyote", 0.8), ("gray wolf", 0.1)),
                           det(("white-tailed deer", 0.45), ("mule deer", 0.2), ("elk", 0.15)),
                           semantics="speciesnet", threshold=0.6)  # fmt: skip
    # 0.6 is not above 0.6: the genus, family and order fail, the class mammalia (0.9) passes
    assert lists(data)[0] == [[ID["mammal"], 0.9], *det(*TIE)["classifications"]]
    assert lists(data)[1] == det(*TWO_CLASSES)["classifications"]  # the kingdom's 0.6 is not above 0.6
    assert lists(data)[2] == [[ID["coyote"], 0.8], [ID["gray wolf"], 0.1]]  # its top passes: kept
    assert lists(data)[3][0] == ["14", 0.65]
    assert summary.changed == {"genus": 1, "family": 0, "order": 0, "class": 1, "kingdom": 0}
    data, summary = rolled(det(*TWO_CLASSES), semantics="speciesnet", threshold=0.5)
    # coyote and turkey meet only in the kingdom (other is no taxon): the file's "animal" class
    assert lists(data)[0] == [[ID["animal"], 0.6], *det(*TWO_CLASSES)["classifications"]]
    assert summary.changed["kingdom"] == 1 and summary.classes_added == []


def test_rollup_semantics_megaclassifier_takes_the_tie_and_stops_at_the_class() -> None:
    data, _ = rolled(det(*TIE), det(*TWO_CLASSES), threshold=0.5)
    assert lists(data)[0][0] == ["14", 0.6]  # genus odocoileus reaches 0.5 ... at 0.6
    data, _ = rolled(det(*TIE), det(*TWO_CLASSES), threshold=0.6)
    assert lists(data) == [[["14", 0.6], *det(*TIE)["classifications"]], det(*TWO_CLASSES)["classifications"]]


def test_rollup_semantics_megadetector_keeps_the_raw_top_and_starts_at_the_species() -> None:
    data, summary = rolled(det(*TIE), det(("coyote", 0.65), ("gray wolf", 0.1)), det(("coyote", 0.3)),
                           semantics="megadetector", threshold=0.6)  # fmt: skip
    assert lists(data) == [[[ID["mammal"], 0.9], *det(*TIE)["classifications"]],
                           [[ID["coyote"], 0.65], [ID["gray wolf"], 0.1]], [[ID["coyote"], 0.3]]]  # fmt: skip
    assert summary.changed == {"species": 0, "genus": 0, "family": 0, "order": 0, "class": 1, "kingdom": 0}


def test_rollup_with_a_geofence_passes_over_fenced_taxa() -> None:
    def deer() -> dict[str, Any]:
        return det(("white-tailed deer", 0.45), ("mule deer", 0.2), ("elk", 0.15), ("cattle", 0.1))

    fence = RollupFence({"mammalia;cetartiodactyla;cervidae;odocoileus;": {"allow": {"CAN": []}}}, "USA")
    data, summary = rolled(deer(), semantics="speciesnet", fence=fence)
    assert lists(data)[0][0] == [ID["deer family"], 0.8]  # odocoileus (0.65) is fenced out in the USA
    data, _ = rolled(deer(), semantics="speciesnet", fence=RollupFence(fence.geofence, "CAN"))
    assert lists(data)[0][0] == ["14", 0.65]
    blocked = RollupFence({"mammalia;cetartiodactyla;cervidae;odocoileus;virginianus": {"block": {"USA": []}}}, "USA")
    confident = (("white-tailed deer", 0.7), ("elk", 0.2), ("cattle", 0.1))
    # megadetector: a fenced-out top goes first through SpeciesNet's geofence roll-up, family..kingdom
    data, summary = rolled(det(*confident), semantics="megadetector", fence=blocked)
    assert lists(data)[0][0] == [ID["deer family"], 0.9] and summary.changed["family"] == 1
    # speciesnet (standalone): a fenced top is rolled up like an uncertain one, from the genus
    data, summary = rolled(det(*confident), semantics="speciesnet", fence=blocked)
    assert lists(data)[0][0] == ["14", 0.7] and summary.changed["genus"] == 1
    record = data["info"]["classification_postprocessing"][0]
    assert (record["semantics"], record["country"], record["admin1_region"]) == ("speciesnet", "USA", None)


def test_rollup_without_taxonomy_says_so() -> None:
    data = results([image("a.jpg", det(("coyote", 0.3)))], taxonomy=False)
    with pytest.raises(TaxonomyNeededError, match=r"^x.json: rollup needs a taxonomy: .* give --taxonomy FILE$"):
        rollup_results(data, 0.6, source="x.json")


# --- restrict


@pytest.fixture()
def taxa_list(tmp_path: Any) -> Any:
    path = tmp_path / "taxa.csv"
    path.write_text("latin,common\ncervidae,deer family\ncanis latrans,coyote\nbos taurus,cattle\n", encoding="utf-8")
    return path


def four_detections() -> dict[str, Any]:
    return results([image("a.jpg",
        det(("white-tailed deer", 0.5), ("elk", 0.3), ("gray wolf", 0.2)),
        det(("wild turkey", 0.6), ("coyote", 0.3)),
        det(("wild turkey", 0.7)),
        det(("coyote", 0.8), ("other", 0.1)),
    )])  # fmt: skip


def test_restrict_megadetector_relabels_in_place(taxa_list: Any) -> None:
    data = four_detections()
    summary = restrict_results(data, taxa_list)
    # each entry keeps its score; elk lands on the deer family after the deer, so only the first stays;
    # the wolf goes to canis (an ancestor of the listed coyote); no bird is listed: the turkey is "animal"
    assert lists(data) == [[[ID["deer family"], 0.5], [ID["canis"], 0.2]], [[ID["animal"], 0.6], [ID["coyote"], 0.3]],
                           [[ID["animal"], 0.7]], [[ID["coyote"], 0.8], [ID["other"], 0.1]]]  # fmt: skip
    detections = data["images"][0]["detections"]
    assert detections[2]["raw_classifications"] == [[ID["wild turkey"], 0.7]]
    assert "raw_classifications" not in detections[3]
    assert summary.changed == {"moved": 1, "to_animal": 2}
    assert data["info"]["classification_postprocessing"][0]["semantics"] == "megadetector"


def test_restrict_megaclassifier_moves_sums_drops_and_renormalises(taxa_list: Any) -> None:
    data = four_detections()
    summary = restrict_results(data, taxa_list, semantics="megaclassifier")
    # deer and elk sum into the listed family; the wolf goes to canis (an ancestor of the listed coyote);
    # no bird is listed, so the turkey is dropped and the rest scaled back up to the list's total
    assert lists(data) == [[[ID["deer family"], 0.8], [ID["canis"], 0.2]], [[ID["coyote"], 0.9]], None,
                           [[ID["coyote"], 0.8], [ID["other"], 0.1]]]  # fmt: skip
    detections = data["images"][0]["detections"]
    assert detections[2]["raw_classifications"] == [[ID["wild turkey"], 0.7]]
    assert "raw_classifications" not in detections[3]
    assert summary.changed == {"moved": 2, "left_unclassified": 1}


def test_restrict_megaclassifier_writes_4_decimals(taxa_list: Any) -> None:
    data = results([image("a.jpg", det(("white-tailed deer", 0.5), ("wild turkey", 0.2), ("elk", 0.1)))])
    restrict_results(data, taxa_list, semantics="megaclassifier")
    assert lists(data) == [[[ID["deer family"], 0.8]]]  # 0.6 scaled by 0.8 / 0.6, 0.8000000000000002 unrounded
    data = results([image("a.jpg", det(("white-tailed deer", 0.41), ("wild turkey", 0.3), ("coyote", 0.2)))])
    restrict_results(data, taxa_list, semantics="megaclassifier")
    assert lists(data) == [[[ID["deer family"], 0.6116], [ID["coyote"], 0.2984]]]


def test_restrict_adds_a_class_for_a_listed_taxon(tmp_path: Any) -> None:
    path = tmp_path / "taxa.csv"
    path.write_text("latin,common\ncanidae,dog family\n", encoding="utf-8")
    data = results([image("a.jpg", det(("coyote", 0.5), ("gray wolf", 0.3), ("cattle", 0.2)))])
    summary = restrict_results(data, path, semantics="megaclassifier")
    assert lists(data) == [[["14", 0.8], [ID["mammal"], 0.2]]]
    assert data["classification_categories"]["14"] == "dog family"
    assert summary.classes_added == ["dog family"]
    data = results([image("a.jpg", det(("coyote", 0.5), ("gray wolf", 0.3), ("cattle", 0.2)))])
    restrict_results(data, path)
    assert lists(data) == [[["14", 0.5], [ID["mammal"], 0.2]]]


def test_restrict_list_naming_no_known_taxon(tmp_path: Any) -> None:
    path = tmp_path / "taxa.csv"
    path.write_text("latin,common\npanthera leo,lion\n", encoding="utf-8")
    data = results([image("a.jpg", det(("coyote", 0.5)))])
    with pytest.raises(InputFileError) as e:
        restrict_results(data, path, source="in.json")
    assert str(e.value) == (
        f"{path}: none of its 1 taxa is a taxon of in.json (e.g. 'panthera leo'); "
        "give Latin names (binomials for species)"
    )


# --- taxonomy strings and sequences


def test_description_round_trip() -> None:
    taxon = parse_description("abc;Mammalia;Carnivora;Canidae;Canis;Latrans;Coyote|other;;;;;;x")
    assert taxon == Taxon(("mammalia", "carnivora", "canidae", "canis", "latrans"), "coyote", "abc")
    assert (taxon.rank, taxon.latin, taxon.description()) == (
        7, "canis latrans", "abc;mammalia;carnivora;canidae;canis;latrans;coyote")  # fmt: skip
    assert taxon.at_depth(3).latin == "canidae" and taxon.at_depth(3).rank == 5


def test_sequences_split_at_gaps_per_camera() -> None:
    def t(s: str) -> dt.datetime:
        return dt.datetime(2024, 1, 1, *map(int, s.split(":")))

    times = {"a/cam1/1.jpg": t("10:00:00"), "a/cam1/2.jpg": t("10:00:50"), "a/cam1/3.jpg": t("10:02:00"),
             "a/cam2/1.jpg": t("10:00:10"), "b/x.jpg": None}  # fmt: skip
    by_folder = sequences_from_times(times, camera_depth=None, gap_seconds=60)
    assert (by_folder.count, by_folder.without_time) == (4, 1)
    assert by_folder.of["a/cam1/1.jpg"][0] == by_folder.of["a/cam1/2.jpg"][0] != by_folder.of["a/cam1/3.jpg"][0]
    assert by_folder.of["a/cam1/2.jpg"][1] == 1
    by_site = sequences_from_times(times, camera_depth=1, gap_seconds=60)
    assert by_site.count == 3
    assert [by_site.of[f] for f in ("a/cam1/1.jpg", "a/cam2/1.jpg", "a/cam1/2.jpg")] == [(1, 0), (1, 1), (1, 2)]
    assert camera_of("a\\cam1\\1.jpg", None) == "a/cam1" and camera_of("1.jpg", 2) == ""


def test_parse_exif_time() -> None:
    assert parse_exif_time("2016:09:25 18:35:10\x00") == dt.datetime(2016, 9, 25, 18, 35, 10)
    assert parse_exif_time("    :  :     :  :  ") is None and parse_exif_time(None) is None
