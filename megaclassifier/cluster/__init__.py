"""Past one machine: ``run --ray`` and ``combine`` (of ``run --shard`` outputs).

Nothing is imported here: the shard selection itself lives below, in
:mod:`megaclassifier.run.shards` (``run_pipeline`` uses it), and Ray is
imported only by :mod:`~megaclassifier.cluster.ray_run`, when ``--ray`` is given.
"""
