"""Ground-truth label and evaluation-rule options, for ``evaluate``, ``learn-mapping`` and
``train-head``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from megaclassifier.cli.option_types import F, apply_options

if TYPE_CHECKING:
    pass
from megaclassifier.cli.options import review_threshold_option


def labels_options(command: F) -> F:
    """How ``evaluate``, ``learn-mapping`` and ``train-head`` read LABELS and hold out cameras."""
    from megaclassifier.evaluate.holdout import DEFAULT_HOLDOUT_FRACTION, HOLDOUT_BY

    return apply_options(
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

    return apply_options(
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
