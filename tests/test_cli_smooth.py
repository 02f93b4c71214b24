"""``megaclassifier smooth``, ``restrict``, ``rollup`` and ``merge --taxonomy`` through the CLI.

The file commands stream their input; their output equals what the in-memory
functions make of the same file, is laid out as every results file we write
(indent 1), and passes MegaDetector's validator. Bad input gets one line.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from megadetector.postprocessing.validate_batch_results import ValidateBatchResultsOptions, validate_batch_results
from PIL import Image
from smooth_data import ID, cct_sequences, det, image, random_results, results

from megaclassifier.cli import cli
from megaclassifier.formats.naming import crop_filename
from megaclassifier.postprocess import SmoothOptions, restrict_results, rollup_results, smooth_results

REPO = Path(__file__).resolve().parents[1]
TAXA = "latin,common\ncervidae,deer family\ncanis latrans,coyote\nbos taurus,cattle\n"


def invoke(args: list[Any], exit_code: int = 0) -> Result:
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exit_code == exit_code, (result.output, result.exception)
    return result


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def check_output(path: Path, expected: dict) -> None:
    """Same content as the in-memory result, our usual layout, valid for MegaDetector."""
    text = path.read_text(encoding="utf-8")
    got = json.loads(text)
    assert text == json.dumps(got, indent=1)
    for data in (got, expected):
        for step in data["info"]["classification_postprocessing"]:
            step.get("options", {}).pop("sequences", None)
    assert got == expected
    options = ValidateBatchResultsOptions()
    options.raise_errors = False
    assert validate_batch_results(str(path), options)["validation_results"]["errors"] == []


def test_smooth_file_equals_in_memory(tmp_path: Path) -> None:
    data = random_results(11)
    source = write(tmp_path / "in.json", data)
    result = invoke(["smooth", source, tmp_path / "out.json", "--rollup", 0.6])
    expected = copy.deepcopy(data)
    summary = smooth_results(expected, SmoothOptions(rollup=0.6))
    check_output(tmp_path / "out.json", expected)
    rules = ", ".join(f"{k} {v}" for k, v in summary.changed.items())
    assert result.output == (
        f"Wrote smoothed results to {tmp_path / 'out.json'}: {summary.detections_changed} changes ({rules}) in "
        f"{summary.groups_changed} images, of {summary.detections_classified} classified detections\n"
    )
    assert summary.changed["rollup"] > 0 and summary.changed["dominant"] > 0


@pytest.mark.parametrize("method", ["counts", "probabilities"])
def test_smooth_sequences_from_cct_equals_in_memory(tmp_path: Path, method: str) -> None:
    data = random_results(12)
    cct = tmp_path / "cct.json"
    cct.write_text(json.dumps(cct_sequences(data, 12)), encoding="utf-8")
    source = write(tmp_path / "in.json", data)
    args = ["--level", "sequence", "--sequences", cct, "--method", method, "--evidence-threshold", 0.5]
    invoke(["smooth", source, tmp_path / "out.json", *args, "--rollup", 0.7])
    expected = copy.deepcopy(data)
    options = SmoothOptions(level="sequence", sequences=cct, method=method, evidence_threshold=0.5, rollup=0.7)
    summary = smooth_results(expected, options)
    check_output(tmp_path / "out.json", expected)
    assert summary.detections_changed > 0 and summary.sequences is not None and summary.sequences.count == 31


def jpeg(path: Path, when: str | None) -> None:
    exif = Image.Exif()
    if when is not None:
        exif.get_ifd(0x8769)[36867] = when
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (90, 120, 60)).save(path, exif=exif)


def test_smooth_sequences_from_exif(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for name, when in [("cam1/a.jpg", "2024:01:01 10:00:00"), ("cam1/b.jpg", "2024:01:01 10:00:40"),
                       ("cam1/c.jpg", "2024:01:01 10:05:00"), ("cam1/d.jpg", None)]:  # fmt: skip
        jpeg(photos / name, when)
    data = results([
        image("cam1/a.jpg", det(("coyote", 0.9)), det(("coyote", 0.8))),
        image("cam1/b.jpg", det(("other", 0.7))),
        image("cam1/c.jpg", det(("other", 0.7))),
        image("cam1/d.jpg", det(("other", 0.7))),
    ])  # fmt: skip
    source = write(tmp_path / "in.json", data)
    result = invoke(["smooth", source, tmp_path / "out.json", "--level", "sequence", "--images-dir", photos])
    out = read(tmp_path / "out.json")
    assert [im["detections"][-1]["classifications"] for im in out["images"]] == [
        [[ID["coyote"], 0.8]], [[ID["coyote"], 0.7]], [[ID["other"], 0.7]], [[ID["other"], 0.7]]
    ]  # fmt: skip
    assert result.output.endswith(
        ": 1 changes (other 1, dominant 0, taxonomic 0, same_family 0) in 1 sequences, of 5 classified detections; "
        "3 sequences, 1 images without a time stayed alone\n"
    )
    record = out["info"]["classification_postprocessing"][0]
    assert record["sequences"] == {"source": "exif", "count": 3, "images_without_time": 1,
                                   "images_not_in_sequences": 0, "sequence_images_missing_from_results": 0}  # fmt: skip


@pytest.mark.parametrize("semantics", ["megadetector", "megaclassifier"])
def test_restrict_file_equals_in_memory(tmp_path: Path, semantics: str) -> None:
    data = random_results(13)
    source = write(tmp_path / "in.json", data)
    taxa = tmp_path / "taxa.csv"
    taxa.write_text(TAXA, encoding="utf-8")
    args = [] if semantics == "megadetector" else ["--semantics", semantics]
    result = invoke(["restrict", source, tmp_path / "restricted.json", "--taxa", taxa, *args])
    expected = copy.deepcopy(data)
    summary = restrict_results(expected, taxa, semantics=semantics)
    check_output(tmp_path / "restricted.json", expected)
    if semantics == "megadetector":
        rest = f"{summary.changed['to_animal']} to animal (no listed ancestor)"
    else:
        rest = f"{summary.changed['left_unclassified']} left without a listed class"
    assert result.output == (
        f"Wrote restricted results to {tmp_path / 'restricted.json'}: {summary.changed['moved']} detections moved "
        f"to listed taxa, {rest}, of {summary.detections_classified} classified detections\n"
    )
    assert min(summary.changed.values()) > 0
    assert read(tmp_path / "restricted.json")["info"]["classification_postprocessing"][0]["semantics"] == semantics


@pytest.mark.parametrize("semantics", ["speciesnet", "megadetector", "megaclassifier"])
def test_rollup_file_equals_in_memory(tmp_path: Path, semantics: str) -> None:
    data = random_results(13)
    source = write(tmp_path / "in.json", data)
    args = [] if semantics == "speciesnet" else ["--semantics", semantics]
    result = invoke(["rollup", source, tmp_path / "rolled.json", "--threshold", 0.6, *args])
    expected = copy.deepcopy(data)
    summary = rollup_results(expected, 0.6, semantics=semantics)
    check_output(tmp_path / "rolled.json", expected)
    levels = ", ".join(f"{level} {n}" for level, n in summary.changed.items())
    assert result.output == (
        f"Wrote rolled-up results to {tmp_path / 'rolled.json'}: {summary.detections_changed} detections rolled up "
        f"({levels}), of {summary.detections_classified} classified detections\n"
    )
    assert summary.changed["genus"] > 0 and summary.changed["family"] > 0
    order = {"speciesnet": ["genus", "family", "order", "class", "kingdom"],
             "megadetector": ["species", "genus", "family", "order", "class", "kingdom"],
             "megaclassifier": ["species", "genus", "family", "order", "class"]}  # fmt: skip
    assert list(summary.changed) == order[semantics]


def test_rollup_country_reads_a_release_geofence(tmp_path: Path) -> None:
    data = results([image("a.jpg", det(("white-tailed deer", 0.45), ("mule deer", 0.2), ("elk", 0.15)))])
    source = write(tmp_path / "in.json", data)
    geofence = write(
        tmp_path / "geofence.json", {"mammalia;cetartiodactyla;cervidae;odocoileus;": {"block": {"USA": ["ID"]}}}
    )
    release = tmp_path / "release"
    release.mkdir()
    write(release / "geofence_release.json", read(geofence))
    info = {"version": "9.9", "type": "always_crop", "classifier": "c.pt", "classifier_labels": "l.txt",
            "detector": "md_v5a.0.0.pt", "taxonomy": "t.txt", "geofence": "geofence_release.json"}  # fmt: skip
    write(release / "info.json", info)
    for name in ("c.pt", "l.txt", "t.txt"):
        (release / name).write_text("", encoding="utf-8")
    tops = {}
    places = {"nowhere": [], "USA-ID": ["--country", "usa", "--admin1-region", "id", "--geofence", geofence],
              "USA-MT": ["--country", "USA", "--admin1-region", "MT", "--geofence", release]}  # fmt: skip
    for where, args in places.items():
        invoke(["rollup", source, tmp_path / "out.json", "-t", 0.6, *args])
        out = read(tmp_path / "out.json")
        tops[where] = (out["classification_categories"][out["images"][0]["detections"][0]["classifications"][0][0]],
                       out["images"][0]["detections"][0]["classifications"][0][1])  # fmt: skip
    assert tops == {"nowhere": ("odocoileus", 0.65), "USA-ID": ("deer family", 0.8), "USA-MT": ("odocoileus", 0.65)}
    assert out["info"]["classification_postprocessing"][0]["country"] == "USA"
    assert error_of(["rollup", source, tmp_path / "o.json", "-t", 0.6, "--country", "USA"], 2) == (
        "Error: --country and --geofence go together"
    )
    assert error_of(["rollup", source, tmp_path / "o.json", "-t", 0.6, "--admin1-region", "ID"], 2) == (
        "Error: --admin1-region needs --country"
    )
    args = ["rollup", source, tmp_path / "o.json", "-t", 0.6, "--country", "USA", "--geofence", geofence]
    assert error_of([*args, "--semantics", "megaclassifier"], 2) == (
        "Error: --country: the megaclassifier semantics has no geofence (use speciesnet)"
    )
    bad = write(tmp_path / "bad.json", [1, 2])
    args = ["rollup", source, tmp_path / "o.json", "-t", 0.6, "--country", "USA", "--geofence"]
    assert error_of([*args, bad]) == f"Error: {bad}: not a geofence (a JSON object of taxa to allow/block rules)"
    (tmp_path / "empty").mkdir()
    assert error_of([*args, tmp_path / "empty"]) == (
        f"Error: {tmp_path / 'empty'}: a folder without info.json; expected a SpeciesNet release folder"
    )
    assert not (tmp_path / "o.json").exists()


def test_smooth_rollup_semantics(tmp_path: Path) -> None:
    data = random_results(13)
    source = write(tmp_path / "in.json", data)
    for semantics in ("speciesnet", "megaclassifier"):
        invoke(["smooth", source, tmp_path / "out.json", "--rollup", 0.6, "--rollup-semantics", semantics])
        expected = copy.deepcopy(data)
        smooth_results(expected, SmoothOptions(rollup=0.6, rollup_semantics=semantics))
        check_output(tmp_path / "out.json", expected)
        options = read(tmp_path / "out.json")["info"]["classification_postprocessing"][0]["options"]
        assert options["rollup_semantics"] == semantics
    invoke(["smooth", source, tmp_path / "out.json"])
    assert "rollup_semantics" not in read(tmp_path / "out.json")["info"]["classification_postprocessing"][0]["options"]


def test_rollup_with_the_reference_taxonomy_csv(tmp_path: Path) -> None:
    data = results([image("a.jpg", det(("white-tailed deer", 0.4), ("elk", 0.3)))], taxonomy=False)
    data["classification_categories"] = {ID["white-tailed deer"]: "deer", ID["elk"]: "elk"}
    source = write(tmp_path / "in.json", data)
    taxonomy = REPO / "tests" / "data" / "labels" / "taxonomy.csv"
    invoke(
        ["rollup", source, tmp_path / "out.json", "-t", 0.6, "--taxonomy", taxonomy, "--semantics", "megaclassifier"]
    )
    out = read(tmp_path / "out.json")
    assert out["images"][0]["detections"][0]["classifications"] == [
        ["3", 0.7], [ID["white-tailed deer"], 0.4], [ID["elk"], 0.3]
    ]  # fmt: skip
    assert out["classification_categories"]["3"] == "cervidae"
    assert out["classification_category_descriptions"]["3"].split(";")[1:] == [
        "mammalia", "artiodactyla", "cervidae", "", "", "cervidae"
    ]  # fmt: skip


# --- bad input: one line, exit 1, nothing written


def error_of(args: list[Any], exit_code: int = 1) -> str:
    result = invoke(args, exit_code)
    lines = result.output.splitlines()
    assert len(lines) == 1 if exit_code == 1 else True, result.output
    return lines[-1]


def test_unclassified_results(tmp_path: Path) -> None:
    detections = REPO / "demo" / "data" / "detections.json"
    line = error_of(["smooth", detections, tmp_path / "out.json"])
    assert line == (
        f'Error: {detections}: no "classification_categories": these results are not classified '
        "(run merge or run first)"
    )
    data = results([image("a.jpg", det(), det())])
    source = write(tmp_path / "in.json", data)
    for command in (["smooth"], ["rollup", "-t", 0.5]):
        line = error_of([command[0], source, tmp_path / "out.json", *command[1:]])
        assert line == (
            f'Error: {source}: no detection has "classifications": these results are not classified '
            "(run merge or run first)"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.json"]


def test_rule_needing_a_taxonomy_says_so(tmp_path: Path) -> None:
    source = write(tmp_path / "in.json", random_results(1, 10, taxonomy=False))
    expected = (
        f"Error: {source}: rollup needs a taxonomy: the file has no classification_category_descriptions naming "
        "taxa; give --taxonomy FILE"
    )
    assert error_of(["rollup", source, tmp_path / "out.json", "-t", 0.6]) == expected
    assert error_of(["smooth", source, tmp_path / "out.json", "--rollup", 0.6]) == expected
    taxa = tmp_path / "taxa.csv"
    taxa.write_text(TAXA, encoding="utf-8")
    assert error_of(["restrict", source, tmp_path / "out.json", "--taxa", taxa]) == expected.replace(
        "rollup needs", "restrict needs"
    )


def test_taxa_list_naming_no_known_taxon(tmp_path: Path) -> None:
    source = write(tmp_path / "in.json", random_results(1, 10))
    taxa = tmp_path / "taxa.csv"
    taxa.write_text("latin,common\npanthera leo,lion\nloxodonta africana,elephant\n", encoding="utf-8")
    assert error_of(["restrict", source, tmp_path / "out.json", "--taxa", taxa]) == (
        f"Error: {taxa}: none of its 2 taxa is a taxon of {source} (e.g. 'panthera leo'); "
        "give Latin names (binomials for species)"
    )
    taxa.write_text("species,name\ncanis latrans,coyote\n", encoding="utf-8")
    assert error_of(["restrict", source, tmp_path / "out.json", "--taxa", taxa]) == (
        f"Error: {taxa}: no latin or common column; a taxa list has the columns latin,common"
    )


def test_sequence_file_whose_images_do_not_match(tmp_path: Path) -> None:
    source = write(tmp_path / "in.json", random_results(1, 10))
    cct = tmp_path / "cct.json"
    cct.write_text(json.dumps({"images": [{"file_name": "elsewhere/x.jpg", "seq_id": "s1"}]}), encoding="utf-8")
    args = ["smooth", source, tmp_path / "out.json", "--level", "sequence", "--sequences", cct]
    assert error_of(args) == (
        f"Error: {cct}: none of its 1 images is in {source} (e.g. 'elsewhere/x.jpg'); "
        "file_name must match the results' file paths"
    )
    cct.write_text(json.dumps({"images": [{"file_name": "x.jpg"}]}), encoding="utf-8")
    assert error_of(args) == f'Error: {cct}: images[0] needs "file_name" and "seq_id"'
    assert not (tmp_path / "out.json").exists()


def test_bad_json_and_usage_errors(tmp_path: Path) -> None:
    source = tmp_path / "in.json"
    source.write_text('{"images": [{"file": "a.jpg", "detections": [', encoding="utf-8")
    assert error_of(["smooth", source, tmp_path / "out.json"]).startswith(f"Error: {source}: not valid JSON (")
    good = write(tmp_path / "good.json", random_results(1, 10))
    unknown = results([image("a.jpg", det(("coyote", 0.9))), image("b.jpg", det(), det(("elk", 0.5)))])
    unknown["images"][1]["detections"][1]["classifications"][0][0] = "99"
    for command in (["smooth"], ["rollup", "-t", 0.5]):
        line = error_of([command[0], write(tmp_path / "unknown.json", unknown), tmp_path / "out.json", *command[1:]])
        assert line == (
            f'Error: {tmp_path / "unknown.json"}: images[1] ("b.jpg") detection 1: class "99" is not in '
            '"classification_categories"'
        )
    line = error_of(["smooth", good, tmp_path / "out.json", "--level", "sequence"], exit_code=2)
    assert line == "Error: --level sequence needs --sequences CCT.json or --images-dir DIR"
    line = error_of(["smooth", good, good], exit_code=1)
    assert line == f"Error: {good}: is the input file; choose another output file"


# --- merge --taxonomy


def test_merge_writes_descriptions(tmp_path: Path) -> None:
    box = {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]}
    md = {"info": {"format_version": "1.4", "detector": "md_v5a.0.0.pt"}, "detection_categories": {"1": "animal"},
          "images": [{"file": "a.jpg", "detections": [box]}]}  # fmt: skip
    detections = write(tmp_path / "md.json", md)
    probs = tmp_path / "probs.csv"
    probs.write_text(f"path,deer,cow,empty\n{crop_filename('a.jpg', 0, 'md_v5a.0.0.pt')},0.7,0.2,0.1\n")
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"0": "deer", "1": "cow", "2": "empty"}))
    taxonomy = REPO / "tests" / "data" / "labels" / "taxonomy.csv"
    invoke(["merge", probs, labels, "-o", tmp_path / "out.json", "-n", "m", "-j", detections, "--taxonomy", taxonomy])
    out = read(tmp_path / "out.json")
    tokens = {k: v.split(";")[1:] for k, v in out["classification_category_descriptions"].items()}
    assert tokens == {
        "0": ["mammalia", "artiodactyla", "cervidae", "odocoileus", "virginianus", "deer"],
        "1": ["mammalia", "artiodactyla", "bovidae", "bos", "taurus", "cow"],
        "2": ["", "", "", "", "", "empty"],
    }
    # and smooth reads them back from the file
    invoke(["rollup", tmp_path / "out.json", tmp_path / "rolled.json", "-t", 0.85])
    rolled = read(tmp_path / "rolled.json")
    assert rolled["images"][0]["detections"][0]["classifications"][0] == ["3", 0.9]
    assert rolled["classification_categories"]["3"] == "artiodactyla"


def test_smooth_does_not_import_torch(tmp_path: Path) -> None:
    source = write(tmp_path / "in.json", random_results(1, 10))
    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        f"for args in (['smooth', {str(source)!r}, {str(tmp_path / 'o.json')!r}], ['restrict', '--help']):\n"
        "    try:\n"
        "        cli.main(['-q', *args], prog_name='megaclassifier')\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'torchvision', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "[]"


def test_streamed_file_keeps_key_order_and_unknown_fields(tmp_path: Path) -> None:
    data = results([image("a.jpg", det(("coyote", 0.9), ("elk", 0.05))), image("b.jpg")])
    data = {"images": data.pop("images"), **data, "extra": {"note": "kept", "values": [1, 2.5, None, True]}}
    data["images"][1]["detections"] = None
    data["images"][1]["failure"] = "image access failure"
    source = write(tmp_path / "in.json", data)
    invoke(["smooth", source, tmp_path / "out.json"])
    text = (tmp_path / "out.json").read_text(encoding="utf-8")
    out = json.loads(text)
    assert list(out) == list(data) and out["extra"] == data["extra"] and out["images"] == data["images"]
    assert text == json.dumps(out, indent=1)
    empty = write(tmp_path / "empty.json", {**data, "images": []})
    assert error_of(["smooth", empty, tmp_path / "out2.json"]) == (
        f'Error: {empty}: no detection has "classifications": these results are not classified (run merge or run first)'
    )


@pytest.mark.testdata
def test_smooth_sequences_from_exif_of_the_full_size_photos(cameratrap: Path, tmp_path: Path) -> None:
    """The real photos' EXIF times: the three elephant photos taken at 08:43:15 are one sequence (the greyscale
    copy has no EXIF time and stays alone); its 'other' boxes follow the sequence's coyote, as above."""
    data = results([
        image("african_elephants.jpg", det(("coyote", 0.9)), det(("coyote", 0.8))),
        image("african_elephants_truncated_file.jpg", det(("other", 0.7))),
        image("african_elephants_with_exif_orientation.jpg", det(("other", 0.7))),
        image("african_elephants_bw.jpg", det(("other", 0.7))),
        image("ocelot.jpg", det(("other", 0.7))),
    ])  # fmt: skip
    source = write(tmp_path / "in.json", data)
    result = invoke(["smooth", source, tmp_path / "out.json", "--level", "sequence", "--images-dir",
                     cameratrap / "images"])  # fmt: skip
    out = read(tmp_path / "out.json")
    assert [im["detections"][-1]["classifications"] for im in out["images"]] == [
        [[ID["coyote"], 0.8]], [[ID["coyote"], 0.7]], [[ID["coyote"], 0.7]], [[ID["other"], 0.7]], [[ID["other"], 0.7]]
    ]  # fmt: skip
    record = out["info"]["classification_postprocessing"][0]
    assert record["sequences"] == {"source": "exif", "count": 3, "images_without_time": 1,
                                   "images_not_in_sequences": 0, "sequence_images_missing_from_results": 0}  # fmt: skip
    assert result.output.endswith("3 sequences, 1 images without a time stayed alone\n")
