"""``run``'s plan: everything decided before the first image is read, and the steps after the merge.

:func:`make_plan` reads the detections file (hashing it as it reads), keeps a shard's images,
resolves the detector name, the taxonomy, the model (once: :mod:`megaclassifier.models.resolved`)
and its classifier, the geofence, the run identity, and the crops of every image, in
this order. Every executor (:mod:`megaclassifier.run.executors`, ``run --ray``) gets the same
:class:`RunPlan`, so every option means the same under each.

Places for more steps:

* :data:`IMAGE_STEPS`: functions ``(plan) -> None`` that change ``plan.images`` (the images to
  decode and their crops) after the crop plan is made, in order: e.g. leave out images with no
  box above the threshold, or add a video's frames. The journal and the executors see their result.
* :data:`MERGED_STEPS`: functions ``(plan, summary) -> None`` run on the merged results, in order,
  before they are written: SpeciesNet's descriptions, its geofence (``--ensemble none``) or ensemble,
  smoothing, the video summary, the shard record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from megaclassifier.crop.core import PlannedCrop
from megaclassifier.crop.crop import CropSummary, plan_crops, resolve_detector
from megaclassifier.errors import MegaClassifierError
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.labels.descriptions import Taxon, load_taxonomy_file
from megaclassifier.models.resolved import ResolvedModel, names_release, resolve
from megaclassifier.run.classifier import Classifier
from megaclassifier.run.identity import run_identity
from megaclassifier.run.options import RunOptions, RunSummary
from megaclassifier.run.shards import ShardSelection, record_shard, take_shard

if TYPE_CHECKING:
    from megaclassifier.postprocess.ensemble import Ensemble

logger = logging.getLogger(__name__)

#: The crops to cut, image by image, in the detections file's order.
Plans = list[tuple[str, list[PlannedCrop]]]


@dataclass(frozen=True)
class Fence:
    """``--country``'s geofence: a SpeciesNet release's rules and taxonomy, and where."""

    geofence: dict[str, dict[str, Any]]
    taxonomy_map: dict[str, str]
    country: str
    admin1_region: str | None


@dataclass
class RunPlan:
    """One run, decided: what to read, with which model and options, and what the output depends on.

    Attributes:
        detections_json: the detections file.
        results: its contents (a shard's images only), merged into and written as the output.
        model: the model, resolved once.
        classifier: the driver's classifier (class names, mapping, and the engine an executor may use).
        options: the run's options.
        selection: the shard's images, or None without ``--shard``.
        detector: the detector name in crop names.
        class_taxa: ``--taxonomy``'s classes, or None.
        fence: ``--country``'s geofence, or None.
        ensemble: ``--ensemble``'s rules, or None (``none``).
        identity: the run identity (:mod:`megaclassifier.run.identity`).
        images: the images to decode and their crops (:data:`IMAGE_STEPS` may change them).
    """

    detections_json: Path
    results: DetectionResults
    model: ResolvedModel
    classifier: Classifier
    options: RunOptions
    selection: ShardSelection | None
    detector: str
    class_taxa: dict[str, Taxon] | None
    fence: Fence | None
    ensemble: Ensemble | None = None
    identity: dict[str, Any] = field(default_factory=dict)
    images: Plans = field(default_factory=list)

    def list_rules(self) -> tuple[float, int | None]:
        """The threshold and length of each box's ``classifications`` list as merged.

        Under an ensemble the top classes it reads and those ``raw_classifications`` keeps, unthresholded
        (:func:`~megaclassifier.postprocess.ensemble.classes_kept`); it applies the threshold itself.
        """
        options = self.options
        if self.ensemble is None:
            return options.classification_threshold, options.max_classifications
        from megaclassifier.postprocess.ensemble import classes_kept

        return 0.0, classes_kept(options.classification_threshold, options.max_classifications)


#: Opens the driver's classifier for a run (the executor's choice of device).
OpenClassifier = Callable[[ResolvedModel, RunOptions], Classifier]


def make_plan(
    results: DetectionResults,
    model: str | Path | ResolvedModel,
    options: RunOptions,
    summary: RunSummary,
    *,
    open_classifier: OpenClassifier,
) -> RunPlan:
    """Plan the run over ``results`` (just read); counts of the crop plan go to ``summary``.

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: before any image is read.
    """
    selection = take_shard(results, options.shard)
    detector = resolve_detector(results, options.detector_version)
    class_taxa = load_taxonomy_file(options.taxonomy) if options.taxonomy is not None else None
    resolved = resolve(model)
    classifier = open_classifier(resolved, options)
    try:
        fence = load_fence(classifier, options)
        ensemble = load_ensemble(resolved, classifier, options)
    except BaseException:
        classifier.engine.close()
        raise
    plan = RunPlan(results.path, results, resolved, classifier, options, selection, detector, class_taxa, fence,
                   ensemble)  # fmt: skip
    plan.identity = run_identity(
        model_sha256=resolved.identity,
        image_size=classifier.engine.image_size,
        detections_sha256=results.sha256,
        options=options,
    )
    plan.images = plan_images(results, summary.crop, options, detector, ensemble)
    for step in IMAGE_STEPS:
        step(plan)
    return plan


def plan_images(
    results: DetectionResults, crop: CropSummary, options: RunOptions, detector: str, ensemble: Ensemble | None = None
) -> Plans:
    """The crops to cut, image by image, as ``crop`` plans them (an ensemble: its boxes); counts go to ``crop``."""
    crop.images_missing_detections = results.files_missing_detections()
    plans = list(
        plan_crops(
            results,
            options.save_crops or ".",
            threshold=options.threshold,
            detector=detector,
            invalid_boxes=crop.invalid_boxes,
            select=ensemble.select(options.threshold) if ensemble is not None else None,
        )
    )
    crop.plan(plans)
    return plans


def load_fence(classifier: Classifier, options: RunOptions) -> Fence | None:
    """The release's geofence for ``--country``, read before any image is; None without ``--country``.

    Raises:
        MegaClassifierError: ``--country`` without a SpeciesNet release, or with a target mapping.
        ModelError: the release's taxonomy or geofence file is unusable.
    """
    if options.country is None:
        return None
    release = classifier.release
    if release is None or classifier.descriptions is None:
        raise MegaClassifierError(
            "--country applies a SpeciesNet release's geofence: give a SpeciesNet release folder as MODEL"
            + (" (and no --target-mapping)" if release is not None else "")
        )
    from megaclassifier.models.speciesnet import read_geofence, read_taxonomy_map

    region = options.admin1_region.upper() if options.admin1_region else None
    return Fence(read_geofence(release.geofence), read_taxonomy_map(release.taxonomy), options.country.upper(), region)


def default_ensemble(model: str | Path | ResolvedModel, target_mapping: str | Path | None) -> str:
    """``--ensemble``'s default: ``speciesnet`` for a SpeciesNet release (without a target mapping), else ``none``."""
    return "speciesnet" if names_release(model) and target_mapping is None else "none"


def load_ensemble(model: ResolvedModel, classifier: Classifier, options: RunOptions) -> Ensemble | None:
    """``--ensemble``'s rules, read before any image is; None for ``none``.

    Raises:
        MegaClassifierError: an ensemble without a SpeciesNet release, or with a target mapping.
        ModelError: the release's taxonomy or geofence file is unusable.
    """
    from megaclassifier.postprocess.ensemble import ENSEMBLES, NONE
    from megaclassifier.postprocess.ensemble import load_ensemble as release_ensemble

    mode = options.ensemble if options.ensemble is not None else default_ensemble(model, options.target_mapping)
    if mode not in ENSEMBLES:
        raise MegaClassifierError(f"--ensemble {mode!r} is not one of {', '.join(ENSEMBLES)}")
    if mode == NONE:
        return None
    release, labels = classifier.release, model.labels
    if release is None or classifier.descriptions is None or labels is None:
        raise MegaClassifierError(
            f"--ensemble {mode} is SpeciesNet's: give a SpeciesNet release folder as MODEL"
            + (" (and no --target-mapping)" if release is not None else "")
        )
    return release_ensemble(release, labels, mode, country=options.country, admin1_region=options.admin1_region,
                            max_per_image=options.max_classifications_per_image)  # fmt: skip


# -- after the merge


def speciesnet_descriptions(plan: RunPlan, summary: RunSummary) -> None:
    """A SpeciesNet release's labels as ``classification_category_descriptions`` (unless ``--taxonomy``)."""
    descriptions = plan.classifier.descriptions
    if descriptions is not None and plan.options.taxonomy is None:
        plan.results.data["classification_category_descriptions"] = descriptions


def geofence(plan: RunPlan, summary: RunSummary) -> None:
    """``--country``: the release's geofence on the merged results; how many detections it moved."""
    fence = plan.fence
    if fence is None or plan.ensemble is not None:  # the ensemble applies the geofence itself
        return
    from megaclassifier.postprocess.api import geofence_results

    summary.geofenced = geofence_results(
        plan.results,  # checked once, when it was read
        geofence=fence.geofence,
        taxonomy_map=fence.taxonomy_map,
        country=fence.country,
        admin1_region=fence.admin1_region,
    ).detections_changed


def speciesnet_ensemble(plan: RunPlan, summary: RunSummary) -> None:
    """``--ensemble speciesnet|speciesnet-legacy``: SpeciesNet's answer on each classified box."""
    if plan.ensemble is None:
        return
    options = plan.options
    summary.ensembled = plan.ensemble.apply(plan.results.data, options.classification_threshold,
                                            options.max_classifications)  # fmt: skip


def smooth(plan: RunPlan, summary: RunSummary) -> None:
    """``run --smooth``: smooth (after ``--rollup``, when given) the merged results, as ``smooth`` does."""
    if plan.options.smooth is None:
        return
    from megaclassifier.postprocess import smooth_results

    summary.postprocessed = smooth_results(plan.results, plan.options.smooth, taxonomy=plan.options.taxonomy)


def video_summary(plan: RunPlan, summary: RunSummary) -> None:
    """``--video-summary``: one answer per video entry, in place (after smoothing)."""
    if plan.options.video_summary is None:
        return
    from megaclassifier.postprocess.videos import summarize_videos

    summary.videos = summarize_videos(plan.results.data, plan.options.video_summary, nth=plan.options.video_summary_nth)


def shard_record(plan: RunPlan, summary: RunSummary) -> None:
    """``--shard``: what ``combine`` needs, in ``info.megaclassifier_shard``."""
    record_shard(plan.results, plan.selection, identity=plan.identity)


# -- the images to do


def skip_images_without_boxes(plan: RunPlan) -> None:
    """Leave out the images with no box to classify: never opened nor decoded, under every executor.

    Blank images, and those whose boxes are all below the threshold or of other categories, have
    nothing to crop: as ``crop`` does, ``run`` does not read them (on a real camera-trap set most
    of the photos). They are still counted (:attr:`CropSummary.images_without_boxes`) and stay in
    the output as they were, with no classifications, and an unreadable one is no failure.
    """
    plan.images = [(file, crops) for file, crops in plan.images if crops]


#: Steps that change the images to do, in order (see the module docstring).
IMAGE_STEPS: list[Callable[[RunPlan], None]] = [skip_images_without_boxes]
#: Steps on the merged results before they are written, in order.
MERGED_STEPS: list[Callable[[RunPlan, RunSummary], None]] = [
    speciesnet_descriptions,
    geofence,
    speciesnet_ensemble,
    smooth,
    video_summary,
    shard_record,
]


def after_merge(plan: RunPlan, summary: RunSummary) -> None:
    """Run :data:`MERGED_STEPS` on the merged results."""
    for step in MERGED_STEPS:
        step(plan, summary)
