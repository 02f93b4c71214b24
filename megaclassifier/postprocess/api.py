"""The entry points: smooth, restrict and roll up classified results, in memory or file to file.

``*_results`` functions edit a loaded results dict in place (``run`` can call
them before writing); ``*_file`` functions stream a results file to a new one,
one image at a time, so that memory stays flat as files grow. Each step sorts
every ``classifications`` list most confident first, keeps a changed
detection's original list in ``raw_classifications``, adds any class it
creates to ``classification_categories`` (and its description to
``classification_category_descriptions``), and appends what it did to
``info.classification_postprocessing``::

    "classification_postprocessing": [
     {"step": "smooth", "level": "image", "method": "counts",
      "detections_changed": {"other": 1, "dominant": 3, "taxonomic": 0, "same_family": 0, ...},
      "groups_changed": 2, "options": {...}, "megaclassifier_version": "0.4.0"}
    ]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from megaclassifier import __version__
from megaclassifier.errors import InputFileError, MegaClassifierError
from megaclassifier.formats.detections import DetectionResults
from megaclassifier.formats.detections_stream import InMemoryResults, StreamedResults, results_writer
from megaclassifier.postprocess.classes import ClassTable
from megaclassifier.postprocess.geofence import Geofence
from megaclassifier.postprocess.groups import Changes, Group, GroupSmoother, apply_changes
from megaclassifier.postprocess.options import DEFAULT_RESTRICT_SEMANTICS, DEFAULT_ROLLUP_SEMANTICS, SmoothOptions
from megaclassifier.postprocess.restrict import Restriction, read_taxa_list
from megaclassifier.postprocess.rollup import Rollup, RollupFence
from megaclassifier.postprocess.sequences import Sequences, normalise, sequences_from_cct, sequences_from_exif
from megaclassifier.postprocess.videos import VideoSummary, record_step, video_summarizer

logger = logging.getLogger(__name__)

Results = InMemoryResults | StreamedResults
Sink = Callable[[dict[str, Any]], None]


@dataclass
class PostprocessSummary:
    """What a step did.

    Attributes:
        step: ``smooth``, ``restrict`` or ``rollup``.
        images: images read.
        detections_classified: detections with classifications.
        changed: detections changed, by rule or level.
        groups_changed: images or sequences with a change (smooth).
        sequences: the sequences smoothed over (``level="sequence"``).
        classes_added: names of the classes the step added.
        output: the file written (file-to-file functions).
        video: what ``--video-summary`` did after the step (``smooth_file``), else None.
    """

    step: str
    images: int = 0
    detections_classified: int = 0
    changed: dict[str, int] = field(default_factory=dict)
    groups_changed: int = 0
    sequences: Sequences | None = None
    classes_added: list[str] = field(default_factory=list)
    output: Path | None = None
    video: VideoSummary | None = None

    @property
    def detections_changed(self) -> int:
        """All detections changed (a detection changed by two rules counts twice)."""
        return sum(self.changed.values())


class _Preparer:
    """Checks class IDs, sorts each list most confident first, counts classified detections, rolls up."""

    def __init__(self, table: ClassTable, rollup: Rollup | None = None) -> None:
        self.known = table.names
        self.source = table.source
        self.rollup = rollup
        self.images = 0
        self.classified = 0

    def __call__(self, image: dict[str, Any]) -> None:
        for j, det in enumerate(image.get("detections") or ()):
            classes = det.get("classifications")
            if classes:
                self._check(classes, image, j)
                classes.sort(key=lambda c: -c[1])
                self.classified += 1
                if self.rollup is not None:
                    self.rollup.apply(det)
        self.images += 1

    def _check(self, classes: list[list[Any]], image: dict[str, Any], j: int) -> None:
        for cid, _ in classes:
            if cid not in self.known:
                raise InputFileError(
                    self.source,
                    f'images[{self.images}] ("{image["file"]}") detection {j}: class "{cid}" is not in '
                    '"classification_categories"',
                )

    def reset(self) -> None:
        self.images = self.classified = 0
        if self.rollup is not None:
            self.rollup.by_level = dict.fromkeys(self.rollup.by_level, 0)

    def require_classifications(self, source: str) -> None:
        if not self.classified:
            raise InputFileError(
                source, 'no detection has "classifications": these results are not classified (run merge or run first)'
            )


def _discard(image: dict[str, Any]) -> None:
    """A sink for in-memory results (edited in place)."""


# --- smooth -------------------------------------------------------------------------------------


def smooth_results(
    data: dict[str, Any] | DetectionResults,
    options: SmoothOptions | None = None,
    *,
    taxonomy: str | Path | None = None,
    source: str = "<results>",
) -> PostprocessSummary:
    """Smooth loaded results in place.

    Args:
        data: MegaDetector results with classifications: a dict, or a loaded
            :class:`~megaclassifier.formats.detections.DetectionResults`, whose images are not
            checked again.
        options: what to do (MegaDetector's defaults when None).
        taxonomy: ``--taxonomy FILE`` used when ``data`` has no descriptions.
        source: the name used in messages.

    Raises:
        InputFileError: no classifications, a bad sequence file, a bad taxonomy.
        TaxonomyNeededError: ``options.rollup`` without a taxonomy.
    """
    results = InMemoryResults(data, source)
    table = ClassTable.from_header(results.header, results.source, taxonomy)
    summary = _smooth(results, table, options or SmoothOptions(), _discard)
    _finish(results.header, table, summary, _smooth_record(summary, options or SmoothOptions()))
    return summary


def smooth_file(
    input_json: str | Path,
    output_json: str | Path,
    *,
    options: SmoothOptions | None = None,
    taxonomy: str | Path | None = None,
    video_summary: str | None = None,
    video_summary_nth: int = 1,
) -> PostprocessSummary:
    """Smooth a results file into a new one (streamed; see :func:`smooth_results`).

    With ``video_summary``, each smoothed video entry is then summarised as it is written
    (:mod:`megaclassifier.postprocess.videos`); the counts are in the summary's ``video``.
    """
    options = options or SmoothOptions()
    summarize: Callable[[dict[str, Any]], None] | None = None
    if video_summary is not None:
        summarize, video = video_summarizer(video_summary, video_summary_nth)

    def step(results: Results, table: ClassTable, sink: Sink) -> PostprocessSummary:
        if summarize is None:
            return _smooth(results, table, options, sink)

        def write(image: dict[str, Any]) -> None:
            summarize(image)
            sink(image)

        summary = _smooth(results, table, options, write)
        summary.video = video
        return summary

    return _file_step(input_json, output_json, taxonomy, step, lambda s: _smooth_record(s, options))


def _smooth(results: Results, table: ClassTable, options: SmoothOptions, sink: Sink) -> PostprocessSummary:
    rollup = Rollup(table, options.rollup, options.rollup_semantics) if options.rollup is not None else None
    prepare = _Preparer(table, rollup)
    smoother = GroupSmoother(table, options, results.header.get("detection_categories") or {})
    summary = PostprocessSummary("smooth")
    if options.method == "counts" and not smoother.ctx.taxonomic:
        logger.warning(
            "%s: no taxonomy (no classification_category_descriptions, no --taxonomy): "
            "the taxonomic and same-family rules are skipped",
            results.source,
        )
    if options.level == "image":
        _smooth_images(results, smoother, prepare, sink)
    else:
        summary.sequences = _sequences(results, options)
        changes = _smooth_sequences(results, summary.sequences, smoother, prepare)
        _apply_sequence_changes(results, changes, prepare, sink)
    prepare.require_classifications(results.source)
    summary.images, summary.detections_classified = prepare.images, prepare.classified
    counts = smoother.changes.counts
    summary.changed = {k: v for k, v in counts.items() if (k == "probabilities") == (options.method != "counts")}
    if rollup is not None:
        summary.changed["rollup"] = rollup.changed
    summary.groups_changed = smoother.groups_changed
    return summary


def _smooth_images(results: Results, smoother: GroupSmoother, prepare: _Preparer, sink: Sink) -> None:
    """One pass: each image is its own group."""
    for i, image in enumerate(results.images()):
        prepare(image)
        group = Group()
        changes: Changes = {}
        smoother.collect(group, image, i)
        smoother.decide(group, changes)
        apply_changes(image, changes.get(i))
        sink(image)


def _sequences(results: Results, options: SmoothOptions) -> Sequences:
    if options.sequences is not None:
        return sequences_from_cct(options.sequences, results.files(), results=results.source)
    if options.images_dir is None:
        raise MegaClassifierError(
            f"{results.source}: sequence smoothing needs --sequences CCT.json, or --images-dir DIR to read the "
            "images' EXIF times"
        )
    return sequences_from_exif(
        results.files(), options.images_dir, camera_depth=options.camera_depth, gap_seconds=options.gap_seconds
    )


def _smooth_sequences(results: Results, sequences: Sequences, smoother: GroupSmoother, prepare: _Preparer) -> Changes:
    """First pass: collect each sequence's detections; then decide every sequence."""
    groups: dict[int, Group] = {}
    for i, image in enumerate(results.images()):
        prepare(image)
        place = sequences.of.get(normalise(image["file"]))
        if place is not None:
            smoother.collect(groups.setdefault(place[0], Group()), image, i, place[1])
    changes: Changes = {}
    for group in groups.values():
        smoother.decide(group, changes)
    return changes


def _apply_sequence_changes(results: Results, changes: Changes, prepare: _Preparer, sink: Sink) -> None:
    """Second pass: relabel; a streamed file is read again, so it is prepared (and counted) again."""
    reload = isinstance(results, StreamedResults)
    if reload:
        prepare.reset()
    for i, image in enumerate(results.images()):
        if reload:
            prepare(image)
        apply_changes(image, changes.get(i))
        sink(image)


def _smooth_record(summary: PostprocessSummary, options: SmoothOptions) -> dict[str, Any]:
    record: dict[str, Any] = {"step": "smooth", "level": options.level, "method": options.method}
    record["detections_changed"] = dict(summary.changed)
    record["groups_changed"] = summary.groups_changed
    if summary.sequences is not None:
        seq = summary.sequences
        record["sequences"] = {"source": seq.source, "count": seq.count, "images_without_time": seq.without_time,
                               "images_not_in_sequences": seq.not_in_file,
                               "sequence_images_missing_from_results": seq.missing_from_results}  # fmt: skip
    record["options"] = options.recorded()
    return record


# --- rollup and restrict ------------------------------------------------------------------------


def rollup_results(
    data: dict[str, Any],
    threshold: float,
    *,
    semantics: str = DEFAULT_ROLLUP_SEMANTICS,
    fence: RollupFence | None = None,
    taxonomy: str | Path | None = None,
    source: str = "<results>",
) -> PostprocessSummary:
    """Roll uncertain detections of a loaded results dict up the taxonomy, in place (see :mod:`.rollup`).

    Args:
        semantics: ``speciesnet``, ``megadetector`` or ``megaclassifier`` (:data:`.rollup.SEMANTICS`).
        fence: the geofence taxa are checked against (``--country``), or None.
    """
    results = InMemoryResults(data, source)
    table = ClassTable.from_header(data, source, taxonomy)
    summary = _rollup(results, table, Rollup(table, threshold, semantics, fence), _discard)
    _finish(data, table, summary, _rollup_record(summary, threshold, semantics, fence))
    return summary


def rollup_file(
    input_json: str | Path,
    output_json: str | Path,
    *,
    threshold: float,
    semantics: str = DEFAULT_ROLLUP_SEMANTICS,
    fence: RollupFence | None = None,
    taxonomy: str | Path | None = None,
) -> PostprocessSummary:
    """Roll up a results file into a new one (streamed; see :func:`rollup_results`)."""
    return _file_step(input_json, output_json, taxonomy,
                      lambda r, t, sink: _rollup(r, t, Rollup(t, threshold, semantics, fence), sink),
                      lambda s: _rollup_record(s, threshold, semantics, fence))  # fmt: skip


def _rollup(results: Results, table: ClassTable, rollup: Rollup, sink: Sink) -> PostprocessSummary:
    prepare = _Preparer(table, rollup)
    for image in results.images():
        prepare(image)
        sink(image)
    prepare.require_classifications(results.source)
    return PostprocessSummary("rollup", prepare.images, prepare.classified, dict(rollup.by_level))


def _rollup_record(
    summary: PostprocessSummary, threshold: float, semantics: str, fence: RollupFence | None
) -> dict[str, Any]:
    record: dict[str, Any] = {"step": "rollup", "semantics": semantics, "threshold": threshold}
    if fence is not None:
        record.update(country=fence.country, admin1_region=fence.admin1_region)
    record["detections_changed"] = dict(summary.changed)
    return record


def restrict_results(
    data: dict[str, Any],
    taxa_list: str | Path,
    *,
    semantics: str = DEFAULT_RESTRICT_SEMANTICS,
    taxonomy: str | Path | None = None,
    source: str = "<results>",
) -> PostprocessSummary:
    """Keep only the taxa of a species list in a loaded results dict, in place (see :mod:`.restrict`).

    Args:
        semantics: ``megadetector`` (MegaDetector's ``restrict_to_taxa_list``) or ``megaclassifier``.
    """
    results = InMemoryResults(data, source)
    table = ClassTable.from_header(data, source, taxonomy)
    summary = _restrict(results, table, taxa_list, semantics, _discard)
    _finish(data, table, summary, _restrict_record(summary, taxa_list, semantics))
    return summary


def restrict_file(
    input_json: str | Path,
    output_json: str | Path,
    *,
    taxa_list: str | Path,
    semantics: str = DEFAULT_RESTRICT_SEMANTICS,
    taxonomy: str | Path | None = None,
) -> PostprocessSummary:
    """Restrict a results file to a species list into a new file (streamed; see :func:`restrict_results`)."""
    return _file_step(input_json, output_json, taxonomy, lambda r, t, sink: _restrict(r, t, taxa_list, semantics, sink),
                      lambda s: _restrict_record(s, taxa_list, semantics))  # fmt: skip


def _restrict(
    results: Results, table: ClassTable, taxa_list: str | Path, semantics: str, sink: Sink
) -> PostprocessSummary:
    restriction = Restriction(table, read_taxa_list(taxa_list), list_path=taxa_list, semantics=semantics)
    prepare = _Preparer(table)
    for image in results.images():
        prepare(image)
        for det in image.get("detections") or ():
            restriction.apply(det)
        sink(image)
    prepare.require_classifications(results.source)
    if semantics == "megadetector":
        changed = {"moved": restriction.changed - restriction.to_animal, "to_animal": restriction.to_animal}
    else:
        changed = {"moved": restriction.changed - restriction.emptied, "left_unclassified": restriction.emptied}
    return PostprocessSummary("restrict", prepare.images, prepare.classified, changed)


def _restrict_record(summary: PostprocessSummary, taxa_list: str | Path, semantics: str) -> dict[str, Any]:
    return {"step": "restrict", "semantics": semantics, "taxa_list": Path(taxa_list).name,
            "detections_changed": dict(summary.changed)}  # fmt: skip


def geofence_results(
    data: dict[str, Any] | DetectionResults,
    *,
    geofence: dict[str, dict[str, Any]],
    taxonomy_map: dict[str, str],
    country: str,
    admin1_region: str | None = None,
    source: str = "<results>",
) -> PostprocessSummary:
    """Move fenced-out detections of a loaded results dict to their nearest allowed ancestor (see :mod:`.geofence`).

    The classes' ``classification_category_descriptions`` must be SpeciesNet labels (``run`` with a
    SpeciesNet release writes them). A loaded ``DetectionResults``'s images are not checked again.
    """
    results = InMemoryResults(data, source)
    data = results.header
    table = ClassTable.from_header(data, results.source)
    labels = {str(k): v for k, v in (data.get("classification_category_descriptions") or {}).items()}
    fence = Geofence(table, labels, geofence=geofence, taxonomy_map=taxonomy_map, country=country,
                     admin1_region=admin1_region)  # fmt: skip
    prepare = _Preparer(table)
    for image in results.images():
        prepare(image)
        for det in image.get("detections") or ():
            fence.apply(det)
    record = {"step": "geofence", "country": country, "admin1_region": admin1_region,
              "detections_changed": dict(fence.by_level)}  # fmt: skip
    summary = PostprocessSummary("geofence", prepare.images, prepare.classified, dict(fence.by_level))
    _finish(data, table, summary, record)
    return summary


# --- shared -------------------------------------------------------------------------------------


def _finish(header: dict[str, Any], table: ClassTable, summary: PostprocessSummary, record: dict[str, Any]) -> None:
    """Write the classes and the step's record into the header."""
    table.write_into(header)
    summary.classes_added = [table.names[cid] for cid in table.added]
    if summary.classes_added:
        record["classes_added"] = {cid: table.names[cid] for cid in table.added}
    record["megaclassifier_version"] = __version__
    info = header.get("info")
    if not isinstance(info, dict):
        info = header["info"] = {}
    steps = info.get("classification_postprocessing")
    info["classification_postprocessing"] = [*(steps if isinstance(steps, list) else []), record]


def _file_step(
    input_json: str | Path,
    output_json: str | Path,
    taxonomy: str | Path | None,
    step: Callable[[Results, ClassTable, Sink], PostprocessSummary],
    record: Callable[[PostprocessSummary], dict[str, Any]],
) -> PostprocessSummary:
    input_json, output_json = Path(input_json), Path(output_json)
    if output_json.exists() and output_json.resolve() == input_json.resolve():
        raise MegaClassifierError(f"{output_json}: is the input file; choose another output file")
    results = StreamedResults(input_json)
    table = ClassTable.from_header(results.header, str(input_json), taxonomy)
    with results_writer(output_json, results.header) as writer:
        summary = step(results, table, writer.write_image)
        _finish(results.header, table, summary, record(summary))
        if summary.video is not None:
            record_step(results.header, summary.video)
    summary.output = output_json
    return summary
