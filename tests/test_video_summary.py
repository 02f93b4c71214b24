"""``--video-summary``: best-frame and max-per-class on hand-worked video entries, and through smooth."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers import write_json

from megaclassifier.cli import cli
from megaclassifier.postprocess.videos import best_frame, max_per_class, summarize_videos


def det(frame, conf, w=0.1, h=0.1, top=None, category="1"):
    out = {"category": category, "conf": conf, "bbox": [0.0, 0.0, w, h], "frame_number": frame}
    if top is not None:
        out["classifications"] = [[top[0], top[1]]]
    return out


# frame 0: 0.5 + 0.4 = 0.9 (0.2 not counted); frame 10: 0.9; frame 20: 0.85 + 0.25 (not counted) = 0.85
TIED = [det(0, 0.5), det(0, 0.4), det(0, 0.2), det(10, 0.9, w=0.3), det(20, 0.85), det(20, 0.25)]


@pytest.mark.parametrize(
    ("detections", "frame"),
    [
        (TIED, 10),  # 0.9 = 0.9: frame 10's box area 0.03 beats frame 0's 0.01 + 0.01
        ([det(0, 0.5, w=0.2), det(0, 0.4), det(10, 0.9, w=0.2)], 0),  # area 0.03 > 0.02
        ([det(4, 0.6), det(2, 0.6)], 2),  # same sum, same area: the earlier frame
        ([det(0, 0.29), det(5, 0.1), det(5, 0.25)], 0),  # nothing >= 0.3: the frame of the most confident box
        ([det(0, 0.2, w=0.5), det(5, 0.2)], 0),  # ... ties by its area
        ([det(3, 1.0), det(3, 0.3), det(8, 1.0), det(8, 0.29)], 3),  # 0.3 counts (>=), 0.29 does not
        ([], None),
    ],
)
def test_best_frame(detections, frame):
    assert best_frame(detections) == frame


DEER, ELK = "0", "1"
MIXED = [
    det(0, 0.9, top=(DEER, 0.6)),
    det(5, 0.95, top=(DEER, 0.7)),
    det(5, 0.8, top=(ELK, 0.9)),
    det(9, 0.8, top=(ELK, 0.95)),
    det(9, 0.7, category="2"),
    det(9, 0.05),  # an animal box below the crop threshold: no classifications
]


def test_max_per_class_keeps_each_class_most_confident():
    kept = max_per_class(MIXED)
    # deer: 0.95 (frame 5); elk: 0.8 twice, the higher class score (0.95, frame 9) wins; person 0.7; animal 0.05
    assert kept == [MIXED[1], MIXED[3], MIXED[4], MIXED[5]]


def test_max_per_class_nth():
    assert max_per_class(MIXED, nth=2) == [MIXED[0], MIXED[2]]  # groups of one are dropped
    assert max_per_class(MIXED, nth=3) == []


def test_summarize_videos_leaves_stills_and_records_the_step():
    still = {"file": "a.jpg", "detections": [det(0, 0.9)]}
    video = {"file": "v.mp4", "frame_rate": 30.0, "frames_processed": [0, 10, 20], "detections": list(TIED)}
    failed = {"file": "w.mp4", "frame_rate": -1.0, "failure": "x", "detections": None}
    data = {"info": {"format_version": "1.5"}, "images": [still, video, failed]}
    summary = summarize_videos(data, "best-frame")
    assert video["detections"] == [TIED[3]] and video["frames_processed"] == [0, 10, 20]
    assert still["detections"] == [det(0, 0.9)] and failed["detections"] is None
    record = data["info"]["classification_postprocessing"][0]
    assert (record["step"], record["rule"]) == ("video_summary", "best-frame")
    assert (summary.videos, summary.detections_before, summary.detections_after) == (1, 6, 1)
    summarize_videos(data, "max-per-class", nth=2)
    assert data["info"]["classification_postprocessing"][1]["nth_highest_confidence"] == 2


def test_smooth_treats_a_video_as_one_group_then_summarises(tmp_path):
    """Five frames say deer, one says elk: smoothing relabels the elk frame, then max-per-class keeps one deer."""
    frames = [det(n, 0.9 - n / 100, top=(DEER, 0.8)) for n in range(0, 50, 10)] + [det(60, 0.99, top=(ELK, 0.6))]
    data = {
        "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal", "2": "person"},
        "classification_categories": {DEER: "deer", ELK: "elk"},
        "images": [
            {"file": "cam/v.mp4", "frame_rate": 10.0, "frames_processed": list(range(70)), "detections": frames}
        ],
    }
    source = write_json(tmp_path / "in.json", data)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(cli, ["smooth", str(source), str(out), "--video-summary", "max-per-class"])
    assert result.exit_code == 0, result.output
    assert "; 1 videos summarised (max-per-class)" in result.output
    written = json.loads(out.read_text())
    kept = written["images"][0]["detections"]
    assert len(kept) == 1 and kept[0]["frame_number"] == 60 and kept[0]["classifications"][0][0] == DEER
    steps = [s["step"] for s in written["info"]["classification_postprocessing"]]
    assert steps == ["smooth", "video_summary"]


def test_video_summary_flag_is_checked(tmp_path):
    source = write_json(tmp_path / "in.json", {"images": []})
    result = CliRunner().invoke(cli, ["smooth", str(source), str(tmp_path / "o.json"), "--video-summary", "median"])
    assert result.exit_code == 2
    assert "Invalid value for '--video-summary': 'median' is not one of 'best-frame', 'max-per-class'." in result.output


def test_video_summary_nth_needs_max_per_class(tmp_path):
    source = write_json(tmp_path / "in.json", {"images": []})
    for extra in (["--video-summary-nth", "2"], ["--video-summary", "best-frame", "--video-summary-nth", "2"]):
        result = CliRunner().invoke(cli, ["smooth", str(source), str(tmp_path / "o.json"), *extra])
        assert result.exit_code == 2
        assert "Error: --video-summary-nth applies to --video-summary max-per-class" in result.output
