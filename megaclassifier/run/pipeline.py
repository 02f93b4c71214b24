"""``run``'s driver: MegaDetector results in, classified MegaDetector results out, in one pass.

The same answers as the four-step chain (``crop`` -> ``classify`` -> ``aggregate`` ->
``merge``) without writing and re-reading crop files. One driver for every executor::

    read the detections  -> check the outputs -> lock them (one writer: formats/lock.py)
    -> plan (run/plan.py: shard, detector, taxonomy, model resolved once, classifier, geofence,
       identity, the crops of each image)
    -> start the executor (run/executors.py: this process or a worker pool; cluster/ray_run.py: Ray)
    -> open the journal (run/resume.py): replay what an interrupted run finished
    -> the executor decodes and classifies the rest; the driver turns each batch's probabilities
       into CSV rows and ``classifications`` lists exactly as the chain would
       (:mod:`megaclassifier.run.classifier`), journals each finished image, and streams them
       into the merge (:func:`megaclassifier.merge.merge_rows`, which ``merge`` uses too)
    -> the run log; the steps after the merge (SpeciesNet descriptions, geofence, smoothing,
       the shard record); the output; the journal removed.

Replayed images take the same path as new ones (into the CSV, the merge and the
summary), and so does every executor's work: ``--ray`` equals a local run by construction.

Failed images are recorded and counted as in ``crop``, in a log file
``run_log_YYYYMMDD_HHMMSS.json`` with the same keys as the crop log.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from megaclassifier.crop.core import CutImage
from megaclassifier.formats.detections import DetectionResults, load_detections, write_detections
from megaclassifier.formats.lock import output_locks
from megaclassifier.formats.outputs import check_outputs
from megaclassifier.formats.probabilities import ProbabilityCsvWriter
from megaclassifier.labels.descriptions import Taxon
from megaclassifier.merge import Classifications, CropRef, merge_rows
from megaclassifier.models.resolved import ResolvedModel
from megaclassifier.run.classifier import Classifier
from megaclassifier.run.executors import Executor, LocalExecutor, ProbabilityBatch
from megaclassifier.run.options import RunOptions, RunSummary
from megaclassifier.run.plan import RunPlan, after_merge, make_plan
from megaclassifier.run.resume import RowWriter, RunResume, crop_keys, open_run_resume

logger = logging.getLogger(__name__)

__all__ = ["RunOptions", "RunSummary", "classified_rows", "run_pipeline"]


def run_pipeline(
    detections_json: str | Path,
    model: str | Path | ResolvedModel,
    options: RunOptions,
    *,
    progress: bool = False,
    executor: Executor | None = None,
) -> RunSummary:
    """Crop, classify and merge (and smooth) in one pass.

    Args:
        detections_json: MegaDetector results file.
        model: TorchScript file, EfficientNet checkpoint, SpeciesNet release folder or published model name
            (or one resolved: :func:`~megaclassifier.models.resolved.resolve`).
        options: everything else (:class:`RunOptions`).
        progress: show a progress bar on stderr.
        executor: who decodes and classifies (default: :class:`~megaclassifier.run.executors.LocalExecutor`
            with ``options.num_workers``).

    Raises:
        InputFileError, ModelError, LabelSpecError, MegaClassifierError: before any image is read;
        OutputLockedError: another process writes the same output.
    """
    started = time.perf_counter()
    executor = executor or LocalExecutor(options.num_workers)
    results = load_detections(detections_json)
    check_outputs([options.output_json, options.output_csv], [options.logdir, options.save_crops])
    summary = RunSummary()
    with output_locks([options.output_json, options.output_csv]):
        plan = make_plan(results, model, options, summary, open_classifier=executor.open_classifier)
        with contextlib.ExitStack() as stack:
            stack.enter_context(executor.start(plan, summary))
            resume = open_run_resume(plan, executor.engine_key(), summary)
            stack.enter_context(resume.journal)
            classify_and_merge(plan, executor, resume, summary, stack, progress=progress)
            write_run_log(summary, options)  # before the CSV is committed: when every image failed, nothing is
        after_merge(plan, summary)
        finish_run(summary, results, options, started)
        resume.journal.finish()
    return summary


def classify_and_merge(
    plan: RunPlan,
    executor: Executor,
    resume: RunResume,
    summary: RunSummary,
    stack: contextlib.ExitStack,
    *,
    progress: bool,
) -> None:
    """Replay the journal, have the executor do the rest, and merge every image's classifications."""
    todo = resume.pending(plan.images)
    bar = stack.enter_context(progress_bar(sum(len(crops) for _, crops in todo), progress))
    csv = resume.csv(stack.enter_context(csv_writer(plan.options, plan.classifier)))

    def seen(image: CutImage[Any], ready: int) -> None:
        summary.crop.record(image)
        resume.seen(image, ready)
        if image.planned != ready:  # failed images and size-0 boxes leave the bar's total
            bar.total -= image.planned - ready
            bar.refresh()

    batches = executor.classify(todo, seen)
    rows = resume.rows(
        classified_rows(batches, plan.classifier, summary, plan.list_rules(), bar=bar, csv=csv), crop_keys(todo)
    )
    summary.merged = merge_classified(plan.results, rows, plan.classifier, plan.options, plan.class_taxa)


def merge_classified(
    results: DetectionResults,
    rows: Iterable[tuple[CropRef, Classifications]],
    classifier: Classifier,
    options: RunOptions,
    class_taxa: dict[str, Taxon] | None,
) -> int:
    """Merge the classified rows as they come (:func:`~megaclassifier.merge.merge_rows`); return how many."""
    return merge_rows(
        results,
        rows,
        classifier_name=classifier.name,
        classification_categories=classifier.categories,
        typical_classification_threshold=options.typical_classification_threshold,
        class_taxa=class_taxa,
    ).detections_classified


def csv_writer(
    options: RunOptions, classifier: Classifier
) -> contextlib.AbstractContextManager[ProbabilityCsvWriter | None]:
    """The probability CSV's writer with ``--output-csv``, else nothing."""
    if options.output_csv is None:
        return contextlib.nullcontext()
    return ProbabilityCsvWriter(options.output_csv, classifier.class_names)


def classified_rows(
    batches: Iterator[ProbabilityBatch],
    classifier: Classifier,
    summary: RunSummary,
    list_rules: tuple[float, int | None],
    *,
    bar: Any,
    csv: RowWriter | None,
) -> Iterator[tuple[CropRef, Classifications]]:
    """Each classified crop's ``((file, index), classifications)``, from the executor's probability batches.

    ``list_rules``: the threshold and length of each list (:meth:`~megaclassifier.run.plan.RunPlan.list_rules`).

    Also writes the probability CSV rows and counts the crops in ``summary`` and on ``bar``.
    """
    for keys, probabilities in batches:
        if csv is not None:
            csv.write_rows([key for _, _, key in keys], probabilities)
        lists = classifier.classification_lists(
            probabilities, threshold=list_rules[0], max_classifications=list_rules[1]
        )
        summary.classified += len(keys)
        bar.update(len(keys))
        for (file, index, _), classifications in zip(keys, lists, strict=True):
            yield (file, index), classifications


@contextlib.contextmanager
def progress_bar(total: int, progress: bool) -> Iterator[Any]:
    """A tqdm bar over the crops, with log lines printed above it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with tqdm(total=total, unit="crops", desc="run", disable=not progress, dynamic_ncols=True, smoothing=0.1) as bar:
        if not progress:
            yield bar
            return
        with logging_redirect_tqdm([logging.getLogger("megaclassifier")]):
            yield bar


def write_run_log(summary: RunSummary, options: RunOptions) -> None:
    """Write the run log (the crop log's keys, and the decoder's).

    Raises:
        NothingWorkedError: every image failed; the log is written, no results file is.
    """
    from megaclassifier.crop.crop import write_crop_log

    decoding = {"decoder": summary.decoder, "num_decoded_on_cpu_by_gpu_decoder": len(summary.crop.gpu_fallbacks)}
    extra = {**decoding, "decoded_on_cpu_by_gpu_decoder": dict(sorted(summary.crop.gpu_fallbacks.items()))}
    summary.crop.log_path = write_crop_log(options.logdir, summary.crop, prefix="run_log", extra=extra)
    summary.crop.raise_if_all_failed(f"nothing classified, {options.output_json} not written")


def finish_run(summary: RunSummary, results: DetectionResults, options: RunOptions, started: float) -> RunSummary:
    """Write the merged results; complete the summary."""
    write_detections(options.output_json, results.data)
    summary.output_json = Path(options.output_json)
    summary.output_csv = Path(options.output_csv) if options.output_csv is not None else None
    summary.seconds = time.perf_counter() - started
    return summary
