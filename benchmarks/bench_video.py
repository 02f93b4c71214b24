"""Benchmark video entries: frames/s decoded and crops/s end to end on a 1080p clip, and peak memory.

    .venv/bin/python benchmarks/bench_video.py [--frames 240] [--every 10] [--image-size 224]
        [--arch efficientnet-b0] [--codecs libx264,mjpeg]

Builds a 1920x1080 clip of FRAMES frames at 30 frames/s per codec from a real
photo of the test set (a 1080p window of it sliding 4 px a frame, so every frame
differs), and a MegaDetector video results file in which one frame in EVERY
holds the photo's animal boxes. Prints, each in a child process (peak RSS its own):

* decoding alone (:func:`megaclassifier.crop.video.decoded_frames`): every frame, and one in EVERY;
* ``megaclassifier run`` end to end (decode, cut, classify with a seeded EfficientNet, merge):
  crops/s;
* the same decode and ``run`` on a clip 4x as long: frames are streamed, so peak memory must not
  grow with the video's length (only the crops of one video are held, as for a photo's boxes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _workload import measure, source_dir
from bench_classify import make_model

WIDTH, HEIGHT, RATE = 1920, 1080, 30
PHOTO = "american_black_bear.jpg"

DECODE = """
import sys, time
from megaclassifier.crop.video import decoded_frames
path, every, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.perf_counter()
count = sum(1 for _ in decoded_frames(path, list(range(0, frames, every))))
print(count, time.perf_counter() - start)
"""


def write_clip(path: Path, photo: Path, frames: int, codec: str) -> None:
    """A 1080p window sliding over ``photo``, ``frames`` frames (MJPEG at qscale 2, H.264 crf 18)."""
    import av
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(photo).convert("RGB"))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=RATE)
        stream.width, stream.height = WIDTH, HEIGHT
        if codec == "mjpeg":
            stream.pix_fmt = "yuvj420p"
            stream.codec_context.qmin = stream.codec_context.qmax = 2
        else:
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": "18", "preset": "ultrafast"}
        span = image.shape[1] - WIDTH
        for n in range(frames):
            x = (4 * n) % (2 * span)
            x = x if x <= span else 2 * span - x
            window = np.ascontiguousarray(image[:HEIGHT, x : x + WIDTH])
            out.mux(stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")))
        out.mux(stream.encode())


def write_results(path: Path, video: str, frames: int, every: int, boxes: list[list[float]]) -> int:
    """MegaDetector video results: ``boxes`` (animal, conf 0.9) on every ``every``-th frame; return the box count."""
    detections = [
        {"category": "1", "conf": 0.9, "bbox": box, "frame_number": n} for n in range(0, frames, every) for box in boxes
    ]
    data = {
        "info": {"format_version": "1.5", "detector": "md_v5a.0.0.pt"},
        "detection_categories": {"1": "animal"},
        "images": [
            {
                "file": video,
                "frame_rate": float(RATE),
                "frames_processed": list(range(0, frames, every)),
                "detections": detections,
            }
        ],
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return len(detections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=240, help="frames of the short clip (the long one has 4x)")
    parser.add_argument("--every", type=int, default=5, help="one frame in EVERY holds boxes")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--arch", default="efficientnet-b0")
    parser.add_argument("--codecs", default="libx264,mjpeg")
    args = parser.parse_args()
    # four animals on each frame with boxes, in the 1080p window
    boxes = [[0.30, 0.35, 0.35, 0.45], [0.05, 0.50, 0.15, 0.20], [0.70, 0.10, 0.20, 0.25], [0.55, 0.60, 0.10, 0.30]]
    print(f"{WIDTH}x{HEIGHT} at {RATE} frames/s; 4 boxes on 1 frame in {args.every}; run at {args.image_size} px")
    print("decode: frames handed out, and the clip's frames walked per second (up to the last one asked for);")
    print("run: crops classified per second, the whole command (start-up included; ONNX export cached first),")
    print("     and in brackets as run's closing line gives it (from the model's loading on)")
    print(f"{'codec':<9}{'frames':>7} {'what':<33}{'count':>7}{'seconds':>9}{'per s':>8}{'peak MiB':>10}")
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        root = Path(tmp)
        model, categories = make_model(root, args.arch)
        exported = False
        for codec in args.codecs.split(","):
            for frames in (args.frames, 4 * args.frames):
                clip = root / f"clip_{codec}_{frames}.{'avi' if codec == 'mjpeg' else 'mp4'}"
                photo = source_dir() / "images" / PHOTO
                # in a child: this process stays small, so the children's peak memory is theirs (see make_model)
                subprocess.run([sys.executable, __file__, "--write-clip", str(clip), str(photo), str(frames), codec],
                               check=True)  # fmt: skip
                for every, what in ((1, "decode every frame"), (args.every, f"decode 1 frame in {args.every}")):
                    out = root / "decode.txt"
                    m = measure([sys.executable, "-c", DECODE, str(clip), str(every), str(frames)], stdout_path=out)
                    count, seconds = out.read_text().split()
                    walked = (int(count) - 1) * every + 1
                    row = f"{codec:<9}{frames:>7} {what:<33}{count:>7}{float(seconds):>9.2f}"
                    print(f"{row}{walked / float(seconds):>8.1f}{m.peak_rss_mib:>10.0f}")
                detections = root / f"md_{codec}_{frames}.json"
                crops = write_results(detections, clip.name, frames, args.every, boxes)
                command = [sys.executable, "-m", "megaclassifier", "-q", "run", str(detections), str(model),
                           "--classifier-categories", str(categories), "--images-dir", str(root), "--image-size",
                           str(args.image_size), "--output-json", str(root / "out.json"), "--logdir", str(root),
                           "--restart"]  # fmt: skip
                if not exported:
                    measure(command)  # the one-time ONNX export, cached beside the model
                    exported = True
                log = root / "run_stderr.txt"
                with open(log, "w") as stderr:
                    m = measure(command, stderr=stderr)
                own = log.read_text().rsplit(" crops classified (", 1)[-1].split(" crops/s")[0]
                print(f"{codec:<9}{frames:>7} {'run end to end (crops)':<33}{crops:>7}{m.seconds:>9.2f}"
                      f"{crops / m.seconds:>8.1f}{m.peak_rss_mib:>10.0f}  ({own} crops/s)")  # fmt: skip
                clip.unlink()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-clip"]:
        write_clip(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
