"""Tests of the label-specification CSV and ``csv_to_json`` (spec §3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from megaclassifier.errors import InputFileError
from megaclassifier.labels.spec_csv import csv_to_json, parse_label_spec_text, parse_prioritize

HEADER = "output_label,type,content\n"

# spec §3, verified against the reference
SPEC_ROWS = """\
cervid,row,idfg|deer
cervid,row,idfg|elk
cervid,row,idfg_swwlf_2019|elk
cervid,max_count,50000
cervid,family,cervidae
cervid,datasettaxon,idfg|family|cervidae
bird,row,idfg_swwlf_2019|bird
bird,class,aves
bird,max_count,50000
bird,prioritize,"[['idfg_swwlf_2019'], ['idfg']]"
!bird,row,idfg_swwlf_2019|turkey
!bird,genus,meleagris
"""
SPEC_JSON = (
    '{"cervid": {"dataset_labels": {"idfg": ["deer", "elk"], "idfg_swwlf_2019": ["elk"]}, '
    '"taxa": [{"level": "family", "name": "cervidae"}, {"level": "family", "name": "cervidae", '
    '"datasets": ["idfg"]}], "max_count": 50000}, "bird": {"dataset_labels": {"idfg_swwlf_2019": ["bird"]}, '
    '"taxa": [{"level": "class", "name": "aves"}], "exclude": {"dataset_labels": {"idfg_swwlf_2019": ["turkey"]}, '
    '"taxa": [{"level": "genus", "name": "meleagris"}]}, "max_count": 50000, '
    '"prioritize": [["idfg_swwlf_2019"], ["idfg"]]}}'
)


def test_spec_example_exact(tmp_path: Path) -> None:
    src = tmp_path / "spec.csv"
    src.write_text(HEADER + SPEC_ROWS, encoding="utf-8")
    out = tmp_path / "sub" / "spec.json"
    result = csv_to_json(src, out)
    assert out.read_text(encoding="utf-8") == SPEC_JSON
    assert (result.labels, result.rows) == (2, 12)


def test_json_indent(tmp_path: Path) -> None:
    src = tmp_path / "spec.csv"
    src.write_text(HEADER + SPEC_ROWS, encoding="utf-8")
    out = tmp_path / "spec.json"
    csv_to_json(src, out, json_indent=1)
    assert out.read_text(encoding="utf-8") == json.dumps(json.loads(SPEC_JSON), indent=1)


def test_non_ascii_is_escaped(tmp_path: Path) -> None:
    src = tmp_path / "spec.csv"
    src.write_text(HEADER + "chevreuil,row,fr|chevreuil européen\n", encoding="utf-8")
    out = tmp_path / "spec.json"
    csv_to_json(src, out)
    assert out.read_text(encoding="ascii") == '{"chevreuil": {"dataset_labels": {"fr": ["chevreuil europ\\u00e9en"]}}}'


def test_comments_blank_lines_and_bom() -> None:
    text = (
        "\ufeff# a label spec\n"
        "output_label,type,content  # the header may carry a comment\n"
        "\n"
        "   \n"
        "deer,genus,odocoileus# no space before the comment\n"
        "# deer,genus,cervus\n"
        "deer,prioritize,\"[['a'], ['b']]\"#\n"
    )
    assert parse_label_spec_text(text) == {
        "deer": {"taxa": [{"level": "genus", "name": "odocoileus"}], "prioritize": [["a"], ["b"]]}
    }


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings(newline: str) -> None:
    text = newline.join(["output_label,type,content", "", "deer,genus,odocoileus", "deer,max_count,x", ""])
    with pytest.raises(InputFileError, match=r"^<text>: line 4: max_count must be an integer, got 'x'$"):
        parse_label_spec_text(text)


def test_hash_inside_quoted_field_starts_a_comment() -> None:
    # as the reference: the rest of the line goes, so the quote is never closed
    with pytest.raises(InputFileError, match=r"^x\.csv: line 2: not valid CSV"):
        parse_label_spec_text(HEADER + 'deer,row,"ds|a#b"\n', source="x.csv")


def test_exclude_only_label_and_key_order() -> None:
    text = HEADER + "!cat,max_count,3\n!cat,family,felidae\n!cat,row,ds|lynx\ndog,max_count,7\ndog,genus,canis\n"
    spec = parse_label_spec_text(text)
    assert json.dumps(spec) == (
        '{"cat": {"exclude": {"dataset_labels": {"ds": ["lynx"]}, "taxa": [{"level": "family", "name": "felidae"}], '
        '"max_count": 3}}, "dog": {"taxa": [{"level": "genus", "name": "canis"}], "max_count": 7}}'
    )


def test_nothing_is_lower_cased_or_stripped() -> None:
    spec = parse_label_spec_text(HEADER + "Deer,Genus,Odocoileus \n")
    assert spec == {"Deer": {"taxa": [{"level": "Genus", "name": "Odocoileus "}]}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file; expected the header output_label,type,content"),
        ("# only a comment\n\n", "empty file; expected the header output_label,type,content"),
        ("label,type,content\n", "line 1: header must be output_label,type,content, got 'label,type,content'"),
        ("output_label,type\n", "line 1: header must be output_label,type,content, got 'output_label,type'"),
        (HEADER + "\ndeer,row,idfg\n", "line 3: a 'row' needs content dataset|dataset_label, got 'idfg'"),
        (HEADER + "deer,row,a|b|c\n", "line 2: a 'row' needs content dataset|dataset_label, got 'a|b|c'"),
        (HEADER + "deer,row,|deer\n", "line 2: a 'row' needs content dataset|dataset_label, got '|deer'"),
        (
            HEADER + "deer,datasettaxon,idfg|genus\n",
            "line 2: a 'datasettaxon' needs content dataset|taxon_level|taxon_name, got 'idfg|genus'",
        ),
        (HEADER + "deer,max_count,lots\n", "line 2: max_count must be an integer, got 'lots'"),
        (HEADER + "deer,max_count,1.5\n", "line 2: max_count must be an integer, got '1.5'"),
        (
            HEADER + "deer,prioritize,\"__import__('os').system('true')\"\n",
            "line 2: prioritize must be a list of lists of dataset names, e.g. [['ds1'], ['ds2', 'ds3']]; "
            "got \"__import__('os').system('true')\"",
        ),
        (
            HEADER + "deer,prioritize,\"['a', 'b']\"\n",
            "line 2: prioritize must be a list of lists of dataset names, e.g. [['ds1'], ['ds2', 'ds3']]; "
            "got \"['a', 'b']\"",
        ),
        (HEADER + "deer,genus\n", "line 2: expected 3 fields output_label,type,content, got 2: ['deer', 'genus']"),
        (
            HEADER + "deer,genus,cervus,x\n",
            "line 2: expected 3 fields output_label,type,content, got 4: ['deer', 'genus', 'cervus', 'x']",
        ),
        (HEADER + "deer,,cervus\n", "line 2: empty type"),
        (HEADER + "deer,genus,\n", "line 2: empty content"),
        (HEADER + "!,genus,cervus\n", "line 2: '!' names no label after the '!'"),
        (HEADER + 'deer,genus,"cervus\n', "line 2: not valid CSV (unexpected end of data)"),
    ],
)
def test_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InputFileError) as info:
        parse_label_spec_text(text, source="spec.csv")
    assert str(info.value) == f"spec.csv: {message}"


def test_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(HEADER.encode() + "cerf,row,fr|chevreuil europ\xe9en\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"latin1\.csv: line 2: not UTF-8 text \(byte 53\); save the CSV as UTF-8"):
        csv_to_json(bad, tmp_path / "out.json")
    with pytest.raises(InputFileError, match=r"missing\.csv: no such file$"):
        csv_to_json(tmp_path / "missing.csv", tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    ("content", "expected"),
    [("[]", []), ("[[]]", [[]]), (" [['a'], ['b', 'c']] ", [["a"], ["b", "c"]])],
)
def test_parse_prioritize(content: str, expected: list[list[str]]) -> None:
    assert parse_prioritize(content) == expected


@pytest.mark.parametrize("content", ["['a']", "[('a',)]", "[[1]]", "{'a': 1}", "[[a]]", "[['a']] + [['b']]", "("])
def test_parse_prioritize_rejects(content: str) -> None:
    with pytest.raises(InputFileError):
        parse_prioritize(content)


# property: arbitrary text never raises anything but the project's own error

_fields = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["row", "datasettaxon", "max_count", "prioritize", "genus", "!x", "x", "a|b", "a|b|c", "12"]),
    st.sampled_from(["[['a']]", "[[", "[['a'], [1]]", "'a'", "1e400", "[" * 200, "\x00", "\r", '"', "#"]),
)
_lines = st.lists(_fields, min_size=0, max_size=4).map(lambda fs: ",".join(fs))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_raises_only_input_file_error(text: str) -> None:
    try:
        spec = parse_label_spec_text(text)
    except InputFileError:
        return
    json.dumps(spec)


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines, max_size=8))
def test_arbitrary_rows_raise_only_input_file_error(lines: list[str]) -> None:
    try:
        spec = parse_label_spec_text(HEADER + "\n".join(lines))
    except InputFileError:
        return
    json.dumps(spec)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_in_a_file_raise_only_input_file_error(tmp_path: Path, data: bytes) -> None:
    src = tmp_path / "spec.csv"
    src.write_bytes(data)
    try:
        csv_to_json(src, tmp_path / "out.json")
    except InputFileError:
        return
    json.loads((tmp_path / "out.json").read_text(encoding="ascii"))
