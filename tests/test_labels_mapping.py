"""Tests of the taxonomy tree and ``map_categories`` (spec §4)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from helpers import write_json
from hypothesis import given, settings
from hypothesis import strategies as st

from megaclassifier.errors import InputFileError, LabelSpecError
from megaclassifier.labels.mapping import build_mapping, expand_label_specs, map_categories
from megaclassifier.labels.taxonomy import (
    TaxonomyRow,
    build_taxonomy,
    load_taxonomy_csv,
    parse_taxonomy_string,
    read_taxonomy_rows,
)

TAXONOMY = Path(__file__).parent / "data" / "labels" / "taxonomy.csv"
TAXONOMY_HEADER = "dataset_name,query,taxonomy_level,scientific_name,taxonomy_string\n"


def taxon(level: str, name: str) -> dict[str, str]:
    return {"level": level, "name": name}


TARGETS = {
    "cervid": {"taxa": [taxon("family", "cervidae")]},
    "cattle": {"taxa": [taxon("family", "bovidae")]},
    "bird": {"taxa": [taxon("class", "aves")]},
}
CLASSIFIER = {
    "deer": {"dataset_labels": {"ds1": ["deer"]}},
    "elk": {"taxa": [taxon("species", "cervus canadensis")]},
    "cow": {"dataset_labels": {"ds1": ["cow"]}},
    "bear": {"taxa": [taxon("family", "ursidae")]},
}
# spec §4, verified against the reference
SPEC_OUTPUT = '{\n "cervid": [\n  "deer",\n  "elk"\n ],\n "cattle": [\n  "cow"\n ],\n "other": [\n  "bear"\n ]\n}'


def run_map(tmp_path: Path, targets: dict, classifier: dict, **kwargs: Any) -> dict[str, list[str]]:
    out = tmp_path / "mapping.json"
    map_categories(
        write_json(tmp_path / "targets.json", targets),
        write_json(tmp_path / "classifier.json", classifier),
        kwargs.pop("taxonomy", TAXONOMY),
        output=out,
        **kwargs,
    )
    return json.loads(out.read_text(encoding="utf-8"))


# the taxonomy


def test_fixture_dag_becomes_a_tree() -> None:
    tax = load_taxonomy_csv(TAXONOMY)
    # two parents, one above the other: the lower one stays
    assert tax.parent[("family", "cervidae")] == ("order", "artiodactyla")
    # two unrelated parents: the reference's fixed choice
    assert tax.parent[("family", "cathartidae")] == ("order", "accipitriformes")
    assert ("family", "cathartidae") not in tax.children[("order", "cathartiformes")]
    assert tax.parent[("class", "mammalia")] is None
    assert tax.descendants(("order", "artiodactyla")) == {
        ("order", "artiodactyla"), ("family", "cervidae"), ("family", "bovidae"), ("genus", "odocoileus"),
        ("genus", "cervus"), ("genus", "bos"), ("species", "odocoileus virginianus"),
        ("species", "cervus canadensis"), ("species", "bos taurus"),
    }  # fmt: skip
    # lower-cased; the row without a taxonomy is skipped
    assert tax.dataset_labels[("ds2", "turkey vulture")] == ("species", "cathartes aura")
    assert ("ds2", "unknown animal") not in tax.dataset_labels
    assert len(tax.dataset_labels) == 9


def test_tree_conversion_changes_the_mapping(tmp_path: Path) -> None:
    # in the DAG both orders would contain the vultures, and the targets would overlap
    targets = {"raptor": {"taxa": [taxon("order", "accipitriformes")]},
               "new world vulture": {"taxa": [taxon("order", "cathartiformes")]}}  # fmt: skip
    classifier = {"vulture": {"dataset_labels": {"DS2": ["black vulture", "Turkey vulture"]}},
                  "hawk": {"dataset_labels": {"ds2": ["hawk"]}},
                  "turkey": {"taxa": [taxon("Order", "Galliformes")]}}  # fmt: skip
    assert run_map(tmp_path, targets, classifier) == {"raptor": ["hawk", "vulture"], "other": ["turkey"]}


def rows(*ancestries: list[tuple[str, str]]) -> list[TaxonomyRow]:
    return [TaxonomyRow(line=i + 2, dataset="ds", label=f"l{i}", ancestry=tuple(a)) for i, a in enumerate(ancestries)]


def test_lower_parent_kept_among_three() -> None:
    g, f, o, c = ("genus", "g"), ("family", "f"), ("order", "o"), ("class", "c")
    tax = build_taxonomy(rows([("species", "s"), g, f, o, c], [("species", "s"), o], [("species", "s"), c]))
    assert tax.parent[("species", "s")] == g


def test_unrelated_parents_are_an_error() -> None:
    s = ("species", "felis catus")
    with pytest.raises(LabelSpecError) as info:
        build_taxonomy(rows([s, ("genus", "felis")], [s, ("genus", "catus")]), source="tax.csv")
    assert str(info.value) == (
        "tax.csv: taxon (species, felis catus) has parents (genus, felis) (line 2) and (genus, catus) (line 3), "
        "and none of them lies below the others; make its taxonomy_string rows agree on one ancestry"
    )


def test_exception_applies_only_to_its_parent() -> None:
    # cathartidae between two orders that are not the fixed choice is still an error
    node = ("family", "cathartidae")
    with pytest.raises(LabelSpecError, match=r"taxon \(family, cathartidae\) has parents"):
        build_taxonomy(rows([node, ("order", "a")], [node, ("order", "b")]))
    tax = build_taxonomy(rows([("genus", "x"), node, ("order", "cathartiformes")],
                              [node, ("order", "accipitriformes")]))  # fmt: skip
    assert tax.parent[node] == ("order", "accipitriformes")


def test_cycle_is_an_error() -> None:
    a, b = ("genus", "a"), ("genus", "b")
    cycle = r"^t: the taxonomy has a cycle: \(genus, a\) -> \(genus, b\) -> \(genus, a\)$"
    with pytest.raises(LabelSpecError, match=cycle):
        build_taxonomy(rows([a, b], [b, a]), source="t")
    with pytest.raises(LabelSpecError, match=r"line 2: taxon \(genus, a\) is its own parent"):
        build_taxonomy(rows([a, a]), source="t")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[(1, 'genus', 'bos', []), (2, 'family', 'bovidae', ['cattle'])]",
         [(1, "genus", "bos", []), (2, "family", "bovidae", ["cattle"])]),
        ("[[1, 'genus', 'bos', ()]]", [(1, "genus", "bos", [])]),
        ("[]", []),
    ],
)  # fmt: skip
def test_parse_taxonomy_string(text: str, expected: list) -> None:
    assert parse_taxonomy_string(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os')", "is not a Python literal list of (id, level, name, common_names) tuples"),
        ("(1, 'genus', 'bos', [])", "must be a list of (id, level, name, common_names) tuples, got a tuple"),
        ("[(1, 'genus', 'bos')]",
         "entry 0 is (1, 'genus', 'bos'); expected (taxon_id: int, level: str, name: str, common_names: list)"),
        ("[('1', 'genus', 'bos', [])]",
         "entry 0 is ('1', 'genus', 'bos', []); expected (taxon_id: int, level: str, name: str, common_names: list)"),
    ],
)  # fmt: skip
def test_parse_taxonomy_string_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_taxonomy_string(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("ds,cow,species,bos taurus,\"[(1, 'genus', 'bos', [])]\"\n",
         "line 2: taxonomy_level and scientific_name (species, bos taurus) differ from the first taxonomy_string "
         "entry (genus, bos)"),
        ("ds,cow,genus,bos,\"[(1, 'genus', 'bos')]\"\n",
         "line 2: taxonomy_string entry 0 is (1, 'genus', 'bos'); expected (taxon_id: int, level: str, name: str, "
         "common_names: list)"),
        ("\nds,cow,genus,bos,\"[(1, 'genus', 'bos', [])]\",x\n", "line 3: 6 fields, the header has 5"),
        ("ds,cow,genus,bos,\"[(1, 'genus'\n", "line 2: not valid CSV (unexpected end of data)"),
    ],
)  # fmt: skip
def test_taxonomy_csv_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "tax.csv"
    path.write_text(TAXONOMY_HEADER + body, encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        read_taxonomy_rows(path)
    assert str(info.value) == f"{path}: {message}"


def test_taxonomy_csv_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "tax.csv"
    path.write_text("dataset_name,query,scientific_name\n", encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        read_taxonomy_rows(path)
    assert str(info.value) == (
        f"{path}: missing column(s) taxonomy_level, taxonomy_string; a taxonomy CSV has the columns "
        "dataset_name,query,taxonomy_level,scientific_name,taxonomy_string"
    )


# map_categories


def test_spec_example_exact(tmp_path: Path) -> None:
    out = tmp_path / "mapping.json"
    result = map_categories(
        write_json(tmp_path / "targets.json", TARGETS), write_json(tmp_path / "classifier.json", CLASSIFIER),
        TAXONOMY, output=out,
    )  # fmt: skip
    assert out.read_text(encoding="utf-8") == SPEC_OUTPUT
    assert (result.targets, result.classifier_labels, result.other) == (3, 4, 1)


def test_output_without_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    map_categories(write_json(Path("t.json"), TARGETS), write_json(Path("c.json"), CLASSIFIER), TAXONOMY,
                   output="out.json")  # fmt: skip
    assert Path("out.json").read_text(encoding="utf-8") == SPEC_OUTPUT


def test_classifier_label_index_restricts(tmp_path: Path) -> None:
    index = write_json(tmp_path / "index.json", {"0": "elk", "1": "bear"})
    assert run_map(tmp_path, TARGETS, CLASSIFIER, classifier_label_index=index) == {
        "cervid": ["elk"], "other": ["bear"],
    }  # fmt: skip
    bad = write_json(tmp_path / "bad.json", {"0": "elk", "1": "moose", "2": "wolf"})
    with pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, TARGETS, CLASSIFIER, classifier_label_index=bad)
    assert str(info.value) == f"{bad}: 2 label(s) not in {tmp_path / 'classifier.json'}: 'moose', 'wolf'"


def test_exclude_and_descendants(tmp_path: Path) -> None:
    targets = {"ungulate": {"taxa": [taxon("order", "artiodactyla")],
                            "exclude": {"dataset_labels": {"ds1": ["cow"]}}},
               "cattle": {"taxa": [taxon("family", "bovidae")]}}  # fmt: skip
    classifier = {"mammal": {"taxa": [taxon("class", "mammalia")],
                             "exclude": {"taxa": [taxon("order", "artiodactyla"), taxon("family", "ursidae")]}},
                  "deer": {"taxa": [taxon("family", "cervidae")]},
                  "cow": {"taxa": [taxon("species", "bos taurus")]},
                  "bear": {"taxa": [taxon("genus", "ursus")]}}  # fmt: skip
    # bovidae is still "ungulate" (only the cow species was excluded), so the targets share it
    with pytest.raises(LabelSpecError, match=r"labels 'ungulate' and 'cattle' share taxa: \(family, bovidae\)"):
        run_map(tmp_path, targets, classifier)
    targets["ungulate"]["exclude"] = {"taxa": [taxon("family", "bovidae")]}
    assert run_map(tmp_path, targets, classifier) == {
        "ungulate": ["deer"], "cattle": ["cow"], "other": ["bear", "mammal"],
    }  # fmt: skip


def test_labels_sharing_taxa(tmp_path: Path) -> None:
    classifier = {"deer": {"taxa": [taxon("family", "cervidae")]}, "elk": {"dataset_labels": {"ds1": ["elk"]}}}
    with pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, TARGETS, classifier)
    assert str(info.value) == (
        f"{tmp_path / 'classifier.json'}: labels 'deer' and 'elk' share taxa: (species, cervus canadensis); "
        "a taxon may belong to one label only (use exclude)"
    )


def test_partial_overlap(tmp_path: Path) -> None:
    targets = {"wapiti": {"taxa": [taxon("genus", "cervus")]}}
    classifier = {"deer": {"taxa": [taxon("family", "cervidae")]}}
    with pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, targets, classifier)
    assert str(info.value) == (
        "target 'wapiti' and classifier label 'deer' overlap only partly: both have (genus, cervus), "
        "(species, cervus canadensis); only 'deer' has (family, cervidae), (genus, odocoileus), "
        "(species, odocoileus virginianus)"
    )


def test_label_spanning_two_targets_is_a_partial_overlap(tmp_path: Path) -> None:
    targets = {"deer": {"taxa": [taxon("genus", "odocoileus")]}, "elk": {"taxa": [taxon("genus", "cervus")]}}
    classifier = {"cervid": {"taxa": [taxon("family", "cervidae")]}}
    with pytest.raises(LabelSpecError, match=r"^target 'deer' and classifier label 'cervid' overlap only partly"):
        run_map(tmp_path, targets, classifier)


def test_label_matching_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    classifier = {**CLASSIFIER, "unicorn": {"taxa": [taxon("genus", "monoceros")]}}
    with caplog.at_level(logging.WARNING), pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, TARGETS, classifier)
    assert str(info.value) == (
        f"{tmp_path / 'classifier.json'}: label 'unicorn' matches no taxon of {TAXONOMY}; "
        "check its taxa and dataset_labels"
    )
    assert "label 'unicorn': taxon (genus, monoceros) not in" in caplog.text


def test_unknown_dataset_label(tmp_path: Path) -> None:
    classifier = {"x": {"dataset_labels": {"ds2": ["unknown animal"]}}}
    with pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, TARGETS, classifier)
    assert str(info.value) == (
        f"{tmp_path / 'classifier.json'}: label 'x': dataset label (ds2, unknown animal) is not in {TAXONOMY} "
        "(or its taxonomy_string is empty)"
    )


def test_target_named_other(tmp_path: Path) -> None:
    with pytest.raises(LabelSpecError) as info:
        run_map(tmp_path, {**TARGETS, "other": {"taxa": [taxon("class", "mammalia")]}}, CLASSIFIER)
    assert str(info.value) == (
        f'{tmp_path / "targets.json"}: the target spec must not define "other": it collects the labels of no target'
    )
    with pytest.raises(LabelSpecError, match='^the target spec must not define "other"'):
        build_mapping({"other": set()}, {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([], 'expected a non-empty JSON object {"label": {"taxa": [...], ...}, ...}'),
        ({"a": []}, "label 'a': expected an object with taxa, dataset_labels or exclude"),
        ({"a": {"taxa": [{"level": "genus"}]}},
         """label 'a': "taxa" must be a list of {"level": ..., "name": ...} objects"""),
        ({"a": {"dataset_labels": {"ds": "x"}}},
         """label 'a': "dataset_labels" must be an object {"dataset": ["label", ...]}"""),
        ({"a": {"exclude": {"taxa": 1}}},
         """label 'a' exclude: "taxa" must be a list of {"level": ..., "name": ...} objects"""),
    ],
)  # fmt: skip
def test_spec_shape_errors(tmp_path: Path, spec: Any, message: str) -> None:
    with pytest.raises(InputFileError) as info:
        run_map(tmp_path, TARGETS, spec)
    assert str(info.value) == f"{tmp_path / 'classifier.json'}: {message}"


# property: every classifier label lands in exactly one target


@st.composite
def forests(draw: st.DrawFn) -> list[int | None]:
    """Parent index of each node of a random forest (None for a root)."""
    n = draw(st.integers(1, 25))
    return [None] + [draw(st.one_of(st.none(), st.integers(0, i - 1))) for i in range(1, n)]


def forest_taxonomy(parents: list[int | None]):
    def ancestry(i: int) -> list[tuple[str, str]]:
        chain = []
        node: int | None = i
        while node is not None:
            chain.append(("clade", f"t{node}"))
            node = parents[node]
        return chain

    return build_taxonomy(
        [TaxonomyRow(line=i + 2, dataset="ds", label=f"t{i}", ancestry=tuple(ancestry(i))) for i in range(len(parents))]
    )


def antichain(taxonomy, picks: list[int]) -> list[int]:
    """Drop picks that lie above or below an earlier pick."""
    chosen: list[int] = []
    for i in picks:
        below = taxonomy.descendants(("clade", f"t{i}"))
        if all(("clade", f"t{j}") not in below and ("clade", f"t{i}") not in taxonomy.descendants(("clade", f"t{j}"))
               for j in chosen):  # fmt: skip
            chosen.append(i)
    return chosen


def check_exactly_once(mapping: dict[str, list[str]], labels: list[str]) -> None:
    placed = [label for members in mapping.values() for label in members]
    assert sorted(placed) == sorted(labels)
    assert all(members for members in mapping.values())


@settings(max_examples=200, deadline=None)
@given(data=st.data(), parents=forests())
def test_leaf_labels_each_land_in_one_target(data: st.DataObject, parents: list[int | None]) -> None:
    tax = forest_taxonomy(parents)
    picks = data.draw(st.lists(st.integers(0, len(parents) - 1), max_size=6))
    targets = {f"T{i}": {"taxa": [taxon("clade", f"t{i}")]} for i in antichain(tax, picks)}
    leaves = [i for i in range(len(parents)) if i not in parents]
    classifier = {f"L{i}": {"dataset_labels": {"ds": [f"t{i}"]}} for i in leaves}
    mapping = build_mapping(expand_label_specs(targets, tax), expand_label_specs(classifier, tax))
    check_exactly_once(mapping, list(classifier))
    for target, members in mapping.items():
        for label in members:
            inside = ("clade", f"t{label[1:]}") in tax.descendants(("clade", f"t{target[1:]}"))
            assert (
                inside
                if target != "other"
                else not any(("clade", f"t{label[1:]}") in tax.descendants(("clade", f"t{t[1:]}")) for t in targets)
            )


@settings(max_examples=200, deadline=None)
@given(data=st.data(), parents=forests())
def test_any_disjoint_labels_land_once_or_raise(data: st.DataObject, parents: list[int | None]) -> None:
    tax = forest_taxonomy(parents)
    n = len(parents)
    targets = {f"T{i}": {"taxa": [taxon("clade", f"t{i}")]}
               for i in antichain(tax, data.draw(st.lists(st.integers(0, n - 1), max_size=5)))}  # fmt: skip
    classifier = {
        f"L{i}": {"taxa": [taxon("clade", f"t{i}")]}
        for i in antichain(tax, data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)))
    }
    try:
        mapping = build_mapping(expand_label_specs(targets, tax), expand_label_specs(classifier, tax))
    except LabelSpecError as e:
        assert "overlap only partly" in str(e)
        return
    check_exactly_once(mapping, list(classifier))
