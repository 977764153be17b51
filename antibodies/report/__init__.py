"""The plate report: a self-contained HTML page of heatmaps, distributions, QC and thumbnails.

Pure code (pandas, numpy, matplotlib); :class:`antibodies.tasks.report.PlateReport`
reads the containers and status records and writes ``<output>/report/index.html``.
"""
from .columns import readable_column, readable_columns, serum_label
from .data import cell_intensities, pick_wells, qc_table, run_summary
from .html import Figure, page_html
from .page import ReportInputs, plate_report_html
from .thumbnails import Channel, cell_thumbnail

__all__ = [
    "readable_column",
    "readable_columns",
    "serum_label",
    "cell_intensities",
    "pick_wells",
    "qc_table",
    "run_summary",
    "Figure",
    "page_html",
    "ReportInputs",
    "plate_report_html",
    "Channel",
    "cell_thumbnail",
]
