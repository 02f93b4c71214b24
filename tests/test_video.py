"""Video entries: frames decoded with PyAV, cut with the crop core, classified like stills, summarised.

* Synthetic clips whose frames show their own number (ten black/white bars, one bit each) check
  the frame numbering of both walks: MJPEG packet by packet, H.264 decoded in order and seeking
  past :data:`~megaclassifier.crop.video.SEEK_GAP` frames.
* Clips made from the real photos of ../shared/testdata (``video_data``) check that each frame's
  crops and classifications are those of the same photo as a still, within the codec's loss:
  MJPEG at qscale 1, 4:4:4: mean absolute pixel difference of a crop under 3 levels of 255;
  H.264 crf 12, 4:2:0: under 4. The tiny model (channel means) gives each score within 0.01
  (MJPEG) and 0.02 (H.264) of the still's; on MJPEG the seeded B0 at 64 px (random weights, far
  more sensitive to pixels) gives the same top class for every box and each score within 0.2
  (on H.264 it flips 2 of 10 top classes, so that is not asserted).
* Bad videos (truncated, no frames, a frame past the end, not a video, no PyAV) are that
  video's one-line failure.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from video_data import CODECS, FRAMES_PROCESSED, photo_of_frame, still_index, video_results, write_clip, write_json

import megaclassifier
from megaclassifier.cli import cli
from megaclassifier.crop.core import CutOptions, PlannedCrop
from megaclassifier.crop.cut import cut_image
from megaclassifier.crop.video import MISSING_PYAV, SEEK_GAP, VideoError, decoded_frames
from megaclassifier.formats.videos import frame_problem, is_video_entry, is_video_file

av = pytest.importorskip("av")

DETECTOR = "md_v5a.0.0.pt"
BITS = 10


def numbered_clip(path: Path, codec: str, frames: int, *, gop: int = 30) -> Path:
    """A 320x32 clip whose frame n shows n in binary: bar b (32 px wide) white when bit b is set."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height = 32 * BITS, 32
        stream.pix_fmt = "yuvj444p" if codec == "mjpeg" else "yuv420p"
        if codec != "mjpeg":
            stream.codec_context.gop_size = gop
        for n in range(frames):
            pixels = np.zeros((32, 32 * BITS, 3), np.uint8)
            for bit in range(BITS):
                if n >> bit & 1:
                    pixels[:, bit * 32 : (bit + 1) * 32] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode())
    return path


def number_shown(image: Image.Image) -> int:
    pixels = np.asarray(image)
    return sum(1 << bit for bit in range(BITS) if pixels[16, bit * 32 + 16, 0] > 128)


@pytest.mark.parametrize(("codec", "name"), [("mjpeg", "n.avi"), ("libx264", "n.mp4"), ("libx264", "n.mkv")])
def test_frames_are_numbered_as_megadetector_reads_them(tmp_path, codec, name):
    clip = numbered_clip(tmp_path / name, codec, 1000)
    wanted = [0, 1, 5, 300, 301, 1000 - SEEK_GAP - 10, 999]  # 301 -> 740 and 0 -> 300: seeks on H.264
    got = [(n, number_shown(image)) for n, image in decoded_frames(str(clip), wanted)]
    assert got == [(n, n) for n in wanted]


def test_a_frame_past_the_end_is_one_line(tmp_path):
    clip = numbered_clip(tmp_path / "short.mp4", "libx264", 20)
    with pytest.raises(VideoError) as e:
        list(decoded_frames(str(clip), [3, 25, 30]))
    assert str(e.value) == (
        "frame 25 and 1 later ones past the end of the video (the last frame read is 19; "
        "truncated, or not the video MegaDetector saw?)"
    )


def test_a_zero_frame_video_is_one_line(tmp_path):
    path = tmp_path / "empty.avi"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuvj420p"
        out.start_encoding()  # the header and index, no frame
    with pytest.raises(VideoError, match=r"^the video has no frames that decode \(empty, truncated, or a codec"):
        list(decoded_frames(str(path), [0]))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda clip: clip.read_bytes()[: len(clip.read_bytes()) // 2], "cannot open the video: Invalid data found"),
        (lambda clip: b"", "cannot open the video: Invalid data found"),
        (lambda clip: b"not a video at all" * 100, "cannot open the video: Invalid data found"),
    ],
    ids=["truncated mp4", "zero bytes", "not a video"],
)
def test_an_unreadable_video_is_one_line(tmp_path, content, message):
    clip = numbered_clip(tmp_path / "good.mp4", "libx264", 30)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content(clip))
    result = cut_image("bad.mp4", [_planned(0, 0)], CutOptions(images_dir=str(tmp_path)))
    assert result.failure is not None and result.failure.startswith(message)
    assert "\n" not in result.failure and result.crops == []


def test_a_truncated_mjpeg_avi_keeps_no_crop_and_says_where_it_ended(tmp_path):
    clip = numbered_clip(tmp_path / "good.avi", "mjpeg", 40)
    data = clip.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    result = cut_image("cut.avi", [_planned(0, 2), _planned(1, 35)], CutOptions(images_dir=str(tmp_path)))
    assert result.crops == []
    assert result.failure is not None and result.failure.startswith("frame 35 past the end of the video")


def test_without_pyav_each_video_fails_with_the_install_line(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_av(name, *args, **kwargs):
        if name == "av":
            raise ImportError("No module named 'av'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_av)
    (tmp_path / "x.mp4").write_bytes(b"0")
    result = cut_image("x.mp4", [_planned(0, 0)], CutOptions(images_dir=str(tmp_path)))
    assert result.failure == MISSING_PYAV == "reading videos needs PyAV: pip install 'megaclassifier[video]'"


def test_a_video_without_boxes_is_not_opened(tmp_path):
    result = cut_image("missing.mp4", [], CutOptions(images_dir=str(tmp_path)))
    assert (result.failure, result.planned, result.crops) == (None, 0, [])


@pytest.mark.parametrize(
    ("entry", "video"),
    [
        ({"file": "a/CLIP.MP4"}, True),
        ({"file": "a/clip.mkv"}, True),
        ({"file": "a/img.jpg"}, False),
        ({"file": "a/odd_name", "frame_rate": 30.0}, True),
        ({"file": "a/odd_name", "frames_processed": []}, True),
    ],
)
def test_video_entries(entry, video):
    assert is_video_entry(entry) is video
    assert is_video_file(entry["file"]) is (video and "." in entry["file"])


@pytest.mark.parametrize(
    ("detection", "problem"),
    [
        ({"frame_number": 0}, None),
        ({"frame_number": 120}, None),
        ({}, "no frame_number in a video entry"),
        ({"frame_number": -1}, "frame_number -1 is not a whole number >= 0"),
        ({"frame_number": 2.5}, "frame_number 2.5 is not a whole number >= 0"),
        ({"frame_number": True}, "frame_number True is not a whole number >= 0"),
    ],
)
def test_frame_problem(detection, problem):
    assert frame_problem(detection) == problem


def _planned(index: int, frame: int) -> PlannedCrop:
    return PlannedCrop(index, (0.1, 0.1, 0.5, 0.5), f"k{index}", Path(f"k{index}.jpg"), frame=frame)


# --- the real photos as video frames ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips(cameratrap, tmp_path_factory) -> Path:
    """``clip.avi`` (MJPEG) and ``clip.mp4`` (H.264) of the cameratrap photos, their results beside them."""
    folder = tmp_path_factory.mktemp("clips")
    stills = json.loads((cameratrap / "detections.json").read_text(encoding="utf-8"))
    for codec, name in CODECS.items():
        write_clip(folder / name, cameratrap / "images", codec)
        write_json(folder / f"{name}.json", video_results(stills, name))
    return folder


def invoke(*args: object, exit_code: int = 0):
    result = CliRunner().invoke(cli, ["-q", *map(str, args)])
    assert result.exit_code == exit_code, (result.output, result.exception)
    return result


def test_the_video_results_are_valid_megadetector_files(clips):
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    report = validate_batch_results(str(clips / "clip.avi.json"), options)["validation_results"]
    assert (report["errors"], report["warnings"]) == ([], [])


@pytest.mark.parametrize(("name", "tolerance"), [("clip.avi", 3.0), ("clip.mp4", 4.0)])
def test_crop_cuts_each_frame_as_the_still_photo(clips, cameratrap, tmp_path, name, tolerance):
    invoke("crop", clips / f"{name}.json", tmp_path / "v", "--images-dir", clips, "--square-crops",
           "--threshold", 0.15, "--logdir", tmp_path)  # fmt: skip
    invoke("crop", cameratrap / "detections.json", tmp_path / "s", "--images-dir", cameratrap / "images",
           "--square-crops", "--threshold", 0.15, "--logdir", tmp_path)  # fmt: skip
    video = json.loads((clips / f"{name}.json").read_text())["images"][0]
    names = sorted(p.name for p in (tmp_path / "v").iterdir())
    expected = [f"{name}___frame000003_crop{i:02d}_{DETECTOR}.jpg" for i in range(6)] + [
        f"{name}___frame000005_crop15_{DETECTOR}.jpg",
        *(f"{name}___frame000007_crop{i}_{DETECTOR}.jpg" for i in (16, 17, 18)),
    ]
    assert names == expected  # frames 1 (blank) and 9 (vehicle) have no animal box >= 0.15
    for crop_name in names:
        index = int(crop_name.split("_crop")[1][:2])
        photo, still = still_index(video, index)
        frame_crop = np.asarray(Image.open(tmp_path / "v" / crop_name), dtype=float)
        still_crop = np.asarray(Image.open(tmp_path / "s" / f"{photo}___crop{still:02d}_{DETECTOR}.jpg"), dtype=float)
        assert frame_crop.shape == still_crop.shape
        assert np.abs(frame_crop - still_crop).mean() < tolerance, crop_name


@pytest.fixture(scope="module")
def run_model(b0_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("video_model")
    model = Path(shutil.copyfile(b0_checkpoint, folder / "b0.pt"))
    categories = write_json(folder / "index_to_name.json", {str(i): n for i, n in enumerate("abcde")})
    return model, categories


@pytest.fixture(scope="module")
def tiny(tiny_model, tiny_categories) -> tuple[Path, Path]:
    return tiny_model, tiny_categories


def _run(detections: Path, images: Path, out: Path, model: tuple[Path, Path], *extra: object) -> dict:
    invoke("run", detections, model[0], "--images-dir", images, "--classifier-categories", model[1],
           "--image-size", 64, "--threshold", 0.15, "--square-crops", "--exact", "--classification-threshold", 0,
           "--num-workers", 0, "--output-json", out, "--logdir", out.parent, *extra)  # fmt: skip
    return json.loads(out.read_text(encoding="utf-8"))


def _pairs(video: dict, still_run: dict) -> list[tuple[list, list]]:
    """(frame's classifications, still's classifications) of each classified box of the video."""
    stills = {image["file"]: image for image in still_run["images"]}
    pairs = []
    for index, detection in enumerate(video["detections"]):
        if "classifications" in detection:
            photo, still = still_index(video, index)
            pairs.append((detection["classifications"], stills[photo]["detections"][still]["classifications"]))
    return pairs


def _largest_difference(pairs: list[tuple[list, list]]) -> float:
    return max(abs(dict(frame)[k] - v) for frame, still in pairs for k, v in dict(still).items())


@pytest.mark.parametrize(("name", "tolerance"), [("clip.avi", 0.01), ("clip.mp4", 0.02)])
def test_run_classifies_each_frame_as_the_still_photo(clips, cameratrap, tiny, tmp_path, name, tolerance):
    """The tiny model (channel means) sees the codec's loss alone: each score within ``tolerance``."""
    still_run = _run(cameratrap / "detections.json", cameratrap / "images", tmp_path / "stills.json", tiny)
    merged = _run(clips / f"{name}.json", clips, tmp_path / "out.json", tiny)
    video = merged["images"][0]
    classified = [i for i, d in enumerate(video["detections"]) if "classifications" in d]
    assert classified == [0, 1, 2, 3, 4, 5, 15, 16, 17, 18]
    pairs = _pairs(video, still_run)
    assert [frame[0][0] for frame, _ in pairs] == [still[0][0] for _, still in pairs]
    assert _largest_difference(pairs) < tolerance
    assert video["frame_rate"] == 10.0 and video["frames_processed"] == FRAMES_PROCESSED
    stills = {image["file"]: image for image in still_run["images"]}
    assert [d["frame_number"] for d in video["detections"]] == [
        n for n in FRAMES_PROCESSED for _ in stills[photo_of_frame(n)]["detections"]
    ]
    _validate(tmp_path / "out.json")


def test_run_on_mjpeg_gives_the_stills_top_class_on_an_efficientnet(clips, cameratrap, run_model, tmp_path):
    """The seeded B0 at 64 px is far more sensitive to pixels: the same top class, each score within 0.2."""
    still_run = _run(cameratrap / "detections.json", cameratrap / "images", tmp_path / "stills.json", run_model)
    pairs = _pairs(_run(clips / "clip.avi.json", clips, tmp_path / "out.json", run_model)["images"][0], still_run)
    assert len(pairs) == 10
    assert [frame[0][0] for frame, _ in pairs] == [still[0][0] for _, still in pairs]
    assert _largest_difference(pairs) < 0.2


def _validate(path: Path) -> None:
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    options = ValidateBatchResultsOptions()
    options.raise_errors = True
    assert validate_batch_results(str(path), options)["validation_results"]["errors"] == []


def test_a_broken_video_is_counted_and_the_others_classified(clips, cameratrap, run_model, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(clips / "clip.avi", images / "good.avi")
    (images / "cut.mp4").write_bytes((clips / "clip.mp4").read_bytes()[:100_000])
    stills = json.loads((cameratrap / "detections.json").read_text(encoding="utf-8"))
    good, cut = video_results(stills, "good.avi"), video_results(stills, "cut.mp4")
    detections = write_json(tmp_path / "md.json", {**good, "images": good["images"] + cut["images"]})
    result = CliRunner().invoke(
        cli,
        ["-q", "run", str(detections), str(run_model[0]), "--images-dir", str(images), "--classifier-categories",
         str(run_model[1]), "--image-size", "64", "--threshold", "0.15", "--num-workers", "0",
         "--output-json", str(tmp_path / "out.json"), "--logdir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        ", 10 detections merged, 2 images with boxes (0 without, not opened), 1 images failed: wrote" in result.output
    )
    log = json.loads(next(tmp_path.glob("run_log_*.json")).read_text())
    assert log["images_failed_download_or_crop"] == ["cut.mp4"]
    assert log["failure_reasons"]["cut.mp4"] == "cannot open the video: Invalid data found when processing input"


def test_a_box_without_frame_number_is_an_invalid_box(clips, tmp_path):
    data = json.loads((clips / "clip.avi.json").read_text())
    del data["images"][0]["detections"][15]["frame_number"]
    detections = write_json(tmp_path / "md.json", data)
    invoke("crop", detections, tmp_path / "crops", "--images-dir", clips, "--threshold", 0.15, "--logdir", tmp_path)
    log = json.loads(next(tmp_path.glob("crop_detections_log_*.json")).read_text())
    assert log["invalid_boxes"] == {f"clip.avi___crop15_{DETECTOR}.jpg": "no frame_number in a video entry"}
    assert log["num_new_crops"] == 9


def test_run_video_summary_best_frame_and_max_per_class(clips, run_model, tmp_path):
    best = _run(clips / "clip.avi.json", clips, tmp_path / "best.json", run_model, "--video-summary", "best-frame")
    video = best["images"][0]
    # frame 3 (elephants): 6 boxes >= 0.3 summing to 4.905, against 2.848 for frame 7 (cattle)
    assert {d["frame_number"] for d in video["detections"]} == {3}
    assert len(video["detections"]) == 15
    assert best["info"]["classification_postprocessing"][-1] == {
        "step": "video_summary",
        "rule": "best-frame",
        "megaclassifier_version": megaclassifier.__version__,
    }
    _validate(tmp_path / "best.json")
    top = _run(clips / "clip.avi.json", clips, tmp_path / "max.json", run_model, "--video-summary", "max-per-class")
    kept = top["images"][0]["detections"]
    full = _run(clips / "clip.avi.json", clips, tmp_path / "full.json", run_model)["images"][0]["detections"]
    by_class: dict[str, list[dict]] = {}
    for d in full:  # the rule, worked out again here: the most confident detection of each class
        key = d["classifications"][0][0] if "classifications" in d else "category " + d["category"]
        by_class.setdefault(key, []).append(d)
    expected = sorted((max(g, key=lambda d: d["conf"]) for g in by_class.values()), key=lambda d: -d["conf"])
    assert kept == expected
    assert kept[0]["category"] == "3" and kept[0]["frame_number"] == 9  # the vehicle, conf 0.977


def test_report_shows_the_video_boxes_cut_from_their_frames(clips, cameratrap, tiny, tmp_path):
    from megaclassifier.crop.geometry import crop_box, extract_crop
    from megaclassifier.formats.results_table import read_results_table
    from megaclassifier.images.loading import load_image
    from megaclassifier.report import write_report
    from megaclassifier.report.thumbs import THUMB_SIZE, thumb_name

    _run(clips / "clip.avi.json", clips, tmp_path / "out.json", tiny)
    summary = write_report(tmp_path / "out.json", tmp_path / "report", images_dir=clips)
    assert (summary.images, summary.failed_images) == (1, 0)
    assert summary.detections == 11  # the 10 classified animal boxes and the vehicle (conf >= 0.15)
    assert len(list((tmp_path / "report" / "thumbs").rglob("*.jpg"))) == 11
    assert len(list((tmp_path / "report" / "previews").rglob("*.jpg"))) == 4  # a preview per frame: 3, 5, 7, 9
    bear = next(r for r in read_results_table(tmp_path / "out.json", threshold=0.15).rows if r.index == 15)
    assert bear.frame == 5
    thumb = np.asarray(Image.open(tmp_path / "report" / thumb_name(bear)), dtype=float)
    still = load_image("american_black_bear.jpg", images_dir=cameratrap / "images").image
    expected = extract_crop(still, crop_box(bear.bbox, still.width, still.height, square=True))
    expected.thumbnail((THUMB_SIZE, THUMB_SIZE))
    assert thumb.shape == (THUMB_SIZE, THUMB_SIZE, 3)
    assert np.abs(thumb - np.asarray(expected, dtype=float)).mean() < 3
    pages = "".join(p.read_text() for p in (tmp_path / "report").rglob("*.html"))
    assert "clip.avi frame 5 #15" in pages and "clip.avi frame 3 #0" in pages


def test_run_resumes_after_the_last_whole_video(clips, cameratrap, tiny, tmp_path, monkeypatch):
    """Ctrl-C after 12 crops: the journal holds clip.avi (10 crops), the rerun decodes only clip.mp4."""
    import megaclassifier.run.pipeline as pipeline_module

    stills = json.loads((cameratrap / "detections.json").read_text(encoding="utf-8"))
    avi, mp4 = video_results(stills, "clip.avi"), video_results(stills, "clip.mp4")
    detections = write_json(tmp_path / "md.json", {**avi, "images": avi["images"] + mp4["images"]})
    clean = _run(detections, clips, tmp_path / "clean" / "out.json", tiny)
    original = pipeline_module.classified_rows

    def interrupted(*args, **kwargs):
        for n, row in enumerate(original(*args, **kwargs)):
            if n == 12:
                raise KeyboardInterrupt
            yield row

    out = tmp_path / "resumed" / "out.json"
    out.parent.mkdir()
    with monkeypatch.context() as m:
        m.setattr(pipeline_module, "classified_rows", interrupted)
        invoke("run", detections, tiny[0], "--images-dir", clips, "--classifier-categories", tiny[1],
               "--image-size", 64, "--threshold", 0.15, "--square-crops", "--exact", "--classification-threshold",
               0, "--num-workers", 0, "--output-json", out, "--logdir", out.parent, exit_code=130)  # fmt: skip
    records = [json.loads(line) for line in (out.parent / "out.json.journal").read_text().splitlines()[1:]]
    assert [(r["file"], len(r["crops"])) for r in records] == [("clip.avi", 10)]
    resumed = _run(detections, clips, out, tiny)
    for data in (clean, resumed):
        del data["info"]["classification_completion_time"]
    assert resumed == clean


def test_the_gpu_decoder_hands_videos_to_the_cpu_path_unread(tmp_path):
    from megaclassifier.run.gpu_decode import read_file
    from megaclassifier.run.prepare import PrepareOptions

    (tmp_path / "clip.mp4").write_bytes(b"x" * 1000)
    read = read_file("clip.mp4", [_planned(0, 3)], PrepareOptions(CutOptions(images_dir=str(tmp_path)), 64))
    assert (read.cpu_reason, read.data) == ("video", b"")


def test_shards_with_a_video_summary_combine_into_the_unsharded_file(clips, cameratrap, tiny, tmp_path):
    images = tmp_path / "images"
    for folder, name in (("cam1", "clip.avi"), ("cam2", "clip.mp4")):
        (images / folder).mkdir(parents=True)
        shutil.copy(clips / name, images / folder / name)
    shutil.copy(cameratrap / "images" / "ocelot.jpg", images / "ocelot.jpg")
    stills = json.loads((cameratrap / "detections.json").read_text(encoding="utf-8"))
    avi, mp4 = video_results(stills, "cam1/clip.avi"), video_results(stills, "cam2/clip.mp4")
    ocelot = [image for image in stills["images"] if image["file"] == "ocelot.jpg"]
    detections = write_json(tmp_path / "md.json", {**avi, "images": avi["images"] + mp4["images"] + ocelot})
    summary = ("--video-summary", "max-per-class")
    unsharded = _run(detections, images, tmp_path / "all" / "out.json", tiny, *summary)
    shards = [tmp_path / f"s{i}" / "out.json" for i in range(3)]
    held = [len(_run(detections, images, shard, tiny, *summary, "--shard", f"{i}/3")["images"])
            for i, shard in enumerate(shards)]  # fmt: skip
    assert held == [2, 0, 1]  # the sha256 of each path picks its shard
    invoke("combine", tmp_path / "combined.json", *shards)
    combined = json.loads((tmp_path / "combined.json").read_text(encoding="utf-8"))
    for data in (combined, unsharded):
        del data["info"]["classification_completion_time"]
    assert combined == unsharded
    assert [len(image["detections"]) for image in combined["images"]] == [4, 4, 1]  # 20 per video before


def test_a_video_not_found_locally_is_streamed_from_the_container_url(tmp_path):
    remote = tmp_path / "remote"
    (remote / "cam").mkdir(parents=True)
    numbered_clip(remote / "cam" / "r.avi", "mjpeg", 10)
    options = CutOptions(images_dir=str(tmp_path / "local"), container_url=remote.as_uri())
    whole_frame = PlannedCrop(0, (0.0, 0.0, 1.0, 1.0), "k", Path("k.jpg"), frame=6)
    result = cut_image("cam/r.avi", [whole_frame], options, convert=number_shown)
    assert result.failure is None
    assert [(crop.frame, shown) for crop, shown in result.crops] == [(6, 6)]
    missing = cut_image("cam/gone.avi", [_planned(0, 6)], CutOptions(images_dir=str(tmp_path / "local")))
    assert missing.failure == f"video not found under {tmp_path / 'local'}"


@pytest.mark.slow
def test_ray_with_a_video_summary_equals_the_local_run(clips, cameratrap, tiny, tmp_path):
    """``--ray`` goes through the same driver: frames decoded on the cluster, the summary after the merge."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'megaclassifier[ray]')")
    stills = json.loads((cameratrap / "detections.json").read_text(encoding="utf-8"))
    avi, mp4 = video_results(stills, "clip.avi"), video_results(stills, "clip.mp4")
    detections = write_json(tmp_path / "md.json", {**avi, "images": avi["images"] + mp4["images"]})
    summary = ("--video-summary", "max-per-class", "--video-summary-nth", 2)
    local = _run(detections, clips, tmp_path / "local" / "out.json", tiny, *summary)
    out = tmp_path / "ray" / "out.json"
    out.parent.mkdir()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        result = invoke("run", detections, tiny[0], "--images-dir", clips, "--classifier-categories", tiny[1],
                        "--image-size", 64, "--threshold", 0.15, "--square-crops", "--exact",
                        "--classification-threshold", 0, "--output-json", out, "--logdir", out.parent, "--ray",
                        *summary)  # fmt: skip
    finally:
        ray.shutdown()
    on_ray = json.loads(out.read_text(encoding="utf-8"))
    for data in (local, on_ray):
        del data["info"]["classification_completion_time"]
    assert on_ray == local
    assert on_ray["info"]["classification_postprocessing"][-1] == {
        "step": "video_summary",
        "rule": "max-per-class",
        "nth_highest_confidence": 2,
        "megaclassifier_version": megaclassifier.__version__,
    }
    assert "2 videos summarised (max-per-class: " in result.output
