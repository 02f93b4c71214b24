"""Post-processing of classified results: smoothing, species lists, taxonomy rollup.

What ecologists do after classifying, before anyone reviews the images:

* :func:`smooth_results` / :func:`smooth_file`: relabel odd detections from what the
  other detections of the same image or sequence say (MegaDetector's rules, or a
  confidence-weighted mean of the class scores);
* :func:`restrict_results` / :func:`restrict_file`: keep only the taxa of a species
  list, moving every other class to its nearest listed ancestor;
* :func:`rollup_results` / :func:`rollup_file`: label an uncertain detection with the
  genus, family, order or class its scores agree on;
* :func:`category_descriptions`: ``classification_category_descriptions`` for ``merge``.

The ``*_results`` functions edit a loaded results dict in place; the ``*_file``
functions stream one file into another.
"""

from megaclassifier.labels.descriptions import Taxon, category_descriptions, load_taxonomy_file
from megaclassifier.postprocess.api import (
    PostprocessSummary,
    restrict_file,
    restrict_results,
    rollup_file,
    rollup_results,
    smooth_file,
    smooth_results,
)
from megaclassifier.postprocess.classes import TaxonomyNeededError
from megaclassifier.postprocess.options import SmoothOptions

__all__ = [
    "PostprocessSummary",
    "SmoothOptions",
    "Taxon",
    "TaxonomyNeededError",
    "category_descriptions",
    "load_taxonomy_file",
    "restrict_file",
    "restrict_results",
    "rollup_file",
    "rollup_results",
    "smooth_file",
    "smooth_results",
]
