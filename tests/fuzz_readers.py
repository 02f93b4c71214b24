"""The fuzz driver of every reader: run in a subprocess under an address-space limit by ``test_fuzz_readers.py``.

    python tests/fuzz_readers.py READER MAX_EXAMPLES LIMIT_BYTES

It caps its own address space (``RLIMIT_AS``) first, so a reader whose memory runs away ends
this process with a ``MemoryError``, never CI's machine. Then Hypothesis (derandomised, no
example database) feeds READER files built from valid seeds, their byte mutations, random
bytes and hostile constructs (deep nesting, 5,000-digit numbers, lone surrogates, NUL bytes,
a decompression bomb). Each input must give a result, or the reader's one-line error that
names the file; anything else (a traceback) fails. Last line: a JSON summary with the
examples tried, the outcomes, and the process's peak resident memory (``VmHWM``).
"""

from __future__ import annotations

import resource
import sys

if __name__ == "__main__":
    _limit = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))

import io
import json
import os
import struct
import tempfile
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from megaclassifier.errors import MegaClassifierError

DET = "md_v5a.0.0.pt"
MD_SEED = {
    "info": {"format_version": "1.4", "detector": DET},
    "detection_categories": {"1": "animal", "2": "person"},
    "images": [
        {"file": "cam1/a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4]}]},
        {"file": "b.jpg", "failure": "image access failure", "detections": None},
    ],
}
RESULTS_SEED = {
    **MD_SEED,
    "classification_categories": {"0": "deer", "1": "elk"},
    "images": [
        {
            "file": "cam1/a.jpg",
            "detections": [
                {
                    "category": "1",
                    "conf": 0.9,
                    "bbox": [0.1, 0.2, 0.3, 0.4],
                    "classifications": [["0", 0.8], ["1", 0.1]],
                }
            ],
        }
    ],
}


_DOG = "3d80f1d6-b1df-4966-9ff4-94053c7a902a;mammalia;carnivora;canidae;canis;familiaris;domestic dog"
_CANIDAE = "3184697f-51ad-4608-9a28-9edb5500159c;mammalia;carnivora;canidae;;;canine family"
PREDICTIONS_SEED = {  # SpeciesNet 5.0.6
    "info": {"format_version": "20261015"},
    "predictions": [
        {"filepath": "/data/cam1/a.jpg", "country": "USA", "detections": [
            {"category": "1", "label": "animal", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4],
             "raw_classifications": {"classes": [_DOG, _CANIDAE], "scores": [0.6, 0.3]},
             "processed_classification": {"class": _CANIDAE, "score": 0.9, "source": "classifier+rollup_to_family"}},
            {"category": "0", "label": "whole_image_classification", "conf": 1.0, "bbox": [0, 0, 1, 1],
             "raw_classifications": {"classes": [_DOG], "scores": [0.6]}}],
         "model_version": "4.0.1a"},
        {"filepath": "/data/b.jpg", "failures": ["CLASSIFIER", "DETECTOR"]},
    ],
}  # fmt: skip
LEGACY_PREDICTIONS_SEED = {  # SpeciesNet 5.0.5 and before
    "predictions": [
        {"filepath": "c.jpg", "classifications": {"classes": [_DOG], "scores": [0.7]},
         "detections": [{"category": "2", "label": "human", "conf": 0.8, "bbox": [0.1, 0.2, 0.3, 0.4]}],
         "prediction": _DOG, "prediction_score": 0.7, "prediction_source": "classifier", "model_version": "4.0.1a"},
        {"filepath": "d.jpg", "detections": [], "prediction": _CANIDAE, "prediction_score": 0.66},
    ],
}  # fmt: skip


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 150)).save(buf, "JPEG", exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00")
    return buf.getvalue()


SEEDS: dict[str, list[bytes]] = {
    "detections_json": [json.dumps(MD_SEED).encode()],
    "results_json": [json.dumps(RESULTS_SEED).encode(), json.dumps({**RESULTS_SEED, "x": "\udcff"}).encode()],
    "probability_csv": [f"path,deer,elk\na.jpg___crop00_{DET}.jpg,0.9,0.1\n".encode()],
    "label_index_json": [b'{"0": "deer", "1": "elk"}'],
    "target_mapping_json": [b'{"cervid": ["deer", "elk"]}'],
    "label_spec_csv": [b"output_label,type,content\ndeer,row,idfg|deer\nelk,max_count,100\n"],
    "taxonomy_csv": [
        b"dataset_name,query,taxonomy_level,scientific_name,taxonomy_string\n"
        b"idfg,deer,species,odocoileus virginianus,\"[(1, 'species', 'odocoileus virginianus', []),"
        b" (2, 'genus', 'odocoileus', [])]\"\n"
    ],
    "class_taxonomy_csv": [
        b"name,kingdom,phylum,class,order,family,genus,species,common\n"
        b"deer,animalia,chordata,mammalia,artiodactyla,cervidae,odocoileus,virginianus,white-tailed deer\n"
    ],
    "deployments_csv": [b"folder,latitude,longitude,locationName\ncam1,-2.333,34.833,Serengeti\n"],
    "sequences_json": [b'{"images": [{"file_name": "cam1/a.jpg", "seq_id": "s1"}]}'],
    "image": [_jpeg(), _png(8, 8)],
    "predictions_json": [json.dumps(PREDICTIONS_SEED).encode(), json.dumps(LEGACY_PREDICTIONS_SEED).encode()],
}


def _read_probability_csv(path: Path) -> Any:
    from megaclassifier.formats.probabilities import ProbabilityCsvReader

    with ProbabilityCsvReader(path) as reader:
        return [chunk[1].shape for chunk in reader.iter_chunks()]


def _read_results(path: Path) -> Any:
    from megaclassifier.formats.detections_stream import StreamedResults

    results = StreamedResults(path)
    return sum(1 for _ in results.images()), sum(1 for _ in results.files())


def _read_predictions(path: Path) -> Any:
    """A predictions.json through both readers (converted the same way)."""
    from megaclassifier.formats.detections import load_detections

    loaded = load_detections(path)
    return len(loaded.images), _read_results(path)


def _read_sequences(path: Path) -> Any:
    from megaclassifier.postprocess.sequences import sequences_from_cct

    return sequences_from_cct(path, ["cam1/a.jpg"], results="r.json")


def _read_image(path: Path) -> Any:
    from megaclassifier.images.exif import read_capture_time
    from megaclassifier.images.loading import ImageLoadError, load_image

    outcomes = []
    for reader in (lambda: load_image(path.name, images_dir=path.parent), lambda: read_capture_time(path)):
        try:
            outcomes.append(reader())
        except ImageLoadError as e:  # the image's own failure, recorded by the command
            outcomes.append(str(e))
    return outcomes


def _readers() -> dict[str, Callable[[Path], Any]]:
    from megaclassifier.export.camtrap import read_deployments_csv
    from megaclassifier.formats.detections import load_detections
    from megaclassifier.formats.probabilities import load_label_index
    from megaclassifier.labels.aggregate import load_target_mapping
    from megaclassifier.labels.descriptions import load_taxonomy_file
    from megaclassifier.labels.spec_csv import read_label_spec_csv
    from megaclassifier.labels.taxonomy import load_taxonomy_csv

    return {
        "detections_json": load_detections,
        "results_json": _read_results,
        "probability_csv": _read_probability_csv,
        "label_index_json": load_label_index,
        "target_mapping_json": load_target_mapping,
        "label_spec_csv": read_label_spec_csv,
        "taxonomy_csv": load_taxonomy_csv,
        "class_taxonomy_csv": load_taxonomy_file,
        "deployments_csv": read_deployments_csv,
        "sequences_json": _read_sequences,
        "image": _read_image,
        "predictions_json": _read_predictions,
    }


HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"images": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}",
    b'{"images": [], "info": {"n": ' + b"9" * 5000 + b"}}",
    b'{"images": [{"file": "a.jpg", "detections": [{"category": "1", "bbox": [1e999, 0, 1, ' + b"9" * 400 + b"]}]}]}",
    b'{"images": [{"file": "\\udcff\\ud800.jpg", "detections": []}]}',
    b'{"predictions": [{"filepath": "a.jpg", "detections": [' + b"[" * 50_000 + b"]" * 50_000 + b"]}]}",
    b'{"predictions": [{"filepath": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1], '
    b'"raw_classifications": {"classes": ["u;;;;;;x"], "scores": [' + b"9" * 5000 + b"]}}]}]}",
    b'{"predictions": [{"filepath": "a.jpg", "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1], '
    b'"raw_classifications": {"classes": ["u;;;;;;x"], "scores": ["high"]}}]}]}',
    b'{"predictions": [{"filepath": "\\udcff.jpg", "prediction": "u;;;;;;x", "prediction_score": 1e999}]}',
    b"\xef\xbb\xbf" + json.dumps(MD_SEED).encode(),
    b"\x00" * 64,
    b"\xff\xfe" + "path,a\n".encode("utf-16-le"),
    b"path," + b"x" * 200_000 + b"\n",
    _png(30_000, 30_000),
    _png(0, 0),
]


def _mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(seed)
    for position, length, replacement in edits:
        at = position % (len(data) + 1)
        data[at : at + length] = replacement
    return bytes(data)


def inputs(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    edits = st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 6), st.binary(max_size=6)), min_size=1, max_size=4
    )
    tokens = st.sampled_from([b"[", b"]", b"{", b"}", b",", b'"', b":", b"\\", b"\n", b"\r", b"NaN", b"-", b"e9"])
    return st.one_of(
        st.sampled_from(seeds),
        st.tuples(st.sampled_from(seeds), edits).map(lambda pair: _mutate(*pair)),
        st.tuples(
            st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 10_000), st.just(0), tokens), max_size=6)
        ).map(lambda pair: _mutate(*pair)),
        st.binary(max_size=300),
        st.sampled_from(HOSTILE),
    )


def main(name: str, max_examples: int) -> dict[str, Any]:
    read = _readers()[name]
    outcomes: Counter[str] = Counter()
    folder = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    path = folder / ("input.png" if name == "image" else "input")

    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(data=inputs(SEEDS[name]))
    def one(data: bytes) -> None:
        path.write_bytes(data)
        try:
            read(path)
            outcomes["result"] += 1
        except MegaClassifierError as e:
            assert str(path) in str(e), f"the error does not name the file: {e}"
            outcomes["one-line error"] += 1

    one()
    for hostile in HOSTILE:  # each, whatever Hypothesis drew
        one.hypothesis.inner_test(hostile)  # type: ignore[attr-defined]
    status = Path("/proc/self/status").read_text().splitlines()
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {
        "reader": name,
        "examples": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "peak_mib": peak_kib // 1024,
    }


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
