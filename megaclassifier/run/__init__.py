"""``run``: detections to merged classifications in one pass, no crop files."""

from megaclassifier.run.pipeline import RunSummary, run_pipeline

__all__ = ["RunSummary", "run_pipeline"]
