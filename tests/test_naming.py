"""Crop file names: the paired crop_filename / parse_crop_filename, and safe paths."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from megaclassifier.formats.naming import CropName, crop_filename, crop_path, parse_crop_filename, safe_relative_path


@pytest.mark.parametrize(
    ("file", "index", "detector", "expected"),
    [
        ("sub/IMG_0001.JPG", 0, "md_v5a.0.0.pt", "sub/IMG_0001.JPG___crop00_md_v5a.0.0.pt.jpg"),
        ("a.png", 7, "megadetector_v4.1", "a.png___crop07_megadetector_v4.1.jpg"),
        ("a.jpg", 123, "unknown", "a.jpg___crop123_unknown.jpg"),
        ("gt/a.jpg", 3, None, "gt/a.jpg___crop03.jpg"),
        ("cam\\x_y.jpg", 10, "md_v5b.0.0.pt", "cam\\x_y.jpg___crop10_md_v5b.0.0.pt.jpg"),
    ],
)
def test_crop_filename_round_trip(file, index, detector, expected):
    assert crop_filename(file, index, detector) == expected
    assert parse_crop_filename(expected) == CropName(file, index, detector)


@pytest.mark.parametrize("bad", ["a.jpg", "a.jpg___cropXX_md.jpg", "___crop00_md.jpg", "a.jpg___crop00_md.png"])
def test_parse_rejects_non_crop_names(bad):
    with pytest.raises(ValueError, match="not a crop file name"):
        parse_crop_filename(bad)


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("cam1/IMG.JPG", "cam1/IMG.JPG"),
        ("/data/cam1/IMG.JPG", "data/cam1/IMG.JPG"),
        ("C:\\data\\IMG.JPG", "C/data/IMG.JPG"),
        ("d:/x/IMG.JPG", "d/x/IMG.JPG"),
        ("../../etc/IMG.JPG", "__/__/etc/IMG.JPG"),
        ("a/./b/../c.jpg", "a/b/__/c.jpg"),
        ("\\\\server\\share\\c.jpg", "server/share/c.jpg"),
    ],
)
def test_safe_relative_path(file, expected):
    assert safe_relative_path(file) == PurePosixPath(expected)


def test_crop_path_stays_inside_crops_dir(tmp_path):
    path = crop_path(tmp_path, "../../outside.jpg", 0, "md")
    assert path == tmp_path / "__" / "__" / "outside.jpg___crop00_md.jpg"
    assert crop_path(tmp_path, "C:\\a\\b.jpg", 2, "md") == Path(tmp_path, "C", "a", "b.jpg___crop02_md.jpg")


@pytest.mark.parametrize(
    ("file", "index", "detector", "frame", "expected"),
    [
        ("cam1/CLIP.MP4", 3, "md_v5a.0.0.pt", 120, "cam1/CLIP.MP4___frame000120_crop03_md_v5a.0.0.pt.jpg"),
        ("a.avi", 0, None, 0, "a.avi___frame000000_crop00.jpg"),
        ("a.mkv", 123, "unknown", 1234567, "a.mkv___frame1234567_crop123_unknown.jpg"),
        ("x___crop01_md.jpg.mp4", 2, "md", 5, "x___crop01_md.jpg.mp4___frame000005_crop02_md.jpg"),
        ("x___frame000001_crop00_md.jpg", 4, "md", None, "x___frame000001_crop00_md.jpg___crop04_md.jpg"),
    ],
)
def test_video_crop_filename_round_trip(file, index, detector, frame, expected):
    assert crop_filename(file, index, detector, frame) == expected
    assert parse_crop_filename(expected) == CropName(file, index, detector, frame)


def test_video_crop_path(tmp_path):
    path = crop_path(tmp_path, "cam/CLIP.MP4", 1, "md", 42)
    assert path == tmp_path / "cam" / "CLIP.MP4___frame000042_crop01_md.jpg"
