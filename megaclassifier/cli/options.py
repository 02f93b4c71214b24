"""Options shared by several commands, declared once (as sqlite-utils' option decorators).

This module holds the input, crop, output and merge options; the model and engine options are
in :mod:`megaclassifier.cli.model_options`, post-processing's in
:mod:`megaclassifier.cli.postprocess_options`, ground truth's in
:mod:`megaclassifier.cli.evaluation_options`, and the click types they share in
:mod:`megaclassifier.cli.option_types`.

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

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from megaclassifier.cli.option_types import FOLDER, INPUT_FILE, OUTPUT_FILE, F, apply_options
from megaclassifier.constants import (
    DEFAULT_MERGE_THRESHOLD,
    DEFAULT_REVIEW_THRESHOLD,
    DEFAULT_TIMEOUT,
    DEFAULT_TYPICAL_CLASSIFICATION_THRESHOLD,
)

if TYPE_CHECKING:
    pass


COMMAND_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}


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
        return apply_options(
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


def restart_option(command: F) -> F:
    """``--restart``: ignore the resume journal of an interrupted run (``classify``, ``run``)."""
    return click.option(
        "--restart",
        is_flag=True,
        help="Start afresh: ignore (and discard) the journal OUTPUT.journal that an interrupted run left. "
        "Without it, a rerun with the same model, inputs and options continues where the last one stopped.",
    )(command)


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
        return apply_options(
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
