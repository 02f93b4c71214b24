"""``megaclassifier run``: click wiring for :func:`megaclassifier.run.run_pipeline`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from megaclassifier.cli._common import show_progress, summary
from megaclassifier.cli.model_options import (
    check_ensemble,
    engine_options,
    ensemble_options,
    geofence_options,
    model_argument,
    refuse_speciesnet_flags,
)
from megaclassifier.cli.option_types import FOLDER, INPUT_FILE, OUTPUT_FILE
from megaclassifier.cli.options import (
    COMMAND_SETTINGS,
    categories_option,
    crop_options,
    logdir_option,
    merge_info_options,
    restart_option,
    target_mapping_option,
    taxonomy_option,
)
from megaclassifier.cli.postprocess_options import (
    check_video_summary,
    smooth_settings,
    smoothing_options,
    video_summary_options,
)

if TYPE_CHECKING:
    from megaclassifier.run import RunOptions, RunSummary
    from megaclassifier.run.shards import Shard

#: ``run``'s ``--num-workers``: these processes decode whole photos.
DECODER_WORKERS_HELP = (
    "Image-decoding processes (0: in the main process). Default: 1 when the model runs on the CPU "
    "(the cores go to inference), else one per CPU but one, up to 32 (decoding sets the pace)."
)


class ShardType(click.ParamType):
    """``I/N``: shard I (from 0) of N."""

    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Shard:
        from megaclassifier.run.shards import Shard

        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


@click.command(context_settings=COMMAND_SETTINGS)
@click.argument("detections_json", type=INPUT_FILE)
@model_argument()
@crop_options(reference_short_flags=False)
@categories_option(reference_short_flag=False)
@target_mapping_option(required=False)
@merge_info_options(name_required=False, threshold_flags=("--classification-threshold",))
@click.option("--output-csv", type=OUTPUT_FILE, help="Also write the probability CSV that classify would write.")
@click.option("--save-crops", type=FOLDER, help="Also write the crop files that crop would write, under this folder.")
@engine_options(workers_help=DECODER_WORKERS_HELP)
@click.option(
    "--exact",
    is_flag=True,
    help="Bit for bit the chain's answers: decode each photo at full size with Pillow (each crop through "
    "the JPEG round trip, as by default). Default: the fast path (JPEG draft decoding), "
    "whose small differences docs/pipeline.md states.",
)
@click.option(
    "--decoder",
    type=click.Choice(["auto", "cpu", "gpu", "hybrid"]),
    default="auto",
    show_default=True,
    help="Who decodes the photos: CPU worker processes (Pillow), the GPU (torchvision's batched decode_jpeg "
    "on the torch engine's device; files it cannot take fall back to the CPU), or both (hybrid). "
    "auto: gpu when the model runs with torch on CUDA, else cpu. Under --ray the cluster's CPU tasks decode "
    "(gpu and hybrid are refused).",
)
@click.option(
    "--jpeg-roundtrip/--no-jpeg-roundtrip",
    default=True,
    show_default=True,
    help="Pass each crop through JPEG quality 75 in memory, as the chain's crop files do, fast path "
    "included. --no-jpeg-roundtrip classifies the raw pixels: measured on ImageNet EfficientNet-Lite0 "
    "over the 161 animal boxes of the test photos, its top-1 class agrees with --exact on 104 boxes "
    "(with the round trip: 160; draft decoding alone: 159 of 161; docs/pipeline.md).",
)
@taxonomy_option
@geofence_options
@ensemble_options(boxes=True)
@smoothing_options(level_flag="--smooth")
@video_summary_options
@logdir_option
@click.option(
    "--shard",
    type=ShardType(),
    help="Classify only shard I of N (from 0; images chosen by a hash of their path) and write that shard's "
    "results; `megaclassifier combine` joins the N outputs. For SLURM array jobs and Kubernetes indexed jobs.",
)
@click.option(
    "--ray",
    "use_ray",
    is_flag=True,
    help="Run on a Ray cluster: decoding in CPU tasks, the model in an actor pool (GPU actors where the "
    "cluster has GPUs); needs the [ray] extra.",
)
@click.option(
    "--ray-address",
    metavar="auto|HOST:PORT",
    help="The Ray cluster to join (auto: the one this machine belongs to). Default: start a local one.",
)
@restart_option
@click.pass_context
def run(ctx: click.Context, **options: Any) -> None:
    """Crop, classify and merge in one pass: MegaDetector JSON in, classified JSON out.

    Replaces crop + classify (+ aggregate) + merge (+ smooth) with the same answers,
    without writing crop files; each image is decoded once. MODEL may be a SpeciesNet
    release folder: its crops and labels (as class descriptions) are used, and its
    ensemble gives each box SpeciesNet's answer (--ensemble; --country feeds its
    geofence). An interrupted run leaves OUTPUT_JSON.journal; the same command
    again continues from it (--restart: start afresh).

    \b
    Example:
      megaclassifier run md.json megaclassifier-v0.1 --images-dir photos/ --square-crops \\
          --threshold 0.15 --target-mapping idfg_to_megaclassifier_labels.json \\
          --output-json md_classified.json --classification-threshold 0.05 --smooth sequence
    """
    from megaclassifier.run import RunOptions

    refuse_speciesnet_flags(ctx, options["model"])
    if options["admin1_region"] is not None and options["country"] is None:
        raise click.UsageError("--admin1-region needs --country", ctx)
    options["ensemble"] = check_ensemble(ctx, options["model"], options["target_mapping"], options)
    smooth = smooth_settings(ctx, options, images_dir=options["images_dir"], level_flag="--smooth")
    check_video_summary(ctx, options["video_summary"], options["video_summary_nth"])
    use_ray, address = options.pop("use_ray"), options.pop("ray_address")
    _check_cluster_flags(options, smooth=smooth is not None, ray=use_ray, address=address)
    detections_json, model = options.pop("detections_json"), options.pop("model")
    run_options = RunOptions(**options, smooth=smooth)
    result = _run(detections_json, model, run_options, ray=use_ray, address=address, progress=show_progress(ctx))
    crop = result.crop
    smoothed = result.postprocessed
    summary(
        f"{result.classified} crops classified ({result.crops_per_second:.1f} crops/s, {result.engine}), "
        f"{result.merged} detections merged"
        f"{f', {result.geofenced} moved by the geofence' if result.geofenced is not None else ''}"
        f"{_ensembled(result)}"
        f"{f', {smoothed.detections_changed} relabelled by smoothing' if smoothed is not None else ''}"
        f"{_videos(result)}, "
        f"{crop.images_with_boxes} images with boxes ({crop.images_without_boxes} without, not opened), "
        f"{crop.failed_images} images failed"
        f"{f', {len(crop.invalid_boxes)} boxes invalid' if crop.invalid_boxes else ''}: "
        f"wrote {result.output_json}; see {crop.log_path}"
    )


def _ensembled(result: RunSummary) -> str:
    done = result.ensembled
    if done is None:
        return ""
    return f", {done.boxes} boxes decided by the {done.ensemble} ensemble ({done.changed} differ from the top class)"


def _videos(result: RunSummary) -> str:
    videos = result.videos
    if videos is None:
        return ""
    return f", {videos.videos} videos summarised ({videos.rule}: {videos.detections_after} detections kept)"


def _check_cluster_flags(options: dict[str, Any], *, smooth: bool, ray: bool, address: str | None) -> None:
    """``--ray-address`` and ``--num-workers`` with ``--ray`` only when they mean something; no ``--smooth`` shards."""
    if address is not None and not ray:
        raise click.UsageError("--ray-address needs --ray")
    if ray and options["num_workers"] is not None:
        raise click.UsageError("--num-workers is for one machine; with --ray, Ray runs the decoding tasks")
    if smooth and options["shard"] is not None:
        raise click.UsageError("--smooth needs all the images: smooth the combined shards with `megaclassifier smooth`")


def _run(
    detections_json: Any, model: str, options: RunOptions, *, ray: bool, address: str | None, progress: bool
) -> RunSummary:
    """On this machine, or on a Ray cluster (Ray imported only then)."""
    if ray:
        from megaclassifier.cluster.ray_run import run_on_ray

        return run_on_ray(detections_json, model, options, address=address, progress=progress)
    from megaclassifier.run import run_pipeline

    return run_pipeline(detections_json, model, options, progress=progress)
