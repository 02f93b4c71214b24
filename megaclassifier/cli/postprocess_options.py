"""Post-processing options, for ``smooth`` and ``run``: the smoothing rules and their settings,
and the video summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from megaclassifier.cli.option_types import INPUT_FILE, F, apply_options

if TYPE_CHECKING:
    from megaclassifier.postprocess.options import SmoothOptions


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
    from megaclassifier.postprocess.options import (
        DEFAULT_EVIDENCE_THRESHOLD,
        DEFAULT_GAP_SECONDS,
        DEFAULT_ROLLUP_SEMANTICS,
        ROLLUP_SEMANTICS,
        SmoothOptions,
    )

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
            help="First roll uncertain detections up the taxonomy at THRESHOLD, as rollup does.",
        ),
        click.option(
            "--rollup-semantics",
            type=click.Choice(ROLLUP_SEMANTICS),
            default=DEFAULT_ROLLUP_SEMANTICS,
            show_default=True,
            help="--rollup's rules, as rollup --semantics (no geofence here).",
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
        return apply_options(command, options)

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
    "rollup_semantics",
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
