"""Past one machine: shards for batch schedulers (``run --shard``, ``combine``) and ``run --ray``.

Nothing is imported here: :mod:`megaclassifier.run.pipeline` imports
:mod:`~megaclassifier.cluster.shards`, and Ray is imported only by
:mod:`~megaclassifier.cluster.ray_run`, when ``--ray`` is given.
"""
