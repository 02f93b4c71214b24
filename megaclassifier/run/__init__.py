"""``run``: detections to merged classifications in one pass, no crop files."""

from megaclassifier.run.pipeline import RunOptions, RunSummary, run_pipeline

__all__ = ["RunOptions", "RunSummary", "run_pipeline"]
