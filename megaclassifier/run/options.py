"""``run``'s options and summary, each option tagged with what it does to the output.

Every :class:`RunOptions` field carries one *identity role* in its metadata
(:func:`identity_role`), read by the run identity (:mod:`megaclassifier.run.identity`)
that the resume journal and the shard record share:

* ``output``: changes what ``run`` writes; recorded by value.
* ``content``: names an input file that changes what ``run`` writes; recorded by its SHA-256.
* ``local``: where this machine reads or writes, or how its engine runs (the images folder, the side
  outputs, the device, the batch size): the journal compares it (a resumed run must read the same
  images and write the same files), ``combine`` does not (each node mounts its own).
* ``neutral``: changes nothing in the output (worker count, timeout, log folder, ``--restart``).

A test checks that every field is tagged, so a new option must say which it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from megaclassifier.constants import DEFAULT_BATCH_SIZE, DEFAULT_MERGE_THRESHOLD, DEFAULT_TIMEOUT
from megaclassifier.crop.core import CutOptions
from megaclassifier.crop.crop import CropSummary
from megaclassifier.preprocess import REFERENCE, Preprocessing

if TYPE_CHECKING:
    from megaclassifier.postprocess import PostprocessSummary
    from megaclassifier.postprocess.ensemble import EnsembleSummary
    from megaclassifier.postprocess.options import SmoothOptions
    from megaclassifier.postprocess.videos import VideoSummary
    from megaclassifier.run.shards import Shard

OUTPUT = "output"
CONTENT = "content"
LOCAL = "local"
NEUTRAL = "neutral"
ROLES = (OUTPUT, CONTENT, LOCAL, NEUTRAL)


def _tagged(role: str, default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"identity": role})


def identity_role(option: dataclasses.Field[Any]) -> str | None:
    """The identity role of a :class:`RunOptions` field (None: untagged, which a test forbids)."""
    return option.metadata.get("identity")


@dataclass
class RunSummary:
    """What a ``run`` did."""

    crop: CropSummary = field(default_factory=CropSummary)
    classified: int = 0
    merged: int = 0
    seconds: float = 0.0
    engine: str = ""
    geofenced: int | None = None
    ensembled: EnsembleSummary | None = None
    decoder: str = ""
    output_json: Path | None = None
    output_csv: Path | None = None
    postprocessed: PostprocessSummary | None = None
    videos: VideoSummary | None = None

    @property
    def crops_per_second(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RunOptions:
    """What ``run`` does besides reading its two inputs; one field per command-line option.

    Attributes:
        output_json: the merged results file (Timelapse-ready).
        images_dir, container_url, detector_version, threshold, square_crops, timeout,
            allow_outside_images_dir: as ``crop``.
        classifier_categories, target_mapping, classifier_name: see
            :func:`~megaclassifier.run.classifier.open_classifier`.
        output_csv: also write the classifier's probability CSV, as ``classify`` would.
        save_crops: also write the crop files, as ``crop`` would.
        classification_threshold, typical_classification_threshold, max_classifications: as ``merge``.
        image_size, batch_size, device, precision, backend, arch: as ``classify``.
        num_workers: image-decoding processes (0: in this process; default:
            :func:`~megaclassifier.run.prepare.default_run_workers`).
        jpeg_roundtrip: pass each crop through JPEG quality 75 in memory, as the chain's crop files do
            (the default, fast path included; False: the raw pixels, which change a trained network's
            top-1 class on about a third of the boxes: docs/pipeline.md).
        exact: the chain's answers bit for bit: full-size Pillow decoding (with the JPEG round trip).
            Without it JPEGs are decoded at a draft reduction (:mod:`megaclassifier.crop.draft`).
        decoder: ``auto``, ``cpu``, ``gpu`` or ``hybrid`` (:mod:`megaclassifier.run.decoders`).
        taxonomy: class name -> taxonomy CSV: write ``classification_category_descriptions`` (as ``merge``),
            and the taxonomy that smoothing and roll-up use. A SpeciesNet release writes its own labels
            there without it.
        country, admin1_region: apply a SpeciesNet release's geofence for this ISO 3166-1 alpha-3 country
            (and first-level region), as its ensemble does (:mod:`megaclassifier.postprocess.geofence`).
        ensemble: ``speciesnet`` (SpeciesNet 5.0.6's answer per box), ``speciesnet-legacy`` (5.0.5's, per
            image) or ``none`` (the classifier's top-k); None: ``speciesnet`` for a SpeciesNet release
            without ``target_mapping``, else ``none`` (:mod:`megaclassifier.postprocess.ensemble`).
        max_classifications_per_image: under an ensemble, classify at most this many boxes per image
            (the highest conf; None: all, as SpeciesNet).
        smooth: smooth the merged results before writing them, as ``smooth`` does.
        video_summary, video_summary_nth: then keep one answer per video entry
            (:mod:`megaclassifier.postprocess.videos`: ``best-frame`` or ``max-per-class``).
        logdir: where ``run_log_YYYYMMDD_HHMMSS.json`` goes.
        shard: classify only this shard's images (:mod:`megaclassifier.run.shards`); ``combine`` joins them.
        restart: ignore the resume journal (``OUTPUT_JSON.journal``) of an interrupted run
            (see :mod:`megaclassifier.run.resume`).
    """

    output_json: str | Path = _tagged(NEUTRAL)
    images_dir: str | Path | None = _tagged(LOCAL, None)
    container_url: str | None = _tagged(OUTPUT, None)
    detector_version: str | None = _tagged(OUTPUT, None)
    threshold: float = _tagged(OUTPUT, 0.0)
    square_crops: bool = _tagged(OUTPUT, False)
    timeout: float = _tagged(NEUTRAL, DEFAULT_TIMEOUT)
    allow_outside_images_dir: bool = _tagged(OUTPUT, False)
    classifier_categories: str | Path | None = _tagged(CONTENT, None)
    target_mapping: str | Path | None = _tagged(CONTENT, None)
    classifier_name: str | None = _tagged(OUTPUT, None)
    output_csv: str | Path | None = _tagged(LOCAL, None)
    save_crops: str | Path | None = _tagged(LOCAL, None)
    classification_threshold: float = _tagged(OUTPUT, DEFAULT_MERGE_THRESHOLD)
    typical_classification_threshold: float | None = _tagged(OUTPUT, None)
    max_classifications: int | None = _tagged(OUTPUT, None)
    image_size: int | None = _tagged(OUTPUT, None)
    batch_size: int = _tagged(LOCAL, DEFAULT_BATCH_SIZE)
    num_workers: int | None = _tagged(NEUTRAL, None)
    device: str = _tagged(LOCAL, "auto")
    precision: str = _tagged(OUTPUT, "fp32")
    backend: str = _tagged(OUTPUT, "auto")
    arch: str | None = _tagged(OUTPUT, None)
    jpeg_roundtrip: bool = _tagged(OUTPUT, True)
    exact: bool = _tagged(OUTPUT, False)
    decoder: str = _tagged(OUTPUT, "auto")
    taxonomy: str | Path | None = _tagged(CONTENT, None)
    country: str | None = _tagged(OUTPUT, None)
    admin1_region: str | None = _tagged(OUTPUT, None)
    ensemble: str | None = _tagged(OUTPUT, None)
    max_classifications_per_image: int | None = _tagged(OUTPUT, None)
    smooth: SmoothOptions | None = _tagged(OUTPUT, None)
    video_summary: str | None = _tagged(OUTPUT, None)
    video_summary_nth: int = _tagged(OUTPUT, 1)
    logdir: str | Path = _tagged(NEUTRAL, ".")
    shard: Shard | None = _tagged(LOCAL, None)
    restart: bool = _tagged(NEUTRAL, False)

    def cut_options(self, profile: Preprocessing = REFERENCE, image_size: int = 0) -> CutOptions:
        """How the crop core finds the images and treats each crop, for a model with ``profile``.

        The fast path decodes JPEGs at a draft reduction that keeps every box at least ``image_size``
        (not with ``exact``); both paths pass each crop through the JPEG round trip unless
        ``jpeg_roundtrip`` is off. A SpeciesNet profile cuts its own geometry at full size, never
        squared, with no JPEG round trip.
        """
        reference = profile.crop_geometry == "reference"
        return CutOptions(
            images_dir=str(self.images_dir) if self.images_dir is not None else None,
            container_url=self.container_url,
            timeout=self.timeout,
            allow_outside_images_dir=self.allow_outside_images_dir,
            square_crops=self.square_crops and reference,
            geometry=profile.crop_geometry,
            write_crops=self.save_crops is not None,
            jpeg_roundtrip=self.jpeg_roundtrip and reference,
            min_side=0 if self.exact or not reference else image_size,
        )


def options_with_role(options: RunOptions, *roles: str) -> dict[str, Any]:
    """The fields of ``options`` whose role is one of ``roles``, by name, in declaration order."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if identity_role(f) in roles}
