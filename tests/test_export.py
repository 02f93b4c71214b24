"""Tests of ``megaclassifier export``: CSV/XLSX tables and Camtrap DP packages.

The packages are validated against the Camtrap DP 1.0.2 profile (jsonschema)
and table schemas (frictionless), offline copies in ../shared/reference.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import REQUIRE_TESTDATA, TESTDATA
from report_data import DEMO_DATA, write_classified_demo

from megaclassifier.cli import cli
from megaclassifier.export.camtrap import media_id
from megaclassifier.images.exif import CaptureTime, capture_time, parse_exif_time

REFERENCE = TESTDATA.parent / "reference" / "camtrap-dp-1.0.2"
UNFETCHABLE = [
    "https://specs.frictionlessdata.io/schemas/data-package.json",
    "http://json.schemastore.org/geojson.json",
]


DESCRIPTIONS = {
    "0": "a1b2;mammalia;proboscidea;elephantidae;loxodonta;africana;african elephant",
    "1": "c3d4;mammalia;cetartiodactyla;bovidae;;;bovine family",
    "2": "e5f6;;;;;;other",
}


def invoke(*args: object, exit_code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["export", *map(str, args)])
    assert result.exit_code == exit_code, result.output
    return result.output


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def reference() -> Path:
    if not (REFERENCE / "camtrap-dp-profile.json").is_file():
        message = f"Camtrap DP 1.0.2 schemas not found at {REFERENCE}"
        if REQUIRE_TESTDATA:
            pytest.fail(message + "; MEGACLASSIFIER_REQUIRE_TESTDATA=1 makes them mandatory")
        pytest.skip(message)
    return REFERENCE


def profile_errors(descriptor: dict, reference: Path) -> list[str]:
    """Errors of datapackage.json against the Camtrap DP profile (its remote $refs accept anything)."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    profile = json.loads((reference / "camtrap-dp-profile.json").read_text())
    registry = Registry().with_resources([(url, Resource.from_contents({}, DRAFT4)) for url in UNFETCHABLE])
    validator = jsonschema.Draft4Validator(
        profile, registry=registry, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    return [e.message for e in validator.iter_errors(descriptor)]


def table_errors(package: Path, reference: Path) -> list[tuple]:
    """Errors of the package's tables (types, constraints, keys) against the local table schemas."""
    import frictionless

    descriptor = json.loads((package / "datapackage.json").read_text())
    resources = []
    for resource in descriptor["resources"]:
        assert resource["schema"].startswith("https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/")
        local = json.loads((reference / f"{resource['name']}-table-schema.json").read_text())
        resources.append({**resource, "schema": local})
    report = frictionless.Package({"resources": resources}, basepath=str(package)).validate()
    return report.flatten(["rowNumber", "fieldName", "type", "note"])


@pytest.fixture
def package(cameratrap: Path, tmp_path: Path) -> Path:
    """A Camtrap DP package of the real test images: elephants, and cattle classified as ``other`` (no taxon)."""
    data = json.loads((cameratrap / "detections.json").read_text())
    for image in data["images"]:
        if image["file"].startswith("african_elephants"):
            for det in image["detections"]:
                det["classifications"] = [["0", 0.8], ["1", 0.15]]
        if image["file"] == "domestic_cattle.jpg":
            for det in image["detections"]:
                det["classifications"] = [["2", 0.6]]
    data["classification_categories"] = {"0": "african elephant", "1": "bovidae", "2": "other"}
    data["classification_category_descriptions"] = DESCRIPTIONS
    data["info"]["classifier"] = "synthetic_v1"
    (tmp_path / "classified.json").write_text(json.dumps(data))
    (tmp_path / "deployments.csv").write_text("folder,latitude,longitude,locationName\n.,-2.333,34.833,Serengeti\n")
    out = invoke(tmp_path / "classified.json", tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir",
                 cameratrap / "images", "--deployments", tmp_path / "deployments.csv", "--contributor", "Jane Doe",
                 "--contributor", "John Roe", "--project-title", "Test images", "--utc-offset", "+03:00")  # fmt: skip
    assert out.endswith(
        "Wrote a Camtrap DP package to " + str(tmp_path / "pkg")
        + ": 1 deployments, 11 media, 29 observations; 3 images without EXIF time left out\n"
    )  # fmt: skip
    return tmp_path / "pkg"


def test_camtrap_dp_package_is_valid(package: Path, reference: Path) -> None:
    assert sorted(p.name for p in package.iterdir()) == [
        "datapackage.json", "deployments.csv", "media.csv", "observations.csv",
    ]  # fmt: skip
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert profile_errors(descriptor, reference) == []
    assert table_errors(package, reference) == []


def test_camtrap_dp_validators_catch_errors(package: Path, reference: Path) -> None:
    """The two validators fail on a broken package, so their passing means something."""
    descriptor = json.loads((package / "datapackage.json").read_text())
    del descriptor["project"]["samplingDesign"]
    assert profile_errors(descriptor, reference) == ["'samplingDesign' is a required property"]
    media = (package / "media.csv").read_text()
    (package / "media.csv").write_text(media.replace(",.,activityDetection,", ",nowhere,activityDetection,", 1))
    assert [e[2] for e in table_errors(package, reference)] == ["foreign-key"]


def test_camtrap_dp_contents(package: Path) -> None:
    descriptor = json.loads((package / "datapackage.json").read_text())
    assert descriptor["profile"] == "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/camtrap-dp-profile.json"
    assert descriptor["contributors"] == [
        {"title": "Jane Doe", "role": "contact"},
        {"title": "John Roe", "role": "contributor"},
    ]
    assert descriptor["temporal"] == {"start": "2006-02-10", "end": "2024-01-21"}
    assert descriptor["spatial"] == {"type": "Point", "coordinates": [34.833, -2.333]}
    assert descriptor["taxonomic"] == [  # bovidae is never a top class: not listed
        {"scientificName": "Loxodonta africana", "taxonRank": "species", "class": "Mammalia", "order": "Proboscidea",
         "family": "Elephantidae", "genus": "Loxodonta", "vernacularNames": {"eng": "african elephant"}},
    ]  # fmt: skip
    assert descriptor["project"]["title"] == "Test images"
    [deployment] = read_csv(package / "deployments.csv")
    assert {k: v for k, v in deployment.items() if v} == {
        "deploymentID": ".", "locationName": "Serengeti", "latitude": "-2.333", "longitude": "34.833",
        "deploymentStart": "2006-02-10T17:06:43+03:00", "deploymentEnd": "2024-01-21T15:19:15+03:00",
    }  # fmt: skip
    media = {m["fileName"]: m for m in read_csv(package / "media.csv")}
    assert sorted(media) == sorted([
        "blank.jpg", "blank2.jpg", "blank3.jpg", "african_elephants.jpg", "african_elephants_truncated_file.jpg",
        "african_elephants_with_exif_orientation.jpg", "domestic_cattle.jpg", "domestic_dog.jpg", "human.jpg",
        "ocelot.jpg", "vehicle.jpg",
    ])  # fmt: skip
    assert media["ocelot.jpg"]["timestamp"] == "2006-02-10T17:06:43+03:00"  # DateTimeOriginal only
    observations = read_csv(package / "observations.csv")
    types = [o["observationType"] for o in observations]
    counts = {t: types.count(t) for t in set(types)}
    assert counts == {"animal": 21, "unknown": 3, "human": 1, "vehicle": 1, "blank": 3}
    assert {o["scientificName"] for o in observations} == {"Loxodonta africana", ""}
    cattle = by_id_of(observations, "domestic_cattle.jpg", 0)
    assert (cattle["observationType"], cattle["scientificName"], cattle["observationComments"]) == (
        "unknown",
        "",
        "classifier class: other",
    )
    assert (cattle["classifiedBy"], cattle["classificationProbability"]) == ("synthetic_v1", "0.6")
    by_id = {o["observationID"]: o for o in observations}
    elephant = by_id[media_id("african_elephants.jpg") + "_0"]
    assert {k: v for k, v in elephant.items() if v} == {
        "observationID": media_id("african_elephants.jpg") + "_0", "deploymentID": ".",
        "mediaID": media_id("african_elephants.jpg"), "eventStart": "2010-08-04T08:43:15+03:00",
        "eventEnd": "2010-08-04T08:43:15+03:00", "observationLevel": "media", "observationType": "animal",
        "scientificName": "Loxodonta africana", "count": "1", "bboxX": "0.7041", "bboxY": "0.4765",
        "bboxWidth": "0.1108", "bboxHeight": "0.125", "classificationMethod": "machine",
        "classifiedBy": "synthetic_v1", "classificationProbability": "0.8",
    }  # fmt: skip
    dog = by_id[media_id("domestic_dog.jpg") + "_0"]
    assert (dog["scientificName"], dog["classifiedBy"], dog["classificationProbability"]) == (
        "",
        "md_v5a.0.0.pt",
        "0.929",
    )
    assert by_id[media_id("blank.jpg") + "_blank"]["observationType"] == "blank"


def by_id_of(observations: list[dict[str, str]], file: str, index: int) -> dict[str, str]:
    return next(o for o in observations if o["observationID"] == f"{media_id(file)}_{index}")


def test_csv_rows(tmp_path: Path) -> None:
    classified = write_classified_demo(tmp_path / "classified.json")
    out = invoke(classified, tmp_path / "out.csv", "--format", "csv")
    assert out == (
        f"Wrote 19 detections of 8 images (no capture times: no --images-dir) to {tmp_path / 'out.csv'}, "
        f"{tmp_path / 'out_images.csv'}\n"
    )
    rows = read_csv(tmp_path / "out.csv")
    assert len(rows) == 19
    assert rows[5] == {
        "file": "african_elephants.jpg", "folder": ".", "datetime": "", "detection_index": "5",
        "detection_category": "animal", "detection_conf": "0.636", "bbox_x": "0.3403", "bbox_y": "0.4433",
        "bbox_width": "0.08349", "bbox_height": "0.09114", "top_class": "elephant", "top_score": "0.55",
        "second_class": "cattle", "second_score": "0.5",
    }  # fmt: skip
    person = [r for r in rows if r["file"] == "human.jpg"]
    assert [(r["detection_category"], r["top_class"], r["detection_conf"]) for r in person] == [("person", "", "0.933")]
    images = read_csv(tmp_path / "out_images.csv")
    assert [(r["file"], r["species"], r["count"], r["max_score"]) for r in images] == [
        ("blank.jpg", "blank", "0", ""),
        ("african_elephants.jpg", "elephant", "6", "0.95"),
        ("african_elephants_with_exif_orientation.jpg", "elephant", "6", "0.95"),
        ("american_black_bear.jpg", "bear", "1", "0.99"),
        ("domestic_cattle.jpg", "cattle", "3", "0.7"),
        ("domestic_dog.jpg", "dog", "1", "0.88"),
        ("human.jpg", "person", "1", "0.933"),
        ("ocelot.jpg", "ocelot", "1", "0.77"),
    ]


@pytest.mark.testdata
def test_xlsx_has_both_sheets_with_exif_times(cameratrap: Path, tmp_path: Path) -> None:
    import openpyxl

    out = invoke(cameratrap / "detections.json", tmp_path / "r.xlsx", "--format", "xlsx", "--images-dir",
                 cameratrap / "images")  # fmt: skip
    assert out == f"Wrote 40 detections of 14 images (11 with EXIF time) to {tmp_path / 'r.xlsx'}\n"
    book = openpyxl.load_workbook(tmp_path / "r.xlsx", read_only=True)
    assert book.sheetnames == ["detections", "images"]
    detections = list(book["detections"].values)
    assert detections[0] == (
        "file", "folder", "datetime", "utc_offset", "detection_index", "detection_category", "detection_conf",
        "bbox_x", "bbox_y", "bbox_width", "bbox_height", "top_class", "top_score", "second_class", "second_score",
    )  # fmt: skip
    assert len(detections) == 41
    assert detections[1] == (  # read-only mode leaves out the empty cells at the end of a row
        "african_elephants.jpg", ".", datetime(2010, 8, 4, 8, 43, 15), None, 0, "animal", 0.935,
        0.7041, 0.4765, 0.1108, 0.125,
    )  # fmt: skip
    images = {row[0]: row for row in list(book["images"].values)[1:]}
    assert len(images) == 14
    assert images["ocelot.jpg"] == ("ocelot.jpg", ".", datetime(2006, 2, 10, 17, 6, 43), None, "animal", 1, 0.971)
    assert images["african_elephants_bw.jpg"][2:4] == (None, None)  # no EXIF time
    frame = pd.read_excel(tmp_path / "r.xlsx", sheet_name="images")
    assert frame["datetime"].dtype.kind == "M"  # datetime64: pandas reads dates, not strings
    assert frame["count"].dtype.kind == "i" and frame["max_score"].dtype.kind == "f"


def hostile_results(tmp_path: Path) -> Path:
    """Demo results whose class names and a file name would run as formulas, or break XML."""
    data = json.loads(write_classified_demo(tmp_path / "c.json").read_text())
    data["classification_categories"].update({"0": '=HYPERLINK("http://x.invalid","y")', "1": "+1-2", "2": "@SUM(A1)"})
    data["images"][-1]["file"] = "cam\x01\x0b/-ocelot.jpg"
    (tmp_path / "hostile.json").write_text(json.dumps(data))
    return tmp_path / "hostile.json"


def test_csv_neutralises_formulas(tmp_path: Path) -> None:
    out = invoke(hostile_results(tmp_path), tmp_path / "out.csv", "--format", "csv")
    assert "(no capture times: no --images-dir, 24 formula-looking values quoted)" in out
    rows = read_csv(tmp_path / "out.csv")
    assert rows[0]["top_class"] == '\'=HYPERLINK("http://x.invalid","y")'
    assert {r["top_class"] for r in rows} >= {"'+1-2", "'@SUM(A1)", "dog"}
    assert rows[-1]["file"] == "cam\x01\x0b/-ocelot.jpg"  # starts with c: left as it is
    assert rows[-1]["folder"] == "cam\x01\x0b"
    assert rows[5]["second_class"] == "'+1-2" and rows[5]["second_score"] == "0.5"  # numbers stay numbers


def test_xlsx_neutralises_formulas_and_replaces_illegal_characters(tmp_path: Path) -> None:
    import openpyxl

    out = invoke(hostile_results(tmp_path), tmp_path / "r.xlsx", "--format", "xlsx")
    assert out.endswith(
        "(no capture times: no --images-dir, 24 formula-looking values quoted, 8 illegal characters replaced) "
        f"to {tmp_path / 'r.xlsx'}\n"
    )  # the file and folder names' 2 control characters, in both sheets
    book = openpyxl.load_workbook(tmp_path / "r.xlsx")  # not read-only: cell types are known
    sheet = book["detections"]
    cell = sheet.cell(row=2, column=12)
    assert (cell.value, cell.data_type) == ('\'=HYPERLINK("http://x.invalid","y")', "s")  # text, not a formula
    assert not any(c.data_type == "f" for row in sheet.iter_rows() for c in row)
    assert sheet.cell(row=sheet.max_row, column=1).value == "cam\ufffd\ufffd/-ocelot.jpg"
    assert sheet.cell(row=2, column=7).data_type == "n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2010:08:04 08:43:15", "2010-08-04T08:43:15"), ("2010:08:04 08:43:15\x00", "2010-08-04T08:43:15"),
     ("0000:00:00 00:00:00", None), ("", None), (None, None), ("yesterday", None)],
)  # fmt: skip
def test_parse_exif_time(text: object, expected: str | None) -> None:
    assert parse_exif_time(text) == expected


def test_capture_time_reads_offset(tmp_path: Path) -> None:
    from PIL import Image

    image = Image.new("RGB", (8, 8))
    exif = Image.Exif()
    exif.get_ifd(0x8769).update({36867: "2021:03:04 05:06:07", 36881: "+01:00"})
    image.save(tmp_path / "a.jpg", exif=exif)
    assert capture_time(tmp_path / "a.jpg") == CaptureTime("2021-03-04T05:06:07", "+01:00")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    assert capture_time(tmp_path / "b.jpg") is None


def test_capture_times_of_paths_outside_the_images_dir_are_unknown(tmp_path: Path) -> None:
    from PIL import Image

    from megaclassifier.images.exif import capture_times

    exif = Image.Exif()
    exif.get_ifd(0x8769).update({36867: "2021:03:04 05:06:07"})
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "in.jpg", exif=exif)
    Image.new("RGB", (8, 8)).save(tmp_path / "outside.jpg", exif=exif)
    # refused before opening (the --images-dir rule), not a traceback from a worker thread
    times = capture_times(["in.jpg", "../outside.jpg", "x" * 300 + "/y.jpg"], tmp_path / "photos")
    assert times == {"in.jpg": CaptureTime("2021-03-04T05:06:07"), "../outside.jpg": None, "x" * 300 + "/y.jpg": None}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "camtrap-dp", "--contributor", "J"], "Error: --format camtrap-dp needs --deployments"),
        (["--format", "csv", "--contributor", "J"], "Error: --contributor: only with --format camtrap-dp"),
        (["--format", "camtrap-dp", "--utc-offset", "2h"],
         "Error: Invalid value for '--utc-offset': '2h' is not a UTC offset like +02:00, -05:00 or Z"),
    ],
)  # fmt: skip
def test_usage_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    out = invoke(DEMO_DATA / "detections.json", tmp_path / "x", *extra, exit_code=2)
    assert out.splitlines()[-1] == message


@pytest.mark.testdata
def test_folder_missing_from_deployments(cameratrap: Path, tmp_path: Path) -> None:
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("folder,latitude,longitude\ncam9,1,2\n")
    out = invoke(cameratrap / "detections.json", tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir",
                 cameratrap / "images", "--deployments", deployments, "--contributor", "J", "--utc-offset", "Z",
                 exit_code=1)  # fmt: skip
    assert out == f"Error: {deployments}: no row for folder '.'\n"
    assert not (tmp_path / "pkg").exists()


@pytest.mark.testdata
def test_bad_coordinates(cameratrap: Path, tmp_path: Path) -> None:
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("folder,latitude,longitude\n.,95,2\n")
    out = invoke(cameratrap / "detections.json", tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir",
                 cameratrap / "images", "--deployments", deployments, "--contributor", "J", exit_code=1)  # fmt: skip
    assert out == f"Error: {deployments}: line 2: '95' is not a coordinate within +-90\n"


@pytest.mark.testdata
def test_camtrap_dp_needs_a_time_zone(cameratrap: Path, tmp_path: Path) -> None:
    deployments = tmp_path / "deployments.csv"
    deployments.write_text("folder,latitude,longitude\n.,1,2\n")
    out = invoke(cameratrap / "detections.json", tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir",
                 cameratrap / "images", "--deployments", deployments, "--contributor", "J", exit_code=1)  # fmt: skip
    assert out == (
        "Error: blank.jpg: its EXIF time 2016-09-25T18:35:10 has no UTC offset and Camtrap DP needs one; "
        "give --utc-offset (the cameras' clock, e.g. +02:00) or a utc_offset column in --deployments\n"
    )


def two_deployments(cameratrap: Path, tmp_path: Path, offsets: tuple[str, str]) -> tuple[Path, Path, Path]:
    """Four real photos in two folders (kenya/, norway/), their results and a deployments CSV with offsets."""
    md = json.loads((cameratrap / "detections.json").read_text())
    by_file = {image["file"]: image for image in md["images"]}
    images, entries = tmp_path / "images", []
    for folder, names in (("kenya", ["ocelot.jpg", "african_elephants.jpg"]), ("norway", ["blank.jpg", "human.jpg"])):
        (images / folder).mkdir(parents=True)
        for name in names:
            (images / folder / name).symlink_to(cameratrap / "images" / name)
            entries.append({**by_file[name], "file": f"{folder}/{name}"})
    md["images"] = entries
    (tmp_path / "md.json").write_text(json.dumps(md))
    deployments = tmp_path / "deployments.csv"
    deployments.write_text(
        f"folder,latitude,longitude,utc_offset\nkenya,-0.39,36.96,{offsets[0]}\nnorway,60.1,10.2,{offsets[1]}\n"
    )
    return tmp_path / "md.json", images, deployments


@pytest.mark.testdata
def test_camtrap_dp_per_deployment_utc_offsets(cameratrap: Path, tmp_path: Path, reference: Path) -> None:
    """kenya's clock is +03:00 (its column); norway has none there and takes --utc-offset +01:00."""
    md, images, deployments = two_deployments(cameratrap, tmp_path, ("+03:00", ""))
    invoke(md, tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir", images, "--deployments", deployments,
           "--contributor", "J", "--utc-offset", "+01:00")  # fmt: skip
    media = {m["filePath"]: m["timestamp"] for m in read_csv(tmp_path / "pkg" / "media.csv")}
    assert media == {
        "kenya/ocelot.jpg": "2006-02-10T17:06:43+03:00", "kenya/african_elephants.jpg": "2010-08-04T08:43:15+03:00",
        "norway/blank.jpg": "2016-09-25T18:35:10+01:00", "norway/human.jpg": "2024-01-21T15:19:15+01:00",
    }  # fmt: skip
    rows = {d["deploymentID"]: d for d in read_csv(tmp_path / "pkg" / "deployments.csv")}
    assert (rows["kenya"]["deploymentStart"], rows["norway"]["deploymentEnd"]) == (
        "2006-02-10T17:06:43+03:00", "2024-01-21T15:19:15+01:00",
    )  # fmt: skip
    assert "utc_offset" not in rows["kenya"]  # not a Camtrap DP field
    assert table_errors(tmp_path / "pkg", reference) == []


@pytest.mark.testdata
def test_camtrap_dp_bad_utc_offset_column(cameratrap: Path, tmp_path: Path) -> None:
    md, images, deployments = two_deployments(cameratrap, tmp_path, ("+03:00", "CET"))
    out = invoke(md, tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir", images, "--deployments",
                 deployments, "--contributor", "J", exit_code=1)  # fmt: skip
    assert out == f"Error: {deployments}: line 3: utc_offset 'CET' is not a UTC offset like +02:00, -05:00 or Z\n"
    assert not (tmp_path / "pkg").exists()


@pytest.mark.testdata
def test_camtrap_dp_scientific_names_from_taxonomy_file(cameratrap: Path, tmp_path: Path, reference: Path) -> None:
    """No descriptions in the file: --taxonomy gives the taxa; a genus-level class is a genus."""
    md, images, deployments = two_deployments(cameratrap, tmp_path, ("+03:00", "+01:00"))
    data = json.loads(md.read_text())
    for image in data["images"]:
        for det in image["detections"]:
            det["classifications"] = [["0", 0.9]] if "elephants" in image["file"] else [["1", 0.7]]
    data["classification_categories"] = {"0": "elephant", "1": "cat"}
    md.write_text(json.dumps(data))
    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text(
        "name,kingdom,phylum,class,order,family,genus,species,common\n"
        "elephant,animalia,chordata,mammalia,proboscidea,elephantidae,loxodonta,loxodonta africana,african elephant\n"
        "cat,animalia,chordata,mammalia,carnivora,felidae,leopardus,,\n"
    )
    invoke(md, tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir", images, "--deployments", deployments,
           "--contributor", "J", "--taxonomy", taxonomy, "--threshold", "0.5")  # fmt: skip
    observations = read_csv(tmp_path / "pkg" / "observations.csv")
    names = {(o["mediaID"], o["scientificName"], o["observationType"]) for o in observations}
    assert names == {
        (media_id("kenya/ocelot.jpg"), "Leopardus", "animal"),
        (media_id("kenya/african_elephants.jpg"), "Loxodonta africana", "animal"),
        (media_id("norway/blank.jpg"), "", "blank"),
        (media_id("norway/human.jpg"), "Leopardus", "animal"),  # the classifier says so; the type follows it
    }
    descriptor = json.loads((tmp_path / "pkg" / "datapackage.json").read_text())
    assert [(t["scientificName"], t["taxonRank"]) for t in descriptor["taxonomic"]] == [
        ("Leopardus", "genus"), ("Loxodonta africana", "species"),
    ]  # fmt: skip
    assert profile_errors(descriptor, reference) == []
    assert table_errors(tmp_path / "pkg", reference) == []


@pytest.mark.testdata
def test_camtrap_dp_without_taxonomy_writes_no_class_as_a_scientific_name(
    cameratrap: Path, tmp_path: Path, reference: Path
) -> None:
    md, images, deployments = two_deployments(cameratrap, tmp_path, ("+03:00", "+01:00"))
    data = json.loads(md.read_text())
    data["images"][0]["detections"][0]["classifications"] = [["0", 0.9]]
    data["classification_categories"] = {"0": "cow"}
    md.write_text(json.dumps(data))
    invoke(md, tmp_path / "pkg", "--format", "camtrap-dp", "--images-dir", images, "--deployments", deployments,
           "--contributor", "J")  # fmt: skip
    ocelot = by_id_of(read_csv(tmp_path / "pkg" / "observations.csv"), "kenya/ocelot.jpg", 0)
    assert (ocelot["observationType"], ocelot["scientificName"], ocelot["observationComments"]) == (
        "animal", "", "classifier class: cow (no taxonomy: give --taxonomy)",
    )  # fmt: skip
    descriptor = json.loads((tmp_path / "pkg" / "datapackage.json").read_text())
    assert descriptor["taxonomic"] == []  # required, may be empty
    assert profile_errors(descriptor, reference) == []
