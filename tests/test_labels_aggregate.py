"""Tests of ``aggregate_probabilities`` (spec §5)."""

from __future__ import annotations

import gzip
import json
import math
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from helpers import write_text
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from megaclassifier.errors import InputFileError, LabelSpecError
from megaclassifier.formats.probabilities import load_label_index
from megaclassifier.labels.aggregate import aggregate_probabilities, load_target_mapping, sum_groups

MAPPING = {"cervid": ["deer", "elk"], "other": ["bear", "moose"], "cow": ["cow"]}
CSV_IN = (
    "path,deer,elk,cow,bear,moose\n"
    "a.jpg___crop00_md_v5a.0.0.pt.jpg,0.7,0.2,0.05,0.05,0.0\n"
    '"b,c.jpg___crop01_md_v5a.0.0.pt.jpg",0.09999,0.0,0.9,1e-05,9.99e-06\n'
)
# the reference's float64 sums, in sorted target order
CSV_OUT = (
    "path,cervid,cow,other\n"
    "a.jpg___crop00_md_v5a.0.0.pt.jpg,0.8999999999999999,0.05,0.05\n"
    '"b,c.jpg___crop01_md_v5a.0.0.pt.jpg",0.09999,0.9,1.999e-05\n'
)
INDEX_OUT = '{\n "0": "cervid",\n "1": "cow",\n "2": "other"\n}'


def run(tmp_path: Path, csv_text: str, mapping: object, *, out: str = "out.csv", **kwargs) -> Path:
    src = write_text(tmp_path / kwargs.pop("name", "probs.csv"), csv_text)
    target_mapping = tmp_path / "map.json"
    target_mapping.write_text(json.dumps(mapping), encoding="utf-8")
    result = aggregate_probabilities(
        src, target_mapping=target_mapping, output_csv=tmp_path / out, output_label_index=tmp_path / "index.json",
        **kwargs,
    )  # fmt: skip
    assert result.targets == len(mapping)  # type: ignore[arg-type]
    return tmp_path / out


def test_spec_example_exact(tmp_path: Path) -> None:
    out = run(tmp_path, CSV_IN, MAPPING)
    assert out.read_text(encoding="utf-8") == CSV_OUT
    assert (tmp_path / "index.json").read_text(encoding="utf-8") == INDEX_OUT
    assert load_label_index(tmp_path / "index.json") == ["cervid", "cow", "other"]


def test_gzip_in_and_out(tmp_path: Path) -> None:
    out = run(tmp_path, CSV_IN, MAPPING, name="probs.csv.gz", out="out.csv.gz")
    with gzip.open(out, "rt", encoding="utf-8", newline="") as f:
        assert f.read() == CSV_OUT


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
def test_chunks_give_the_same_output(tmp_path: Path, chunk_rows: int) -> None:
    rng = np.random.default_rng(0)
    values = rng.dirichlet(np.ones(5), size=7)
    text = "path,deer,elk,cow,bear,moose\n" + "".join(
        f"img{i}.jpg," + ",".join(repr(v) for v in row) + "\n" for i, row in enumerate(values.tolist())
    )
    out = run(tmp_path, text, MAPPING, chunk_rows=chunk_rows)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8
    for i, line in enumerate(lines[1:]):
        row = values[i].tolist()
        assert line == f"img{i}.jpg,{row[0] + row[1]!r},{row[2]!r},{row[3] + row[4]!r}"


def test_sum_order_follows_the_mapping() -> None:
    # 0.1 + 0.2 + 0.3 differs from 0.3 + 0.2 + 0.1 in float64
    values = np.array([[0.1, 0.2, 0.3]])
    assert sum_groups(values, [[0, 1, 2]])[0, 0] == 0.6000000000000001
    assert sum_groups(values, [[2, 1, 0]])[0, 0] == 0.6
    assert sum_groups(values, [[]]).tolist() == [[0.0]]


def test_label_column_is_dropped(tmp_path: Path) -> None:
    text = "path,deer,label,elk\na.jpg,0.25,deer,0.75\n"
    out = run(tmp_path, text, {"cervid": ["deer", "elk"]})
    assert out.read_text(encoding="utf-8") == "path,cervid\na.jpg,1.0\n"


def test_memory_stays_flat(tmp_path: Path) -> None:
    mapping = {"a": ["c0", "c1"], "b": ["c2", "c3", "c4", "c5"]}
    row = ",".join(["0.16666667"] * 6)

    def peak(rows: int) -> int:
        folder = tmp_path / str(rows)
        folder.mkdir()
        text = "path,c0,c1,c2,c3,c4,c5\n" + "".join(f"img{i:07d}.jpg,{row}\n" for i in range(rows))
        src = write_text(folder / "probs.csv", text)
        del text
        (folder / "map.json").write_text(json.dumps(mapping), encoding="utf-8")
        tracemalloc.start()
        try:
            aggregate_probabilities(src, target_mapping=folder / "map.json", output_csv=folder / "out.csv",
                                    output_label_index=folder / "index.json", chunk_rows=500)  # fmt: skip
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2_000), peak(40_000)
    assert large < 1.5 * small + 100_000, (small, large)


def test_failure_leaves_no_output(tmp_path: Path) -> None:
    text = "path,deer,elk\n" + "".join(f"img{i}.jpg,0.5,0.5\n" for i in range(10)) + "bad.jpg,0.5,oops\n"
    with pytest.raises(InputFileError, match=r"probs\.csv: line 12: not a number: 'oops'$"):
        run(tmp_path, text, {"cervid": ["deer", "elk"]}, chunk_rows=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "probs.csv"]


def test_unmapped_and_unknown_labels(tmp_path: Path) -> None:
    with pytest.raises(LabelSpecError) as info:
        run(tmp_path, CSV_IN, {"cervid": ["deer", "elk", "wapiti"], "cow": ["cow"], "other": ["moose", "aardvark"]})
    assert str(info.value) == (
        f"{tmp_path / 'map.json'} does not map the columns of {tmp_path / 'probs.csv'} exactly once; "
        'unmapped: bear (add them to a target, e.g. "other"); unknown: aardvark, wapiti (not columns of the CSV)'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.json", "probs.csv"]


def test_label_in_two_targets(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"cervid": ["deer", "elk"], "elk": ["elk"], "other": ["deer", "cow"]}), "utf-8")
    with pytest.raises(InputFileError) as info:
        load_target_mapping(path)
    assert str(info.value) == (
        f"{path}: labels in more than one target: 'deer' in 'cervid', 'other'; 'elk' in 'cervid', 'elk'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", 'expected a non-empty JSON object {"target": ["classifier label", ...], ...}'),
        ("{}", 'expected a non-empty JSON object {"target": ["classifier label", ...], ...}'),
        ('{"cervid": "deer"}', "target 'cervid': expected a list of classifier labels"),
        ('{"path": ["deer"]}', "target 'path': not a usable column name"),
        ("{", "not valid JSON (line 1 column 2: Expecting property name enclosed in double quotes)"),
    ],
)
def test_mapping_shape_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputFileError) as info:
        load_target_mapping(path)
    assert str(info.value) == f"{path}: {message}"


def test_duplicate_csv_columns(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"probs\.csv: duplicate columns: deer$"):
        run(tmp_path, "path,deer,elk,deer\na,0.1,0.2,0.7\n", {"cervid": ["deer", "elk"]})


# properties: every row keeps its sum


@st.composite
def partitions(draw: st.DrawFn) -> tuple[int, list[list[int]]]:
    """A column count and a random partition of its columns into groups, each in random order."""
    n = draw(st.integers(1, 12))
    owner = draw(st.lists(st.integers(0, n - 1), min_size=n, max_size=n))
    order = draw(st.permutations(list(range(n))))
    groups = [[c for c in order if owner[c] == g] for g in sorted(set(owner))]
    return n, groups


@settings(max_examples=300, deadline=None)
@given(data=st.data(), partition=partitions())
def test_sum_groups_keeps_row_sums(data: st.DataObject, partition: tuple[int, list[list[int]]]) -> None:
    n, groups = partition
    rows = data.draw(st.integers(0, 6))
    values = data.draw(arrays(np.float64, (rows, n), elements=st.floats(0, 1)))
    out = sum_groups(values, groups)
    assert out.shape == (rows, len(groups))
    for r in range(rows):
        assert math.isclose(math.fsum(out[r]), math.fsum(values[r]), rel_tol=1e-12, abs_tol=1e-12)
        for g, group in enumerate(groups):
            assert math.isclose(out[r, g], math.fsum(values[r, group]), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), partition=partitions())
def test_aggregated_files_keep_row_sums(data: st.DataObject, partition: tuple[int, list[list[int]]]) -> None:
    n, groups = partition
    rows = data.draw(st.integers(1, 5))
    values = data.draw(arrays(np.float32, (rows, n), elements=st.floats(0, 1, width=32)))
    labels = [f"class{c}" for c in range(n)]
    mapping = {f"target{g}": [labels[c] for c in group] for g, group in enumerate(groups)}
    text = (
        "path,"
        + ",".join(labels)
        + "\n"
        + "".join(f"img{r}.jpg," + ",".join(str(v) for v in values[r]) + "\n" for r in range(rows))
    )
    with tempfile.TemporaryDirectory() as folder:
        out = run(Path(folder), text, mapping, chunk_rows=data.draw(st.integers(1, 4)))
        lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "path," + ",".join(sorted(mapping))
    assert len(lines) == rows + 1
    for r, line in enumerate(lines[1:]):
        fields = line.split(",")
        assert fields[0] == f"img{r}.jpg"
        written = [float(x) for x in fields[1:]]
        expected = [float(str(v)) for v in values[r]]
        assert math.isclose(math.fsum(written), math.fsum(expected), rel_tol=1e-12, abs_tol=1e-12)
