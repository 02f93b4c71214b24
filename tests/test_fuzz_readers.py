"""Issue 22, the fuzz suite: every reader of the toolkit, under an address-space limit, with a fixed budget.

Each reader runs in its own subprocess (``tests/fuzz_readers.py``) that caps its address space
at :data:`ADDRESS_SPACE_LIMIT` before anything else, so a reader whose memory runs away ends
there, never on CI's machine. Hypothesis is derandomised and keeps no example database
(nothing under ``.hypothesis/``), so CI runs the same :data:`EXAMPLES` inputs every time,
plus the hostile constructs of the driver, each once. Any input gives a result or the
reader's one-line error naming the file (exit 1 in the CLI); the peak resident memory must
stay under :data:`PEAK_MIB`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
READERS = [
    "detections_json", "results_json", "probability_csv", "label_index_json", "target_mapping_json",
    "label_spec_csv", "taxonomy_csv", "class_taxonomy_csv", "deployments_csv", "sequences_json", "image",
    "predictions_json",
]  # fmt: skip
#: Hypothesis examples per reader (MEGACLASSIFIER_FUZZ_EXAMPLES overrides, for a longer local run)
EXAMPLES = int(os.environ.get("MEGACLASSIFIER_FUZZ_EXAMPLES", "150"))
#: the address space each reader's process may take (the interpreter and numpy need about 0.6 GiB of it)
ADDRESS_SPACE_LIMIT = 2 << 30
#: the most resident memory a reader's process may reach, whatever the input
PEAK_MIB = 150


@pytest.mark.parametrize("reader", READERS)
def test_any_input_gives_a_result_or_one_line_error_in_bounded_memory(reader: str) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    args = [sys.executable, str(TESTS / "fuzz_readers.py"), reader, str(EXAMPLES), str(ADDRESS_SPACE_LIMIT)]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-8000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["reader"] == reader
    assert summary["examples"] >= EXAMPLES  # and the hostile inputs
    assert set(summary["outcomes"]) <= {"result", "one-line error"}
    assert summary["peak_mib"] < PEAK_MIB, summary


def test_the_driver_keeps_no_database() -> None:
    text = (TESTS / "fuzz_readers.py").read_text()
    assert "database=None" in text and "derandomize=True" in text
