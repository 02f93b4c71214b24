"""Options shared by several commands, declared once (as sqlite-utils' option decorators).

Each decorator adds a group of options; an option that appears in two commands
comes from here, so it has one type, one default and one help text everywhere
(``tests/test_cli_options.py`` checks it). Defaults live in
:mod:`megaclassifier.constants`. Short flags are the reference scripts' own:
``crop`` keeps ``-c/--container-url`` and ``-v/--detector-version`` of
``crop_detections.py``, ``classify`` keeps ``-c/--classifier-categories`` and
``-d/--detections-json`` of ``run_classifier.py``; ``run`` combines both, so it
takes none of those short forms.

Nothing here imports torch or numpy: ``--help`` stays quick.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from megaclassifier.constants import (
    BACKENDS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MERGE_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    DEFAULT_TIMEOUT,
    DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD,
    DEVICE_HELP,
    EFFICIENTNET_NATIVE_SIZE,
    PRECISIONS,
)

if TYPE_CHECKING:
    from megaclassifier.postprocess.options import SmoothOptions

F = TypeVar("F", bound=Callable[..., Any])

#: An existing input file, an output file, a folder.
INPUT_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUTPUT_FILE = click.Path(dir_okay=False, path_type=Path)
FOLDER = click.Path(file_okay=False, path_type=Path)

COMMAND_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


def _apply(command: F, options: Sequence[Callable[[Any], Any]]) -> F:
    for option in reversed(options):
        command = option(command)
    return command


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
    """``--country`` and ``--admin1-region``: a SpeciesNet release's geofence (``run``)."""
    return _apply(
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


def images_dir_option(*, required: bool) -> Callable[[F], F]:
    """``-i/--images-dir``: where the images named in a results file are (``crop``, ``run``, ``report``, ``export``)."""
    return click.option(
        "-i",
        "--images-dir",
        type=FOLDER,
        required=required,
        help="Local root folder of the images named in the results file.",
    )


def review_threshold_option(command: F) -> F:
    """``-t/--threshold`` of the commands that show results (``report``, ``export``): which detections count."""
    return click.option(
        "-t",
        "--threshold",
        type=click.FloatRange(0, 1),
        default=DEFAULT_REVIEW_THRESHOLD,
        show_default=True,
        help="Leave out detections with conf below THRESHOLD.",
    )(command)


def crop_options(*, reference_short_flags: bool) -> Callable[[F], F]:
    """Where the images are and which boxes to cut: ``crop`` and ``run``."""

    def flags(short: str, long: str) -> tuple[str, ...]:
        return (short, long) if reference_short_flags else (long,)

    def decorator(command: F) -> F:
        return _apply(
            command,
            [
                images_dir_option(required=False),
                click.option(
                    *flags("-c", "--container-url"),
                    help="fsspec URL (https://, s3://, gs://, az://, file://) to fetch images not found locally.",
                ),
                click.option(
                    *flags("-v", "--detector-version"),
                    help="Detector name for crop file names when the JSON has no info.detector.",
                ),
                click.option(
                    "--square-crops", is_flag=True, help="Square crops (the geometry MegaClassifier was trained on)."
                ),
                click.option(
                    "-t",
                    "--threshold",
                    type=click.FloatRange(0, 1),
                    default=0.0,
                    show_default=True,
                    help="Only animal boxes with conf >= THRESHOLD.",
                ),
                timeout_option,
                click.option(
                    "--allow-outside-images-dir",
                    is_flag=True,
                    help="Read relative file paths that lead out of --images-dir (../x.jpg); refused by default.",
                ),
            ],
        )

    return decorator


def timeout_option(command: F) -> F:
    """``--timeout``: how long a server may keep us waiting (``crop``, ``run``, ``download``)."""
    return click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds a server may take to connect or to send more data; transient errors are retried twice "
        "(a download resumes), then that image or file fails.",
    )(command)


def taxonomy_option(command: F) -> F:
    """``--taxonomy``: class names to taxa (``merge`` writes them; ``smooth``, ``restrict``, ``rollup`` read them)."""
    return click.option(
        "--taxonomy",
        type=INPUT_FILE,
        help="Class name -> taxonomy CSV (name,kingdom,phylum,class,order,family,genus,species,common, or the "
        "reference taxonomy CSV): merge writes classification_category_descriptions from it; smooth, restrict, "
        "rollup and export --format camtrap-dp use it when the results file has none.",
    )(command)


def logdir_option(command: F) -> F:
    """``--logdir``: where a run's JSON log of failed images goes."""
    return click.option(
        "--logdir",
        type=FOLDER,
        default=Path("."),
        show_default=True,
        help="Folder for the run's JSON log (failed images and why).",
    )(command)


def categories_option(*, reference_short_flag: bool) -> Callable[[F], F]:
    """``--classifier-categories``: the model's index-to-name JSON."""
    flags = ("-c", "--classifier-categories") if reference_short_flag else ("--classifier-categories",)
    return click.option(
        *flags,
        type=INPUT_FILE,
        help='Index-to-name JSON ({"0": "name", ...}) of the model\'s classes; default "0".."N-1" '
        "(a published model's own names when MODEL is its name).",
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
        return _apply(command, options)

    return decorator


#: ``--num-workers`` of the commands that read crop files.
CROP_READER_WORKERS_HELP = (
    "Crop-reading worker processes (0: read in the main process). Default: on a GPU min(8, CPUs); "
    "on the CPU only the CPUs inference leaves free (hyper-threads), at most 2."
)


def restart_option(command: F) -> F:
    """``--restart``: ignore the resume journal of an interrupted run (``classify``, ``run``)."""
    return click.option(
        "--restart",
        is_flag=True,
        help="Start afresh: ignore (and discard) the journal OUTPUT.journal that an interrupted run left. "
        "Without it, a rerun with the same model, inputs and options continues where the last one stopped.",
    )(command)


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


def target_mapping_option(*, required: bool, short_flag: bool = False) -> Callable[[F], F]:
    """``--target-mapping``: sum classes into a project's targets (``aggregate``, ``run``)."""
    flags = ("-t", "--target-mapping") if short_flag else ("--target-mapping",)
    return click.option(
        *flags,
        required=required,
        type=INPUT_FILE,
        help="JSON {target: [classifier label, ...]} covering every classifier class once (map-categories writes it).",
    )


def merge_info_options(*, name_required: bool, threshold_flags: tuple[str, ...]) -> Callable[[F], F]:
    """What the merged file records: output, ``info``, and which classes are kept (``merge``, ``run``).

    Args:
        name_required: ``merge`` needs ``-n/--classifier-name``; ``run`` defaults it to the model file's name
            and takes no ``-n``, which is ``crop``'s ``--threads``.
        threshold_flags: the classification threshold's flags (``merge``: the reference's ``-t/--threshold``;
            ``run``: ``--classification-threshold``, as ``-t/--threshold`` is crop's there).
    """

    def decorator(command: F) -> F:
        return _apply(
            command,
            [
                click.option(
                    "-o",
                    "--output-json",
                    required=True,
                    type=OUTPUT_FILE,
                    help="Merged MegaDetector JSON to write (folders are created).",
                ),
                click.option(
                    *(("-n", "--classifier-name") if name_required else ("--classifier-name",)),
                    required=name_required,
                    show_default=None if name_required else "the model file name without suffix",
                    help="Stored as info.classifier.",
                ),
                click.option(
                    *threshold_flags,
                    "classification_threshold",
                    type=click.FloatRange(0, 1),
                    default=DEFAULT_MERGE_THRESHOLD,
                    show_default=True,
                    help="Keep classes with probability >= this.",
                ),
                click.option(
                    "--typical-confidence-threshold",
                    "--typical-classification-threshold",
                    "typical_classification_threshold",
                    type=click.FloatRange(0, 1),
                    help="Stored as info.classifier_metadata.typical_classification_threshold "
                    f"(Timelapse's default threshold).  [default: {DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD}]",
                ),
                click.option(
                    "--max-classifications",
                    type=click.IntRange(min=1),
                    help="Keep at most this many classes per detection, most confident first.  [default: all]",
                ),
            ],
        )

    return decorator


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


#: MegaDetector's ClassificationSmoothingOptions that are counts or shares: flag, type, help.
_RULE_OPTIONS: list[tuple[str, Any, str]] = [
    (
        "--min-detections-to-overwrite-secondary",
        int,
        "Votes the dominant class needs to overwrite others.",
    ),
    ("--max-detections-nondominant-class", int, "A class with more votes than this is left alone."),
    (
        "--min-detections-to-overwrite-secondary-same-family",
        int,
        "Votes a dominant genus/species needs to overwrite its family (<= 0: off).",
    ),
    (
        "--max-detections-nondominant-class-same-family",
        int,
        "A same-family class with more votes than this is left alone.",
    ),
    ("--min-detections-to-overwrite-other", int, 'Votes the dominant class needs to overwrite "other".'),
    (
        "--classification-confidence-threshold",
        click.FloatRange(0, 1),
        "A detection votes when its top score is >= this.",
    ),
    ("--detection-confidence-threshold", click.FloatRange(0, 1), "A detection votes when its conf is >= this."),
    ("--taxonomy-propagation-level-weight", float, "Weight of a child taxon's level (taxonomic rule)."),
    ("--taxonomy-propagation-count-weight", float, "Weight of a child taxon's count (taxonomic rule)."),
]


def smoothing_options(*, level_flag: str) -> Callable[[F], F]:
    """Smoothing over images or sequences: ``smooth`` (``--level``, default image) and ``run`` (``--smooth``, off).

    MegaDetector's ClassificationSmoothingOptions are one flag each, its defaults as ours
    (:class:`~megaclassifier.postprocess.options.SmoothOptions`); :func:`smooth_settings` turns them back into one.
    """
    from megaclassifier.postprocess.options import DEFAULT_EVIDENCE_THRESHOLD, DEFAULT_GAP_SECONDS, SmoothOptions

    defaults = SmoothOptions()
    if level_flag == "--level":
        level = click.option(
            "--level",
            type=click.Choice(["image", "sequence"]),
            default="image",
            show_default=True,
            help="Smooth within each image, or within each sequence.",
        )
    else:
        level = click.option(
            level_flag,
            "level",
            type=click.Choice(["image", "sequence"]),
            help="Then smooth the classifications within each image or sequence, as smooth does "
            "(its options below).  [default: off]",
        )
    options = [
        level,
        click.option(
            "--method",
            type=click.Choice(["counts", "probabilities"]),
            default="counts",
            show_default=True,
            help="MegaDetector's vote-counting rules, or the confidence-weighted mean of the scores.",
        ),
        click.option(
            "--evidence-threshold",
            type=click.FloatRange(0, 1),
            default=DEFAULT_EVIDENCE_THRESHOLD,
            show_default=True,
            help="probabilities: relabel when the best mean score is >= this.",
        ),
        click.option("--sequences", type=INPUT_FILE, help="COCO Camera Traps JSON giving each image's seq_id."),
        click.option(
            "--camera-depth", type=click.IntRange(min=1), help="Folder levels naming a camera.  [default: all]"
        ),
        click.option(
            "--gap",
            type=click.FloatRange(min=0),
            default=DEFAULT_GAP_SECONDS,
            show_default=True,
            help="Seconds between two images that start a new sequence.",
        ),
        click.option(
            "--rollup",
            type=click.FloatRange(0, 1),
            metavar="THRESHOLD",
            help="First roll detections whose top score is below THRESHOLD up the taxonomy.",
        ),
    ]
    for flag, kind, text in _RULE_OPTIONS:
        default = getattr(defaults, flag[2:].replace("-", "_"))
        options.append(click.option(flag, type=kind, default=default, show_default=True, help=text))
    options += [
        click.option(
            "--propagate-classifications-through-taxonomy/--no-propagate-classifications-through-taxonomy",
            default=True,
            show_default=True,
            help="Relabel a parent as its child taxon.",
        ),
        click.option(
            "--other-category-names",
            default=",".join(defaults.other_category_names),
            show_default=True,
            help='Comma-separated class names treated as "other".',
        ),
        click.option(
            "--detection-category-names-to-smooth",
            default="animal",
            show_default=True,
            help="Comma-separated detection categories that take part ('' for all).",
        ),
    ]

    def decorator(command: F) -> F:
        return _apply(command, options)

    return decorator


#: The keyword arguments :func:`smoothing_options` adds.
SMOOTHING_KEYS = (
    "level",
    "method",
    "evidence_threshold",
    "sequences",
    "camera_depth",
    "gap",
    "rollup",
    *(flag[2:].replace("-", "_") for flag, _, _ in _RULE_OPTIONS),
    "propagate_classifications_through_taxonomy",
    "other_category_names",
    "detection_category_names_to_smooth",
)


def smooth_settings(
    ctx: click.Context, options: dict[str, Any], *, images_dir: Path | None, level_flag: str
) -> SmoothOptions | None:
    """Take the :func:`smoothing_options` out of a command's keyword arguments.

    Returns:
        The smoothing to do; None when the level is None (``run`` without ``--smooth``).

    Raises:
        click.UsageError: a smoothing option without a level, sequence options without
            ``LEVEL sequence``, or sequences with no source.
    """
    from megaclassifier.postprocess.options import SmoothOptions

    values = {key: options.pop(key) for key in SMOOTHING_KEYS}
    level = values.pop("level")
    if level is None:
        given = [key for key in values if ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} needs {level_flag} image or {level_flag} sequence")
        return None
    if level == "sequence" and values["sequences"] is None and images_dir is None:
        raise click.UsageError(f"{level_flag} sequence needs --sequences CCT.json or --images-dir DIR")
    if level != "sequence" and values["sequences"] is not None:
        raise click.UsageError(f"--sequences needs {level_flag} sequence")
    return SmoothOptions(
        level=level,
        images_dir=images_dir if level == "sequence" else None,
        gap_seconds=values.pop("gap"),
        other_category_names=_names(values.pop("other_category_names")),
        detection_category_names_to_smooth=_names(values.pop("detection_category_names_to_smooth")),
        **values,
    )


def thumbnail_workers_option(command: F) -> F:
    """``--num-workers`` of the commands that make thumbnails (``evaluate``; ``report`` declares the same)."""
    import os

    return click.option(
        "--num-workers",
        type=click.IntRange(min=1),
        default=min(4, os.cpu_count() or 1),
        show_default="min(4, CPUs)",
        help="Processes that make thumbnails.",
    )(command)


def labels_options(command: F) -> F:
    """How ``evaluate``, ``learn-mapping`` and ``train-head`` read LABELS and hold out cameras."""
    from megaclassifier.evaluate.holdout import DEFAULT_HOLDOUT_FRACTION, HOLDOUT_BY

    return _apply(
        command,
        [
            click.option(
                "--label-column",
                help="The label column of a Timelapse CSV (default Species) or of a Camtrap DP "
                "observations.csv (default scientificName).",
            ),
            click.option(
                "--ignore-case", is_flag=True, help="Match the labels' image paths to the results' case-insensitively."
            ),
            click.option(
                "--holdout-by",
                type=click.Choice(HOLDOUT_BY),
                default="none",
                show_default=True,
                help="Hold out whole cameras: the image's folder, or the labels' location (CCT location, Camtrap DP "
                "deploymentID; else the folder).",
            ),
            click.option(
                "--holdout-fraction",
                type=click.FloatRange(0, 1, min_open=True, max_open=True),
                default=DEFAULT_HOLDOUT_FRACTION,
                show_default=True,
                help="Share of the cameras held out (chosen by a hash of their names: the same in every command).",
            ),
            click.option(
                "--holdout",
                multiple=True,
                metavar="GROUP",
                help="Hold out this camera (folder or location) instead; repeat for several.",
            ),
        ],
    )


def evaluation_rules_options(command: F) -> F:
    """The rules that turn detections into one class per image (``evaluate``, ``learn-mapping``)."""
    from megaclassifier.evaluate.rules import DEFAULT_CLASSIFICATION_THRESHOLD, EMPTY, HUMAN, UNSURE

    return _apply(
        command,
        [
            review_threshold_option,
            click.option(
                "--classification-threshold",
                type=click.FloatRange(0, 1),
                default=DEFAULT_CLASSIFICATION_THRESHOLD,
                show_default=True,
                help="A detection whose top class scores below this counts as the --unsure-label "
                "(MegaDetector's analysis default).",
            ),
            click.option("--empty-label", default=EMPTY, show_default=True,
                         help="The class of an image without a detection (labels blank/empty/none read as it)."),
            click.option("--human-label", default=HUMAN, show_default=True,
                         help="The class of a person detection (labels person/people read as it)."),
            click.option("--unsure-label", default=UNSURE, show_default=True,
                         help="The class of a detection whose classes are all below --classification-threshold."),
        ],
    )  # fmt: skip


def video_summary_options(command: F) -> F:
    """``--video-summary`` and ``--video-summary-nth``: one answer per video entry (``run``, ``smooth``)."""
    from megaclassifier.postprocess.videos import VIDEO_SUMMARIES

    command = click.option(
        "--video-summary-nth",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="max-per-class keeps each class's Nth most confident detection (MegaDetector's nth_highest_confidence).",
    )(command)
    return click.option(
        "--video-summary",
        type=click.Choice(VIDEO_SUMMARIES),
        help="Keep one answer per video in its detections (after any smoothing): best-frame (AddaxAI: the frame "
        "with the highest summed conf of boxes >= 0.3) or max-per-class (MegaDetector: the most confident "
        "detection of each class).  [default: every frame's boxes]",
    )(command)


def check_video_summary(ctx: click.Context, video_summary: str | None, nth: int) -> None:
    """``--video-summary-nth`` means something only with ``--video-summary max-per-class``."""
    if nth != 1 and video_summary != "max-per-class":
        raise click.UsageError("--video-summary-nth applies to --video-summary max-per-class", ctx)
