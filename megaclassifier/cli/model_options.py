"""The model and how to run it, for ``classify``, ``features`` and ``run``: the model argument
(checked before any work), SpeciesNet's geofence, the engine (size, batching, device,
precision, backend) and the crop files to read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from megaclassifier.cli.option_types import INPUT_FILE, F, apply_options
from megaclassifier.constants import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    DEVICE_HELP,
    EFFICIENTNET_NATIVE_SIZE,
    PRECISIONS,
)

if TYPE_CHECKING:
    pass


def _check_model(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from megaclassifier.models.registry import KNOWN_MODELS
    from megaclassifier.models.resolved import names_release

    if value in KNOWN_MODELS or Path(value).is_file() or names_release(value):
        return value
    if Path(value).is_dir():
        raise click.BadParameter(
            f"{value!r} is a folder without info.json; expected a model file or a SpeciesNet release folder",
            ctx,
            param,
        )
    names = ", ".join(KNOWN_MODELS)
    raise click.BadParameter(f"{value!r} is neither a file nor a published model name ({names})", ctx, param)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from megaclassifier.hardware import parse_device

    try:
        parse_device(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None
    return value


def model_argument(name: str = "model") -> Callable[[F], F]:
    """The MODEL argument: a model file, a SpeciesNet release folder or a published model's name."""
    return click.argument(name, callback=_check_model)


#: Options that a SpeciesNet release's own preprocessing replaces.
NOT_FOR_SPECIESNET = {
    "image_size": "--image-size",
    "square_crops": "--square-crops",
    "jpeg_roundtrip": "--jpeg-roundtrip/--no-jpeg-roundtrip",
    "arch": "--arch",
}


def refuse_speciesnet_flags(ctx: click.Context, model: str) -> None:
    """A usage error (exit 2) when MODEL is a SpeciesNet release and an option it replaces was given."""
    from megaclassifier.models.resolved import names_release

    if not names_release(model):
        return
    given = [
        flag
        for name, flag in NOT_FOR_SPECIESNET.items()
        if name in ctx.params and ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            f"{', '.join(given)}: not for a SpeciesNet release; {model} sets its own preprocessing "
            "(480 px, SpeciesNet's crops, no JPEG round trip)",
            ctx,
        )


def _check_country(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 3 or not value.isalpha():
        raise click.BadParameter(f"{value!r} is not an ISO 3166-1 alpha-3 country code (as USA, KEN)", ctx, param)
    return value.upper()


def _check_region(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 2 or not value.isalnum():
        raise click.BadParameter(f"{value!r} is not a two-character first-level region code (as CA)", ctx, param)
    return value.upper()


def geofence_options(command: F) -> F:
    """``--country`` and ``--admin1-region``: a SpeciesNet release's geofence (``run``, ``merge``)."""
    return apply_options(
        command,
        [
            click.option(
                "--country",
                callback=_check_country,
                help="ISO 3166-1 alpha-3 country of the images: a class a SpeciesNet release's geofence does not "
                "allow there moves up to its nearest allowed ancestor, as SpeciesNet's ensemble does.",
            ),
            click.option(
                "--admin1-region",
                callback=_check_region,
                help="First-level region within --country (ISO 3166-2 suffix, as CA for USA-CA) for the geofence.",
            ),
        ],
    )


def engine_options(*, workers_help: str, backend: bool = True) -> Callable[[F], F]:
    """Input size, batching, device, precision, backend and architecture: ``classify``, ``features``, ``run``.

    ``--num-workers`` reads crop files in ``classify`` and decodes whole photos in ``run``;
    its help says which (``workers_help``), the rest is shared.
    """

    def decorator(command: F) -> F:
        options = [
            click.option(
                "--image-size",
                type=click.IntRange(min=1),
                help="Input side in pixels. Default: the architecture's native size when it is recognised "
                "(EfficientNet-B3: 300), else 224.",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=DEFAULT_BATCH_SIZE,
                show_default=True,
                help="Crops per batch.",
            ),
            click.option("--num-workers", type=click.IntRange(min=0), help=workers_help),
            click.option(
                "--device",
                default="auto",
                show_default=True,
                callback=_check_device,
                help=f"{DEVICE_HELP}; auto is CUDA when available.",
            ),
            click.option(
                "--precision",
                type=click.Choice(PRECISIONS),
                default="fp32",
                show_default=True,
                help="fp32 unless asked: fp16 and bf16 are lossy. fp16 needs CUDA; bf16 runs on CUDA or the CPU "
                "(torch backend). Measured on the CPU with the ImageNet EfficientNet-Lite0 on every animal box of "
                "the full-size test photos: bf16's top-1 class agrees with fp32's on 148 of 161 boxes (92 %), "
                "1.9x the speed of torch fp32.",
            ),
            click.option(
                "--arch",
                type=click.Choice(list(EFFICIENTNET_NATIVE_SIZE)),
                help="EfficientNet variant of a checkpoint (default: inferred from its weights).",
            ),
        ]
        if backend:
            options.append(
                click.option(
                    "--backend",
                    type=click.Choice(BACKENDS),
                    default="auto",
                    show_default=True,
                    help="auto: ONNX Runtime for fp32 on the CPU (exported once, cached beside the model), else torch. "
                    "openvino (pip install 'megaclassifier[openvino]'; fp32, CPU) reads the same export; auto never "
                    "picks it, as it was not faster (EfficientNet-B3 at 300 px, 2-core AMD EPYC: 20 crops/s against "
                    "ONNX Runtime's 24 at load 2-3, equal within noise at load 3-4).",
                )
            )
        return apply_options(command, options)

    return decorator


#: ``--num-workers`` of the commands that read crop files.
CROP_READER_WORKERS_HELP = (
    "Crop-reading worker processes (0: read in the main process). Default: on a GPU min(8, CPUs); "
    "on the CPU only the CPUs inference leaves free (hyper-threads), at most 2."
)


def crop_reader_options(*, backend: bool) -> Callable[[F], F]:
    """The crop files to read and the engine: ``classify`` (with ``--backend``) and ``features``."""

    def decorator(command: F) -> F:
        command = engine_options(workers_help=CROP_READER_WORKERS_HELP, backend=backend)(command)
        return click.option(
            "-d",
            "--detections-json",
            type=INPUT_FILE,
            help="Use the crops of this MegaDetector file, in its order; default: every image "
            "file below CROPS_DIR, sorted.",
        )(command)

    return decorator


def ensemble_options(*, boxes: bool) -> Callable[[F], F]:
    """``--ensemble`` (``run``, ``merge``), and ``--max-classifications-per-image`` where boxes are chosen (``run``).

    Resolved and checked by :func:`check_ensemble`.
    """
    ensemble = click.option(
        "--ensemble",
        type=click.Choice(["speciesnet", "speciesnet-legacy", "none"]),
        help="SpeciesNet's ensemble on each classified box: speciesnet (5.0.6: one answer per box from its "
        "human/vehicle/blank rules, the geofence and a roll-up to genus..kingdom), speciesnet-legacy "
        "(5.0.5 and earlier: one answer per image, on its top box), none (the classifier's top-k). "
        "run classifies, under speciesnet, the boxes of any category with conf >= 0.1 (and >= --threshold). "
        "Default: speciesnet for a SpeciesNet release, else none.",
    )
    per_image = click.option(
        "--max-classifications-per-image",
        type=click.IntRange(min=1),
        help="Under --ensemble speciesnet: classify at most this many boxes per image (the highest conf); "
        "default: every box with conf >= 0.1, of any category, as SpeciesNet.",
    )

    def decorator(command: F) -> F:
        return apply_options(command, [ensemble, per_image] if boxes else [ensemble])

    return decorator


def check_ensemble(ctx: click.Context, model: str | None, target_mapping: Any, options: dict[str, Any]) -> str:
    """``--ensemble``, resolved (its default), or a usage error (exit 2) where it cannot apply."""
    from megaclassifier.models.resolved import names_release

    release = model is not None and names_release(model)
    ensemble = options["ensemble"]
    if ensemble is None:
        ensemble = "speciesnet" if release and target_mapping is None else "none"
    elif ensemble != "none" and not release:
        raise click.UsageError(f"--ensemble {ensemble} is SpeciesNet's: give a SpeciesNet release folder", ctx)
    elif ensemble != "none" and target_mapping is not None:
        raise click.UsageError(f"--ensemble {ensemble} needs the release's own classes: drop --target-mapping", ctx)
    if options.get("max_classifications_per_image") is not None and ensemble != "speciesnet":
        raise click.UsageError("--max-classifications-per-image applies under --ensemble speciesnet", ctx)
    return ensemble
