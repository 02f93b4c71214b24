"""Label tooling: turn the classifier's classes into the targets a project cares about.

* :mod:`.spec_csv`: the label-specification CSV and ``csv-to-json``.
* :mod:`.taxonomy`: the taxonomy CSV and the taxonomy tree built from it.
* :mod:`.mapping`: ``map-categories``, classifier labels -> target labels.
* :mod:`.aggregate`: ``aggregate``, classifier probabilities -> target probabilities.
"""

from megaclassifier.labels.aggregate import AggregateSummary, aggregate_probabilities
from megaclassifier.labels.mapping import MappingSummary, map_categories
from megaclassifier.labels.spec_csv import CsvToJsonSummary, csv_to_json

__all__ = [
    "AggregateSummary",
    "CsvToJsonSummary",
    "MappingSummary",
    "aggregate_probabilities",
    "csv_to_json",
    "map_categories",
]
