"""SpeciesNet releases as MODEL: the folder, crops, preprocessing, labels, geofence, CLI, download.

The oracle is PyPI ``speciesnet`` itself (``SpeciesNetClassifier.preprocess`` and
``batch_predict``, ``geofence_animal_classification``), loaded without its package
``__init__`` (which imports the detector's ``yolov5``); those tests skip where it is
not installed (``pip install --no-deps speciesnet`` and the light dependencies of
the ``test`` extra).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as F
from conftest import PhotoSet
from helpers import invoke, read_csv, speciesnet_module, write_json
from PIL import Image
from speciesnet_data import ANIMAL, EXTRA_TAXA, GEOFENCE, LABELS, build_release

from megaclassifier.crop.core import CutOptions, PlannedCrop
from megaclassifier.crop.cut import cut_image
from megaclassifier.crop.geometry import CropBox, full_image_box, speciesnet_box
from megaclassifier.errors import DownloadError, ModelError
from megaclassifier.formats.naming import parse_crop_filename
from megaclassifier.models.download import download_model
from megaclassifier.models.loading import SPECIESNET, load_model
from megaclassifier.models.registry import KNOWN_MODELS, resolve_model
from megaclassifier.models.resolved import categories_for
from megaclassifier.models.speciesnet import (
    SPECIESNET_PREPROCESSING,
    common_name,
    read_labels,
    read_release,
    read_taxonomy_map,
)
from megaclassifier.postprocess.api import geofence_results
from megaclassifier.postprocess.roll import is_fenced_out
from megaclassifier.preprocess import model_input, to_pixels

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_release(tmp_path_factory.mktemp("speciesnet") / "always_crop")


@pytest.fixture(scope="module")
def full_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_release(tmp_path_factory.mktemp("speciesnet") / "full_image", release_type="full_image")


# --- the folder ----------------------------------------------------------------------------------


def test_release_is_read_and_loaded(release: Path) -> None:
    info = read_release(release)
    assert (info.version, info.type, info.classifier.name) == ("4.0.1a-test", "always_crop", "always_crop_test.pt")
    loaded = load_model(release)
    assert loaded.kind == SPECIESNET
    assert loaded.preprocessing == SPECIESNET_PREPROCESSING["always_crop"]
    assert isinstance(loaded.module, torch.fx.GraphModule) and not loaded.module.training


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "crop"}, "type 'crop' is not one of always_crop, full_image"),
        ({"geofence": None}, "no geofence; expected SpeciesNet's info.json"),
        ({"classifier": "../evil.pt"}, "classifier '../evil.pt' is not a file name inside the release folder"),
        ({"classifier": "missing.pt"}, "classifier 'missing.pt' is missing from"),
    ],
)
def test_bad_info_json(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    folder = build_release(tmp_path / "release")
    info = json.loads((folder / "info.json").read_text())
    info.update(change)
    write_json(folder / "info.json", {k: v for k, v in info.items() if v is not None})
    with pytest.raises(ModelError) as e:
        read_release(folder)
    assert str(e.value).startswith(f"{folder / 'info.json'}: {message}")


def test_only_the_named_classifier_is_unpickled(tmp_path: Path) -> None:
    folder = build_release(tmp_path / "release")
    (folder / "always_crop_test.pt").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ModelError, match=r"always_crop_test.pt: cannot load as a whole PyTorch module"):
        load_model(folder)


def test_labels_become_names_and_descriptions(release: Path) -> None:
    labels = read_labels(read_release(release).classifier_labels)
    assert labels == LABELS
    assert [common_name(label) for label in labels] == [
        "coyote", "gray wolf", "canine family", "white-tailed deer", "elk", "bird", "blank", "animal", "human",
    ]  # fmt: skip


def test_bad_labels_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("a;b;c;d;e;f;g\nonly;three;tokens\n", encoding="utf-8")
    with pytest.raises(ModelError, match=r"labels.txt: line 2 has 3 tokens; expected 7"):
        read_labels(path)


# --- crops and preprocessing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bbox", "size", "box"),
    [
        ((0.1, 0.2, 0.3, 0.4), (640, 480), CropBox(64, 96, 256, 288)),
        ((0.7041, 0.4765, 0.1108, 0.125), (2048, 1536), CropBox(1441, 731, 1667, 923)),
        ((0.9, 0.9, 0.2, 0.2), (100, 100), CropBox(90, 90, 110, 110)),  # past the edge: not clipped
        ((0.5, 0.5, 0.004, 0.5), (200, 100), None),  # int(0.8) = 0 pixels wide
    ],
)
def test_speciesnet_box(bbox: tuple[float, ...], size: tuple[int, int], box: CropBox | None) -> None:
    assert speciesnet_box(bbox, *size) == box
    if box is not None:  # SpeciesNet's own arithmetic
        w, h = size
        assert (box.top, box.left, box.height, box.width) == (
            int(bbox[1] * h), int(bbox[0] * w), int(bbox[3] * h), int(bbox[2] * w),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((640, 480), CropBox(0, 72, 640, 408)),
        ((4000, 3000), CropBox(0, 200, 4000, 2800)),
        ((50, 31), CropBox(0, 5, 50, 26)),
    ],
)
def test_full_image_box(size: tuple[int, int], box: CropBox) -> None:
    assert full_image_box(*size) == box


def _torchvision_crop(image: Image.Image, bbox: tuple[float, ...]) -> np.ndarray:
    """SpeciesNet's always_crop preprocessing written out with torchvision."""
    x = F.convert_image_dtype(F.pil_to_tensor(image), torch.float32)
    crop = F.crop(x, int(bbox[1] * image.height), int(bbox[0] * image.width),
                  int(bbox[3] * image.height), int(bbox[2] * image.width))  # fmt: skip
    crop = F.resize(crop, [480, 480], antialias=False)
    return F.convert_image_dtype(crop, torch.uint8).permute(1, 2, 0).numpy()


def test_preprocessing_equals_torchvision(photos: PhotoSet) -> None:
    data = json.loads(photos.detections.read_text())
    image = next(im for im in data["images"] if im.get("detections"))
    bboxes = [tuple(det["bbox"]) for det in image["detections"]] + [(0.9, 0.9, 0.2, 0.2)]
    crops = [PlannedCrop(i, b, f"k{i}", Path(f"k{i}.jpg")) for i, b in enumerate(bboxes)]
    options = CutOptions(images_dir=str(photos.images), geometry="speciesnet")
    profile = SPECIESNET_PREPROCESSING["always_crop"]
    cut = cut_image(image["file"], crops, options, lambda crop: to_pixels(crop, 480, profile))
    assert cut.failure is None and len(cut.crops) == len(bboxes)
    with Image.open(photos.images / image["file"]) as photo:
        from PIL import ImageOps

        rgb = ImageOps.exif_transpose(photo.convert("RGB"))
        for (planned, pixels), bbox in zip(cut.crops, bboxes, strict=True):
            assert pixels is not None and pixels.shape == (480, 480, 3) and pixels.dtype == np.uint8
            assert np.array_equal(pixels, _torchvision_crop(rgb, bbox)), planned.index
    scaled = model_input(np.stack([p for _, p in cut.crops if p is not None]), profile)
    assert scaled.dtype == np.float32 and scaled.shape == (len(bboxes), 480, 480, 3)
    assert np.array_equal(scaled, (np.stack([p for _, p in cut.crops if p is not None]) / 255.0).astype(np.float32))


def test_float32_scaling_equals_float64_then_cast() -> None:
    """The torch engine scales uint8 on the device in float32; SpeciesNet divides in float64 then casts."""
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(values.astype(np.float32) / np.float32(255.0), (values / 255.0).astype(np.float32))


# --- end to end against SpeciesNet itself ----------------------------------------------------------


def _oracle(release: Path) -> Any:
    classifier = speciesnet_module("classifier")
    return classifier.SpeciesNetClassifier(str(release), device="cpu")


def _oracle_scores(oracle: Any, photos: PhotoSet, file: str, bboxes: list[list[float]]) -> list[dict[str, float]]:
    utils = speciesnet_module("utils")
    image = utils.load_rgb_image(str(photos.images / file))
    boxes = [utils.BBox(*b) for b in bboxes]
    result = oracle.batch_predict([file], [oracle.preprocess(image, bboxes=boxes)], num_classes=None)[0]
    return [dict(zip(c["classes"], c["scores"], strict=True)) for c in result["classifications_list"]]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_run_matches_speciesnet(release: Path, photos: PhotoSet, tmp_path: Path, backend: str) -> None:
    out, csv = tmp_path / "out.json", tmp_path / "probs.csv"
    result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                    "--output-csv", csv, "--threshold", 0.15, "--backend", backend, "--num-workers", 0,
                    "--ensemble", "none", "--logdir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    header, rows = read_csv(csv)
    assert header[1:] == [common_name(label) for label in LABELS]
    assert len(rows) == len(photos.animal_boxes(0.15)) > 0
    data = json.loads(photos.detections.read_text())
    oracle = _oracle(release)
    worst = 0.0
    for row in rows:
        name = parse_crop_filename(row[0])
        image = next(im for im in data["images"] if im["file"] == name.file)
        expected = _oracle_scores(oracle, photos, name.file, [image["detections"][name.index]["bbox"]])[0]
        got = dict(zip(LABELS, map(float, row[1:]), strict=True))
        worst = max(worst, max(abs(got[k] - expected[k]) for k in LABELS))
    assert worst <= TOLERANCE
    merged = json.loads(out.read_text())
    assert merged["info"]["classifier"] == "speciesnet-4.0.1a-test"
    assert merged["classification_categories"] == {str(i): common_name(label) for i, label in enumerate(LABELS)}
    assert merged["classification_category_descriptions"] == {str(i): label for i, label in enumerate(LABELS)}


def test_full_image_release(full_release: Path, photos: PhotoSet, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = invoke("run", photos.detections, full_release, "--images-dir", photos.images, "--output-json", out,
                    "--threshold", 0.15, "--classification-threshold", 0, "--num-workers", 0,
                    "--ensemble", "none", "--logdir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    merged = json.loads(out.read_text())
    oracle = _oracle(full_release)
    checked = 0
    for image in merged["images"]:
        lists = [d["classifications"] for d in image.get("detections") or [] if "classifications" in d]
        if not lists:
            continue
        assert all(c == lists[0] for c in lists)  # one whole-image result, on every classified detection
        want = _oracle_scores(oracle, photos, image["file"], [])[0]  # full_image: no boxes, one crop
        for cid, score in lists[0]:
            assert abs(score - want[LABELS[int(cid)]]) <= TOLERANCE + 5e-4  # scores are rounded to 3 decimals
        checked += 1
    assert checked > 0


def test_classify_and_features_on_crop_files(release: Path, tmp_path: Path) -> None:
    crops = tmp_path / "crops"
    crops.mkdir()
    rng = np.random.default_rng(3)
    for i, size in enumerate([(37, 53), (480, 480), (600, 200)]):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(crops / f"c{i}.png")
    out = tmp_path / "probs.csv"
    result = invoke("classify", release, crops, out, "--backend", "torch", "--num-workers", 0)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(out)
    assert header == ["path", *(common_name(label) for label in LABELS)]
    module = load_model(release).module
    for row in rows:
        with Image.open(crops / row[0]) as image:
            rgb = image.convert("RGB")
        x = torch.from_numpy(_torchvision_crop(rgb, (0, 0, 1, 1))[None] / 255.0).float()
        expected = torch.softmax(module(x), dim=1)[0].detach().numpy()
        assert np.abs(np.array(row[1:], dtype=float) - expected).max() <= TOLERANCE
    features = tmp_path / "features.csv"
    result = invoke("features", release, crops, features, "--num-workers", 0)
    assert result.exit_code == 0, result.output
    header, rows = read_csv(features)
    assert header == ["path", *map(str, range(8))] and len(rows) == 3


def test_smooth_on_run_output_needs_no_taxonomy(release: Path, photos: PhotoSet, tmp_path: Path) -> None:
    out, smoothed = tmp_path / "out.json", tmp_path / "smoothed.json"
    result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                    "--num-workers", 0, "--logdir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("smooth", out, smoothed, quiet=False)
    assert result.exit_code == 0, result.output
    assert "taxonomic and same-family rules are skipped" not in result.output
    assert "needs a taxonomy" not in result.output
    data = json.loads(smoothed.read_text())
    assert data["info"]["classification_postprocessing"][-1]["step"] == "smooth"
    result = invoke("rollup", out, tmp_path / "rolled.json", "--threshold", 0.99)
    assert result.exit_code == 0, result.output


# --- geofence ------------------------------------------------------------------------------------


def _results(classifications: list[list[list[Any]]]) -> dict[str, Any]:
    return {
        "images": [
            {
                "file": f"{i}.jpg",
                "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1], "classifications": c}],
            }
            for i, c in enumerate(classifications)
        ],  # fmt: skip
        "detection_categories": {"1": "animal"},
        "classification_categories": {str(i): common_name(label) for i, label in enumerate(LABELS)},
        "classification_category_descriptions": {str(i): label for i, label in enumerate(LABELS)},
        "info": {"format_version": "1.4"},
    }


CASES = [
    # gray wolf in Mexico: fenced out; canidae sums 0.6 + 0.3 + 0.05
    ("MEX", None, [["1", 0.6], ["0", 0.3], ["2", 0.05]], [["2", 0.95], ["1", 0.6], ["0", 0.3]]),
    # gray wolf in Florida: the USA allows it only in AK and MT
    ("USA", "FL", [["1", 0.6], ["0", 0.3]], [["2", 0.9], ["1", 0.6], ["0", 0.3]]),
    # gray wolf in Montana, and in the USA with no region: allowed
    ("USA", "MT", [["1", 0.6], ["0", 0.3]], [["1", 0.6], ["0", 0.3]]),
    ("USA", None, [["1", 0.6], ["0", 0.3]], [["1", 0.6], ["0", 0.3]]),
    # white-tailed deer in Great Britain: cervidae is allowed only in the USA, so the order (added)
    ("GBR", None, [["3", 0.7], ["4", 0.2]], [["9", 0.9], ["3", 0.7], ["4", 0.2]]),
    # elk blocked in Florida, cervidae allowed in the USA
    ("USA", "FL", [["4", 0.5], ["3", 0.1]], [["9", 0.6], ["4", 0.5], ["3", 0.1]]),
    # a bird has no geofence
    ("GBR", None, [["5", 0.8]], [["5", 0.8]]),
]


@pytest.mark.parametrize(("country", "region", "before", "after"), CASES)
def test_geofence_moves_up_to_the_nearest_allowed_ancestor(
    release: Path, country: str, region: str | None, before: list[list[Any]], after: list[list[Any]]
) -> None:
    info = read_release(release)
    data = _results([before])
    summary = geofence_results(data, geofence=GEOFENCE, taxonomy_map=read_taxonomy_map(info.taxonomy),
                               country=country, admin1_region=region)  # fmt: skip
    det = data["images"][0]["detections"][0]
    assert det["classifications"] == after
    assert summary.detections_changed == (before != after)
    if before != after:
        assert det["raw_classifications"] == before
    added = {k: v for k, v in data["classification_category_descriptions"].items() if int(k) >= len(LABELS)}
    if after[0][0] == "9":
        expected = EXTRA_TAXA[3] if country == "GBR" else EXTRA_TAXA[2]  # even-toed ungulate, deer family
        assert added == {"9": expected}
        assert data["classification_categories"]["9"] == expected.split(";")[-1]
    else:
        assert added == {}


@pytest.mark.parametrize(("country", "region", "before", "after"), CASES)
def test_geofence_agrees_with_speciesnet(
    release: Path, country: str, region: str | None, before: list[list[Any]], after: list[list[Any]]
) -> None:
    geofence_utils = speciesnet_module("geofence_utils")
    taxonomy = read_taxonomy_map(read_release(release).taxonomy)
    label, score, _ = geofence_utils.geofence_animal_classification(
        labels=[LABELS[int(c)] for c, _ in before], scores=[s for _, s in before], country=country,
        admin1_region=region, taxonomy_map=taxonomy, geofence_map=GEOFENCE, enable_geofence=True,
    )  # fmt: skip
    data = _results([before])
    geofence_results(data, geofence=GEOFENCE, taxonomy_map=taxonomy, country=country, admin1_region=region)
    top, top_score = data["images"][0]["detections"][0]["classifications"][0]
    assert (data["classification_category_descriptions"][top], top_score) == (label, round(score, 6))


def test_kingdom_is_animal(release: Path) -> None:
    taxonomy = read_taxonomy_map(read_release(release).taxonomy)
    assert taxonomy[";;;;"] == ANIMAL
    assert is_fenced_out("mammalia;carnivora;canidae;canis;lupus", GEOFENCE, "KEN")
    assert not is_fenced_out("mammalia;carnivora;canidae;canis;lupus", GEOFENCE, "CAN", "QC")


# --- command line --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "flags", "named"),
    [
        ("classify", ["--image-size", 300], "--image-size"),
        ("run", ["--square-crops"], "--square-crops"),
        ("run", ["--no-jpeg-roundtrip", "--image-size", 480], "--image-size, --jpeg-roundtrip/--no-jpeg-roundtrip"),
        ("features", ["--arch", "efficientnet-b0"], "--arch"),
    ],
)
def test_flags_that_do_not_apply(
    release: Path, photos: PhotoSet, tmp_path: Path, command: str, flags: list[Any], named: str
) -> None:
    if command == "run":
        args = [photos.detections, release, "--output-json", tmp_path / "o.json"]
    else:
        args = [release, tmp_path, tmp_path / ("o.csv")]
    result = invoke(command, *args, *flags)
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last == (
        f"Error: {named}: not for a SpeciesNet release; {release} sets its own preprocessing "
        "(480 px, SpeciesNet's crops, no JPEG round trip)"
    )
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--country", "US"], 2, "Invalid value for '--country': 'US' is not an ISO 3166-1 alpha-3 country code"),
        (["--admin1-region", "CA"], 2, "Error: --admin1-region needs --country"),
        (["--country", "USA", "--admin1-region", "CAL"], 2, "'CAL' is not a two-character first-level region code"),
    ],
)
def test_country_flags(
    release: Path, photos: PhotoSet, tmp_path: Path, flags: list[str], code: int, message: str
) -> None:
    result = invoke("run", photos.detections, release, "--output-json", tmp_path / "o.json", *flags)
    assert result.exit_code == code
    assert message in result.output


def test_country_needs_a_release(tiny_model: Path, photos: PhotoSet, tmp_path: Path) -> None:
    result = invoke("run", photos.detections, tiny_model, "--output-json", tmp_path / "o.json",
                    "--country", "usa", "--images-dir", photos.images)  # fmt: skip
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: --country applies a SpeciesNet release's geofence: give a SpeciesNet release folder as MODEL"
    )
    assert not (tmp_path / "o.json").exists()


def test_run_with_country(release: Path, photos: PhotoSet, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                    "--country", "gbr", "--ensemble", "none", "--num-workers", 0, "--logdir", tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    step = json.loads(out.read_text())["info"]["classification_postprocessing"][0]
    assert (step["step"], step["country"], step["admin1_region"]) == ("geofence", "GBR", None)


@pytest.mark.parametrize(("ensemble", "first_step"), [("none", "geofence"), ("speciesnet", "ensemble")])
def test_run_checks_each_image_once_with_the_geofence_and_smoothing(
    release: Path, photos: PhotoSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ensemble: str, first_step: str
) -> None:
    """The detections file's images are checked when it is read, not again by the geofence (or the ensemble)
    and smoothing."""
    from megaclassifier.formats import detections, detections_stream

    checked: list[str] = []
    real = detections.check_image

    def counting(i: int, image: Any, path: Any) -> None:
        checked.append(image["file"])
        real(i, image, path)

    monkeypatch.setattr(detections, "check_image", counting)
    monkeypatch.setattr(detections_stream, "detections_check_image", counting)
    out = tmp_path / "out.json"
    result = invoke("run", photos.detections, release, "--images-dir", photos.images, "--output-json", out,
                    "--country", "gbr", "--smooth", "image", "--ensemble", ensemble, "--num-workers", 0)  # fmt: skip
    assert result.exit_code == 0, result.output
    files = [image["file"] for image in json.loads(photos.detections.read_text())["images"]]
    steps = [s["step"] for s in json.loads(out.read_text())["info"]["classification_postprocessing"]]
    assert steps == [first_step, "smooth"]
    assert sorted(checked) == sorted(files)  # each image once


# --- the registry and download ---------------------------------------------------------------------

PUBLISHED = "speciesnet-v4.0.2a"


@pytest.fixture
def release_server(tmp_path: Path) -> Iterator[Any]:
    """The published release's files (stand-ins with the published names) on an HTTP server on 127.0.0.1."""
    from test_download import Server

    known = KNOWN_MODELS[PUBLISHED]
    names = [f.filename for f in known.files if f.role == "release-file"]
    files = dict(zip(["classifier", "classifier_labels", "taxonomy", "geofence"], names, strict=True))
    build_release(tmp_path / "www" / "models", files=files)
    server = Server(tmp_path / "www" / "models")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_download_a_release(release_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEGACLASSIFIER_CACHE_DIR", str(tmp_path / "cache"))
    summary = download_model(PUBLISHED, base_url=release_server.base)
    folder = tmp_path / "cache" / "models" / PUBLISHED
    assert summary.num_classes == len(LABELS) and summary.fetched == 5
    assert sorted(p.name for p in folder.iterdir()) == sorted(f.filename for f in KNOWN_MODELS[PUBLISHED].files)
    assert resolve_model(PUBLISHED) == folder
    assert categories_for(PUBLISHED, None) == [common_name(label) for label in LABELS]
    assert load_model(resolve_model(PUBLISHED)).kind == SPECIESNET


def test_a_release_that_does_not_fit_its_labels_is_deleted(release_server: Any, tmp_path: Path) -> None:
    known = KNOWN_MODELS[PUBLISHED]
    labels = release_server.root / known.files[2].filename
    labels.write_text("\n".join(LABELS[:5]) + "\n", encoding="utf-8")
    with pytest.raises(DownloadError, match=r"the model has 9 outputs but .* has 5\); deleted it"):
        download_model(PUBLISHED, output_dir=tmp_path / "out", base_url=release_server.base)
    assert not (tmp_path / "out" / known.files[1].filename).exists()


def test_a_release_name_before_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEGACLASSIFIER_CACHE_DIR", str(tmp_path))
    with pytest.raises(ModelError, match=rf"^{PUBLISHED}: not downloaded .*run `megaclassifier download {PUBLISHED}`"):
        resolve_model(PUBLISHED)


@pytest.mark.parametrize(
    ("package", "hint"),
    [("onnx2torch.node_converters", "pip install 'megaclassifier[speciesnet]'"), ("zz_nowhere", "not installed")],
)
def test_a_module_class_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, package: str, hint: str
) -> None:
    """The published classifier unpickles onnx2torch classes: without the package, one line says what to install."""
    module = types.ModuleType(package)
    exec("import torch\nclass Node(torch.nn.Module):\n    def forward(self, x):\n        return x.mean(dim=(1, 2))\n",
         module.__dict__)  # fmt: skip
    module.Node.__module__ = package
    monkeypatch.setitem(sys.modules, package.split(".")[0], types.ModuleType(package.split(".")[0]))
    monkeypatch.setitem(sys.modules, package, module)
    folder = build_release(tmp_path / "release")
    torch.save(module.Node(), folder / "always_crop_test.pt")
    for name in (package, package.split(".")[0]):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    with pytest.raises(ModelError) as e:
        load_model(folder)
    assert str(e.value).startswith(
        f"{folder / 'always_crop_test.pt'}: its module classes come from the {package.split('.')[0]}"
    )
    assert str(e.value).endswith(f" package ({hint})")


# --- engines: pixel uploads, staging, the GPU ------------------------------------------------------


def _pixels(photos: PhotoSet) -> np.ndarray:
    data = json.loads(photos.detections.read_text())
    image = next(im for im in data["images"] if im.get("detections"))
    crops = [PlannedCrop(i, tuple(d["bbox"]), f"k{i}", Path(f"k{i}.jpg")) for i, d in enumerate(image["detections"])]
    profile = SPECIESNET_PREPROCESSING["always_crop"]
    cut = cut_image(image["file"], crops, CutOptions(images_dir=str(photos.images), geometry="speciesnet"),
                    lambda crop: to_pixels(crop, 480, profile))  # fmt: skip
    return np.stack([p for _, p in cut.crops if p is not None])


@pytest.mark.parametrize("staged", [False, True])
def test_torch_engine_scales_uint8_pixels_as_speciesnet(release: Path, photos: PhotoSet, staged: bool) -> None:
    from megaclassifier.engines import open_engine

    pixels = _pixels(photos)
    engine = open_engine(release, backend="torch", device="cpu")
    engine._stage = staged  # type: ignore[attr-defined]  # the GPU path: uint8 uploaded, scaled on the device
    got = engine.predict(pixels)
    module = load_model(release).module
    expected = torch.softmax(module(torch.from_numpy((pixels / 255.0).astype(np.float32))), dim=1).detach().numpy()
    assert got.shape == (len(pixels), len(LABELS))
    assert np.abs(got - expected).max() <= 1e-6
    assert np.array_equal(engine.predict(model_input(pixels, engine.preprocessing)), got)


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("MEGACLASSIFIER_REQUIRE_GPU") != "1",
    reason="needs a CUDA GPU (make test-gpu on one)",
)
def test_cuda_engine_matches_the_cpu(release: Path, photos: PhotoSet) -> None:
    from megaclassifier.engines import open_engine

    pixels = _pixels(photos)
    cpu = open_engine(release, backend="torch", device="cpu").predict(pixels)
    for batch in (pixels, model_input(pixels, SPECIESNET_PREPROCESSING["always_crop"])):
        gpu = open_engine(release, backend="torch", device="cuda").predict(batch)
        assert np.abs(gpu - cpu).max() <= TOLERANCE
