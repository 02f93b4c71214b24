"""megaclassifier: classify the animals MegaDetector finds in camera-trap images.

The pipeline: ``crop`` the boxes of a MegaDetector results file, ``classify``
the crops, optionally ``aggregate`` the classifier's classes into a project's
targets, and ``merge`` the probabilities back into the MegaDetector JSON.
``run`` does all of it in one pass.
"""

__version__ = "0.2.0"
