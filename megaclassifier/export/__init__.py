"""Results as CSV/XLSX tables or a Camtrap DP package (see :mod:`.export`)."""

from megaclassifier.export.camtrap import CamtrapOptions
from megaclassifier.export.export import ExportSummary, export_results

__all__ = ["CamtrapOptions", "ExportSummary", "export_results"]
