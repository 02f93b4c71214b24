"""``run``: detections to merged classifications in one pass, no crop files.

* :mod:`.pipeline`: the driver (plan, journal, merge, outputs) that every executor shares;
* :mod:`.plan`: what is decided before the first image, and the steps after the merge;
* :mod:`.executors`: who decodes and classifies (this process, a worker pool; Ray in
  :mod:`megaclassifier.cluster.ray_run`);
* :mod:`.options`, :mod:`.identity`, :mod:`.resume`, :mod:`.shards`: the options and what each
  does to the output, the run identity, the journal, the shard rule.
"""

from megaclassifier.run.options import RunOptions, RunSummary
from megaclassifier.run.pipeline import run_pipeline

__all__ = ["RunOptions", "RunSummary", "run_pipeline"]
