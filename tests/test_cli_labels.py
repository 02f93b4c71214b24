"""CLI tests of ``csv-to-json``, ``map-categories`` and ``aggregate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from megaclassifier.cli import cli

TAXONOMY = Path(__file__).parent / "data" / "labels" / "taxonomy.csv"


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder so that messages show short relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("command", "example"),
    [
        ("csv-to-json", "megaclassifier csv-to-json idfg_label_spec.csv idfg_label_spec.json --json-indent 1"),
        ("map-categories", "-o idfg_to_megaclassifier_labels.json"),
        ("aggregate", "megaclassifier aggregate probs.csv.gz -t idfg_to_megaclassifier_labels.json"),
    ],
)
def test_help_has_summary_and_example(command: str, example: str) -> None:
    code, out, _ = invoke(command, "--help")
    assert code == 0
    assert "Example:" in out and example in out


def test_reference_option_names() -> None:
    _, out, _ = invoke("map-categories", "--help")
    assert "-o, --output FILE" in out and "-i, --classifier-label-index FILE" in out
    _, out, _ = invoke("aggregate", "--help")
    assert "-t, --target-mapping FILE" in out and "-o, --output-csv FILE" in out
    assert "-i, --output-label-index FILE" in out
    _, out, _ = invoke("csv-to-json", "--help")
    assert "--json-indent INTEGER RANGE" in out


def test_csv_to_json(in_tmp: Path) -> None:
    Path("spec.csv").write_text("output_label,type,content\ndeer,genus,odocoileus # white-tails\n", encoding="utf-8")
    code, out, err = invoke("csv-to-json", "spec.csv", "spec.json")
    assert (code, out) == (0, "")
    assert err == (
        "spec.csv: line 2: content 'odocoileus ' has surrounding spaces; kept as written\n"
        "Wrote 1 labels from 1 rows to spec.json\n"
    )
    assert Path("spec.json").read_text(encoding="utf-8") == (
        '{"deer": {"taxa": [{"level": "genus", "name": "odocoileus "}]}}'
    )
    code, _, _ = invoke("csv-to-json", "spec.csv", "spec2.json", "--json-indent", "2")
    assert code == 0
    assert Path("spec2.json").read_text(encoding="utf-8").startswith('{\n  "deer": {\n    "taxa"')


def test_csv_to_json_errors(in_tmp: Path) -> None:
    Path("spec.csv").write_text("output_label,type,content\ndeer,max_count,many\n", encoding="utf-8")
    code, _, err = invoke("csv-to-json", "spec.csv", "spec.json")
    assert (code, err) == (1, "Error: spec.csv: line 2: max_count must be an integer, got 'many'\n")
    assert not Path("spec.json").exists()
    code, _, err = invoke("csv-to-json", "spec.csv", "spec.json", "--json-indent", "-1")
    assert code == 2 and "Invalid value for '--json-indent': -1 is not in the range x>=0." in err
    code, _, err = invoke("csv-to-json", "nope.csv", "spec.json")
    assert code == 2 and "Invalid value for 'INPUT_CSV': File 'nope.csv' does not exist." in err


def write_specs() -> None:
    Path("targets.json").write_text(json.dumps({
        "cervid": {"taxa": [{"level": "family", "name": "cervidae"}]},
        "cattle": {"taxa": [{"level": "family", "name": "bovidae"}]},
    }), encoding="utf-8")  # fmt: skip
    Path("classifier.json").write_text(json.dumps({
        "deer": {"dataset_labels": {"ds1": ["deer"]}},
        "elk": {"dataset_labels": {"ds1": ["elk"]}},
        "cow": {"dataset_labels": {"ds1": ["cow"]}},
        "bear": {"taxa": [{"level": "genus", "name": "ursus"}]},
    }), encoding="utf-8")  # fmt: skip


def test_map_categories(in_tmp: Path) -> None:
    write_specs()
    code, out, err = invoke("map-categories", "targets.json", "classifier.json", str(TAXONOMY), "-o", "map.json")
    assert (code, out, err) == (0, "", "Mapped 4 classifier labels to 3 targets (1 to other); wrote map.json\n")
    assert json.loads(Path("map.json").read_text(encoding="utf-8")) == {
        "cervid": ["deer", "elk"], "cattle": ["cow"], "other": ["bear"],
    }  # fmt: skip
    Path("index.json").write_text('{"0": "cow", "1": "bear"}', encoding="utf-8")
    code, _, err = invoke("map-categories", "targets.json", "classifier.json", str(TAXONOMY),
                          "--output", "sub/map.json", "--classifier-label-index", "index.json")  # fmt: skip
    assert (code, err) == (0, "Mapped 2 classifier labels to 2 targets (1 to other); wrote sub/map.json\n")


def test_map_categories_errors(in_tmp: Path) -> None:
    write_specs()
    Path("classifier.json").write_text(json.dumps({
        "deer": {"taxa": [{"level": "family", "name": "cervidae"}]},
        "wapiti": {"taxa": [{"level": "genus", "name": "cervus"}]},
    }), encoding="utf-8")  # fmt: skip
    code, _, err = invoke("map-categories", "targets.json", "classifier.json", str(TAXONOMY), "-o", "map.json")
    assert (code, err) == (
        1,
        "Error: classifier.json: labels 'deer' and 'wapiti' share taxa: (genus, cervus), "
        "(species, cervus canadensis); a taxon may belong to one label only (use exclude)\n",
    )
    assert not Path("map.json").exists()
    code, _, err = invoke("map-categories", "targets.json", "classifier.json", str(TAXONOMY))
    assert code == 2 and "Missing option '-o' / '--output'." in err


def write_probs() -> None:
    Path("probs.csv").write_text("path,deer,elk,cow,bear\na.jpg,0.7,0.2,0.05,0.05\n", encoding="utf-8")
    Path("map.json").write_text('{"cervid": ["deer", "elk"], "cow": ["cow"], "other": ["bear"]}', encoding="utf-8")


def test_aggregate(in_tmp: Path) -> None:
    write_probs()
    code, out, err = invoke("aggregate", "probs.csv", "-t", "map.json", "-o", "out.csv", "-i", "index.json")
    assert (code, out, err) == (0, "", "Wrote 1 rows x 3 targets to out.csv and index.json\n")
    assert Path("out.csv").read_text(encoding="utf-8") == "path,cervid,cow,other\na.jpg,0.8999999999999999,0.05,0.05\n"
    assert Path("index.json").read_text(encoding="utf-8") == '{\n "0": "cervid",\n "1": "cow",\n "2": "other"\n}'
    code, _, _ = invoke("aggregate", "probs.csv", "--target-mapping", "map.json", "--output-csv", "o.csv.gz",
                        "--output-label-index", "i.json")  # fmt: skip
    assert code == 0 and Path("o.csv.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_aggregate_errors(in_tmp: Path) -> None:
    write_probs()
    Path("map.json").write_text('{"cervid": ["deer", "elk", "moose"], "cow": ["cow"]}', encoding="utf-8")
    code, _, err = invoke("aggregate", "probs.csv", "-t", "map.json", "-o", "out.csv", "-i", "index.json")
    assert (code, err) == (
        1,
        "Error: map.json does not map the columns of probs.csv exactly once; unmapped: bear (add them to a target, "
        'e.g. "other"); unknown: moose (not columns of the CSV)\n',
    )
    assert not Path("out.csv").exists() and not Path("index.json").exists()
    code, _, err = invoke("aggregate", "probs.csv", "-t", "map.json", "-o", "out.csv")
    assert code == 2 and "Missing option '-i' / '--output-label-index'." in err
