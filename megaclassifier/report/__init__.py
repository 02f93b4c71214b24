"""The HTML report of a results file: species table, histograms, thumbnails (see :mod:`.report`)."""

from megaclassifier.report.report import ReportSummary, write_report

__all__ = ["ReportSummary", "write_report"]
