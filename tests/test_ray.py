"""``run --ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``, loopback only): ``run``'s output.

On the real photos with the seeded EfficientNet-B0 at 64 px, ONNX Runtime on CPU actors:

* the merged JSON equals single-machine ``run``'s byte for byte (the completion time aside),
  and the probability CSV holds the same rows, in the same order;
* a decoding worker that dies is replaced and its images retried: the same output, each crop once;
* a driver that crashes leaves the journal (run's one journal); the rerun sends only the rest to
  the cluster and writes the same output; another run's journal, or ``--restart``, starts afresh;
* images through ``--container-url`` (fsspec) and ``--save-crops`` work on the cluster;
* a shard run on Ray combines with a shard run on one machine into the unsharded output;
* the CLI starts its own local cluster without ``--ray-address``;
* ``run --help`` does not import Ray.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from cluster_data import RunInputs, make_inputs, run_args, without_time
from conftest import REPO, PhotoSet
from helpers import invoke, read_csv

from megaclassifier.cluster import ray_run
from megaclassifier.formats.journal import JOURNAL_SUFFIX as SUFFIX
from megaclassifier.run import RunOptions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'megaclassifier[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(photos: PhotoSet, b0_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> RunInputs:
    return make_inputs(photos, b0_checkpoint, tmp_path_factory.mktemp("ray_inputs"))


@pytest.fixture(scope="module")
def single(inputs: RunInputs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Single-machine ``run``'s output folder: merged.json and probs.csv."""
    out = tmp_path_factory.mktemp("single")
    result = invoke(*run_args(inputs, out, "--output-csv", out / "probs.csv"))
    assert result.exit_code == 0, result.output
    return out


def assert_same_output(out: Path, single: Path) -> None:
    assert without_time(out / "merged.json") == without_time(single / "merged.json")
    assert not Path(f"{out / 'merged.json'}{SUFFIX}").exists()  # the journal goes with success


def options(inputs: RunInputs, out: Path) -> RunOptions:
    """``run_args``'s options as a RunOptions (for the library-level tests)."""
    return RunOptions(
        output_json=out / "merged.json",
        images_dir=inputs.images,
        square_crops=True,
        threshold=0.15,
        classifier_categories=inputs.categories,
        target_mapping=inputs.mapping,
        classifier_name="b0_seeded",
        classification_threshold=0.05,
        image_size=64,
        batch_size=8,
        backend="onnxruntime",
        logdir=out,
    )


def test_ray_equals_single_machine_run(ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path) -> None:
    result = invoke(*run_args(inputs, tmp_path, "--output-csv", tmp_path / "probs.csv", "--ray"))
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"{inputs.crops} crops classified (")
    boxes = len({file for file, _ in PhotoSet("", inputs.detections.parent).animal_boxes(0.15)})
    assert f"/s, Ray, 1 CPU actor), {inputs.crops} detections merged, {boxes} images with boxes (" in line
    assert " without, not opened), 0 images failed: wrote" in line
    assert_same_output(tmp_path, single)
    assert read_csv(tmp_path / "probs.csv") == read_csv(single / "probs.csv")  # same rows, same order
    logs = list(tmp_path.glob("run_log_*.json"))
    assert len(logs) == 1 and json.loads(logs[0].read_text(encoding="utf-8"))["failure_reasons"] == {}


def test_images_with_no_box_are_not_read_under_ray(
    ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path
) -> None:
    """The images with no box at 0.15 deleted from a copy of the photos: none fails, the output is the same."""
    images = Path(shutil.copytree(inputs.images, tmp_path / "images"))
    with_boxes = {file for file, _ in PhotoSet("", inputs.detections.parent).animal_boxes(0.15)}
    blank = [p for p in images.iterdir() if p.name not in with_boxes]
    for path in blank:
        path.unlink()
    assert blank  # the set has images without a box
    copy = dataclasses.replace(inputs, images=images)
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(*run_args(copy, out, "--ray"))
    assert result.exit_code == 0, result.output
    assert f"{len(with_boxes)} images with boxes ({len(blank)} without, not opened), 0 images failed" in result.output
    assert_same_output(out, single)


def test_decoding_runs_in_tasks_apart_from_the_actors(ray_cluster: Any, inputs: RunInputs, tmp_path: Path) -> None:
    from megaclassifier.crop.crop import plan_crops
    from megaclassifier.formats.detections import load_detections

    run_options = options(inputs, tmp_path)
    classifier = ray_run._check_classifier(inputs.model, run_options)
    plans = list(plan_crops(load_detections(inputs.detections), ".", threshold=0.15, detector="md_v5a.0.0.pt"))
    actors = ray_run.actor_plan(ray_cluster, "auto")
    assert actors == ray_run.ActorPlan(1, "cpu", num_gpus=0, num_cpus=1)  # no GPU: one CPU actor on the one node
    dataset = ray_run.ray_dataset(plans, inputs.model, run_options, classifier, actors)
    rows = list(dataset.iter_rows())
    assert len(rows) == len(plans)
    stats = dataset.stats()
    # two operators: Ray Data would fuse the decoding into the actors if their resources matched
    assert "Operator 1 Map(_decode)" in stats and "Operator 2 MapBatches(_Classify)" in stats, stats
    assert "->" not in stats.split("Operator 2")[0]


def test_images_from_a_container_url_and_crops_saved(
    ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path
) -> None:
    # --save-crops decodes at full size (the crop files are crop's), so compare with run given the same options
    outputs = {}
    for name, extra in (("ray", ["--ray"]), ("plain", [])):
        out = tmp_path / name
        out.mkdir()
        args = run_args(inputs, out, *extra, "--container-url", inputs.images.as_uri() + "/")
        at = args.index("--images-dir")
        del args[at : at + 2]  # every image comes through fsspec
        result = invoke(*args, "--save-crops", out / "crops")
        assert result.exit_code == 0, result.output
        outputs[name] = out
    assert_same_output(outputs["ray"], outputs["plain"])
    tmp_path = outputs["ray"]
    log = json.loads(next(tmp_path.glob("run_log_*.json")).read_text(encoding="utf-8"))
    saved = sorted((tmp_path / "crops").rglob("*.jpg"))
    assert log["num_new_crops"] == len(saved) == inputs.crops
    assert all(p.name.endswith("_md_v5a.0.0.pt.jpg") and "___crop" in p.name for p in saved)


def test_a_ray_shard_combines_with_a_plain_one(
    ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert invoke(*run_args(inputs, tmp_path / "a", "--shard", "0/2", "--ray")).exit_code == 0
    assert invoke(*run_args(inputs, tmp_path / "b", "--shard", "1/2")).exit_code == 0
    result = invoke("combine", tmp_path / "merged.json", tmp_path / "a" / "merged.json", tmp_path / "b" / "merged.json")
    assert result.exit_code == 0, result.output
    assert_same_output(tmp_path, single)


def crash_once(file: str, crops: Sequence[Any], options: Any) -> Any:
    """``prepare_image``, but the worker process dies the first time it reaches the marked image."""
    import os

    from megaclassifier.run.prepare import prepare_image

    marker = os.environ.get("MEGACLASSIFIER_TEST_CRASH_MARKER", "")
    if crops and os.path.exists(marker):
        os.remove(marker)
        os._exit(1)  # the worker is lost mid-task, as a node is
    return prepare_image(file, crops, options)


def test_a_lost_worker_is_retried_and_nothing_counted_twice(
    ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    marker = tmp_path / "crash-once"
    marker.write_text("", encoding="utf-8")
    monkeypatch.setenv("MEGACLASSIFIER_TEST_CRASH_MARKER", str(marker))
    ray_cluster.shutdown()  # restart the cluster so that its workers see the variable
    ray_cluster.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    summary = ray_run.run_on_ray(inputs.detections, inputs.model, options(inputs, tmp_path), prepare=crash_once)
    assert not marker.exists()  # a worker did die
    assert summary.classified == inputs.crops and summary.merged == inputs.crops
    assert_same_output(tmp_path, single)


class DriverCrash(Exception):
    pass


def test_a_rerun_after_a_driver_crash_skips_the_finished_images(
    ray_cluster: Any, inputs: RunInputs, single: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ray_run.first_copies
    sent: list[int] = []

    def crash_after_three(items: Any) -> Iterator[Any]:
        for n, item in enumerate(real(items)):
            if n == 3:
                raise DriverCrash
            yield item

    monkeypatch.setattr(ray_run, "first_copies", crash_after_three)
    with pytest.raises(DriverCrash):
        ray_run.run_on_ray(inputs.detections, inputs.model, options(inputs, tmp_path))
    journal = Path(f"{tmp_path / 'merged.json'}{SUFFIX}")
    lines = journal.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 3 and not (tmp_path / "merged.json").exists()

    real_cluster_images = ray_run.cluster_images

    def spy(plans: list[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        sent.append(len(plans))
        return real_cluster_images(plans, *args, **kwargs)

    monkeypatch.setattr(ray_run, "first_copies", real)
    monkeypatch.setattr(ray_run, "cluster_images", spy)
    summary = ray_run.run_on_ray(inputs.detections, inputs.model, options(inputs, tmp_path))
    assert sent == [summary.crop.images_with_boxes - 3]  # images with no box are never sent
    assert summary.classified == inputs.crops
    assert_same_output(tmp_path, single)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (["--classification-threshold", 0.2], "options changed since the interrupted run"),
        (["--restart"], "--restart: ignoring the journal of an earlier run"),
    ],
)
def test_another_runs_journal_or_restart_starts_afresh(
    ray_cluster: Any, inputs: RunInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: list[Any], reason: str
) -> None:
    real = ray_run.first_copies

    def crash_after_two(items: Any) -> Iterator[Any]:
        for n, item in enumerate(real(items)):
            if n == 2:
                raise DriverCrash
            yield item

    with monkeypatch.context() as m:
        m.setattr(ray_run, "first_copies", crash_after_two)
        crashed = invoke(*run_args(inputs, tmp_path, "--ray"))
        assert isinstance(crashed.exception, DriverCrash), crashed.output
    journal = Path(f"{tmp_path / 'merged.json'}{SUFFIX}")
    assert len(journal.read_text(encoding="utf-8").splitlines()) == 1 + 2
    result = invoke(*run_args(inputs, tmp_path, "--ray", *extra), quiet=False)
    assert result.exit_code == 0, result.output
    assert f"{journal}: {reason}; starting afresh" in result.output
    assert "resuming" not in result.output
    assert not journal.exists()


def test_the_cli_starts_a_local_cluster(inputs: RunInputs, single: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'megaclassifier[ray]')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "megaclassifier", "-q", *map(str, run_args(inputs, tmp_path, "--ray"))]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Ray, 1 CPU actor" in done.stderr
    assert_same_output(tmp_path, single)


def test_without_ray_installed(inputs: RunInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = invoke(*run_args(inputs, tmp_path, "--ray"))
    assert result.exit_code == 1
    assert result.output == "Error: --ray needs Ray: pip install 'megaclassifier[ray]'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no progress file, no log


@pytest.mark.parametrize("decoder", ["gpu", "hybrid"])
def test_a_gpu_decoder_under_ray_is_refused(inputs: RunInputs, tmp_path: Path, decoder: str) -> None:
    pytest.importorskip("ray", reason="the [ray] extra is not installed (pip install 'megaclassifier[ray]')")
    result = invoke(*run_args(inputs, tmp_path, "--ray", "--decoder", decoder))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --decoder {decoder} decodes on this machine's GPU; under --ray the images are decoded by CPU tasks "
        "on the cluster: use --decoder cpu or auto\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # refused before any work: no output, journal or log


def test_run_help_does_not_import_ray() -> None:
    code = (
        "import sys\n"
        "from megaclassifier.cli import cli\n"
        "try:\n"
        "    cli.main(['run', '--help'], prog_name='megaclassifier')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('ray', 'ray.data', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--ray-address" in out
    assert out.splitlines()[-1] == "[]"


# -- issue 19: Ray equals local for every option, by the one driver

TAXONOMY_CSV = (
    "name,kingdom,phylum,class,order,family,genus,species,common\n"
    "cervid,animalia,chordata,mammalia,cetartiodactyla,cervidae,,,deer family\n"
    "cow,animalia,chordata,mammalia,cetartiodactyla,bovidae,bos,taurus,domestic cattle\n"
    "other,,,,,,,,other\n"
)


def _local_and_ray(args: list[Any], tmp_path: Path) -> tuple[Path, Path]:
    """``args`` (writing ``OUT/merged.json``) on this machine and on Ray; both outputs."""
    outputs = []
    for name, extra in (("local", ["--num-workers", 0]), ("ray", ["--ray"])):
        out = tmp_path / name
        out.mkdir()
        concrete = [out / a.name if isinstance(a, Path) and a.parent == Path("OUT") else a for a in args]
        result = invoke(*concrete, *extra)
        assert result.exit_code == 0, result.output
        outputs.append(out / "merged.json")
    return outputs[0], outputs[1]


def test_ray_equals_local_for_a_speciesnet_release_with_country(  # and its ensemble
    ray_cluster: Any, photos: PhotoSet, tmp_path: Path
) -> None:
    from speciesnet_data import build_release

    release = build_release(tmp_path / "release")
    args = ["run", photos.detections, release, "--images-dir", photos.images, "--threshold", 0.15,
            "--output-json", Path("OUT/merged.json"), "--country", "usa", "--admin1-region", "fl",
            "--logdir", tmp_path]  # fmt: skip
    local, on_ray = _local_and_ray(args, tmp_path)
    assert without_time(on_ray) == without_time(local)
    data = json.loads(on_ray.read_text(encoding="utf-8"))
    assert data["classification_category_descriptions"]["0"].endswith(";coyote")  # the release's labels
    step = data["info"]["classification_postprocessing"][0]
    assert (step["step"], step["ensemble"], step["country"], step["admin1_region"]) == (
        "ensemble",
        "speciesnet",
        "USA",
        "FL",
    )
    assert any("classification_source" in d for im in data["images"] for d in im.get("detections") or [])


@pytest.mark.parametrize(
    "extra",
    [["--exact"], ["--smooth", "sequence"], ["--taxonomy", "TAXONOMY"]],
    ids=["exact", "smooth sequence", "taxonomy"],
)
def test_ray_equals_local(ray_cluster: Any, inputs: RunInputs, tmp_path: Path, extra: list[Any]) -> None:
    taxonomy = tmp_path / "taxonomy.csv"
    taxonomy.write_text(TAXONOMY_CSV, encoding="utf-8")
    extra = [taxonomy if a == "TAXONOMY" else a for a in extra]
    args = run_args(inputs, Path("OUT"), *extra, "--ray")
    args = [a for a in args if a != "--ray"]
    at = args.index("--logdir")
    args[at + 1] = tmp_path
    local, on_ray = _local_and_ray(args, tmp_path)
    assert without_time(on_ray) == without_time(local)
    data = json.loads(on_ray.read_text(encoding="utf-8"))
    if "--taxonomy" in extra:
        assert data["classification_category_descriptions"]["1"].endswith(";domestic cattle")
    if "--smooth" in extra:
        assert [(s["step"], s["level"]) for s in data["info"]["classification_postprocessing"]] == [
            ("smooth", "sequence")
        ]
