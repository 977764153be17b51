"""The plate report page: what goes in which section.

:func:`plate_report_html` takes the plate's tables and status records, the
cell intensities and the thumbnails (already composed) and returns the page.
"""
from typing import NamedTuple

import pandas as pd

from ..analysis.qc import plate_warnings
from ..analysis.scores import sera_in
from .columns import serum_label
from .data import failed_images, invalid_inputs, job_table, qc_table, run_summary
from .figures import heatmap_specs, intensity_boxplot_png, marker_score_png, score_histogram_png
from .html import (Figure, Section, figures_html, key_value_html, page_html, plate_grid_html, table_html,
                   warnings_html)

__all__ = ["ReportInputs", "plate_report_html"]


class ReportInputs(NamedTuple):
    """Everything the report shows.

    Attributes
    ----------
    plate_name : str
    images, wells : pandas.DataFrame
        Default image and well tables.
    intensities : pandas.DataFrame
        From :func:`antibodies.report.data.cell_intensities`.
    thumbnails : list of Figure
        Composed thumbnails with captions.
    statuses : Mapping[str, dict]
        Job or workflow name -> status record.
    params : Mapping[str, str]
        The run's parameters.
    version : str
    cutoffs : Mapping[str, float]
        Serum -> positive cut-off.
    decision : pandas.DataFrame
        One row ``method, factor`` of the infected-cell cut.
    marker_scores : pandas.DataFrame
        Histogram of the plate's marker scores.
    warnings : pandas.DataFrame
        ``image_name, well_name, channel, reason`` of images far from their
        well mates (:func:`antibodies.analysis.qc.well_mate_warnings`).
    spillover_widths : Mapping[str, float]
        Serum -> the spillover width (px) its scores were compensated with.
    """

    plate_name: str
    images: pd.DataFrame
    wells: pd.DataFrame
    intensities: pd.DataFrame
    thumbnails: list
    statuses: dict
    params: dict
    version: str
    cutoffs: dict
    decision: pd.DataFrame
    marker_scores: pd.DataFrame
    warnings: pd.DataFrame
    spillover_widths: dict


def _outlier_wells(wells, serum):
    flags = wells["is_outlier"].astype(bool) | wells[f"{serum}_is_outlier"].astype(bool)
    return list(wells.loc[flags, "well_name"])


def _serum_section(inputs, serum):
    cutoff = inputs.cutoffs.get(serum)
    outliers = _outlier_wells(inputs.wells, serum)
    heatmaps = [Figure(spec.render(inputs.wells, outliers), f"{spec.title}; {serum_label(serum)} outliers crossed out",
                       alt=f"heatmap {spec.column}") for spec in heatmap_specs(serum, cutoff)]
    body = plate_grid_html(inputs.wells, serum, cutoff) + figures_html(heatmaps)
    return Section(f"plate-{serum}", f"Plate: {serum_label(serum)}", body)


def _decision_figure(inputs):
    method, factor = inputs.decision["method"].iloc[0], float(inputs.decision["factor"].iloc[0])
    caption = (f"Infected-cell decision: a cell is infected when its marker score exceeds {factor:.3g} "
               f"background MADs of its image ({method}); red: called infected")
    return Figure(marker_score_png(inputs.marker_scores, factor, method), caption, alt="marker score histogram")


def _distribution_section(inputs, sera):
    figures = [_decision_figure(inputs)]
    for serum in sera:
        figures.append(Figure(intensity_boxplot_png(inputs.intensities, serum),
                              f"{serum_label(serum)}: infected vs control cells per well (non-outlier images; "
                              f"spillover compensated over {inputs.spillover_widths[serum]:.2f} px)"))
        figures.append(Figure(score_histogram_png(inputs.images, inputs.wells, serum, inputs.cutoffs.get(serum)),
                              f"{serum_label(serum)}: score histogram of images and wells"))
    return Section("distributions", "Distributions", figures_html(figures))


def _qc_section(inputs, sera):
    table = qc_table(inputs.images, inputs.wells, sera, invalid_inputs(inputs.statuses),
                     failed_images(inputs.statuses), inputs.warnings)
    warnings = warnings_html(plate_warnings(inputs.wells, sera))  # a plate that says nothing says why
    if table.empty:
        return Section("qc", "Quality control",
                       warnings + "<p>No outlier images or wells, no invalid or failed images.</p>")
    shown = table.rename(columns={"level": "Level", "name": "Name", "channel": "Channel", "reason": "Reason"})
    return Section("qc", "Quality control",
                   warnings + table_html(shown, f"{len(table)} outlier(s)", table_id="qc-table"))


def _wells_section(inputs, sera):
    reasons = [
        "; ".join(dict.fromkeys(r for r in [rec["outlier_type"], *(rec[f"{s}_outlier_type"] for s in sera)]
                                if isinstance(r, str) and r))
        for rec in inputs.wells.to_dict("records")
    ]
    classes = ["outlier" if reason else "" for reason in reasons]
    return Section("wells", "Well table", table_html(inputs.wells, row_titles=reasons, row_classes=classes,
                                                       table_id="well-table"))


def _summary_section(inputs):
    summary = run_summary(inputs.statuses, len(inputs.images), inputs.version)
    jobs = table_html(job_table(inputs.statuses).rename(columns=str.capitalize), "Jobs", table_id="job-table")
    params = pd.DataFrame(sorted(inputs.params.items()), columns=["Parameter", "Value"])
    details = f"<details><summary>Parameters ({len(params)})</summary>{table_html(params)}</details>"
    return Section("summary", "Run summary", key_value_html(summary) + jobs + details)


def _thumbnail_section(inputs):
    if not inputs.thumbnails:
        return Section("thumbnails", "Example images", "<p>No images.</p>")
    note = ("<p>Nuclei blue, serum green, marker red; cells outlined white, infected cells magenta, "
            "QC outlier cells grey (downscaled).</p>")
    return Section("thumbnails", "Example images", note + figures_html(inputs.thumbnails))


def plate_report_html(inputs):
    """Return the report page of a plate.

    Parameters
    ----------
    inputs : ReportInputs

    Returns
    -------
    str
        Self-contained HTML.
    """
    sera = sera_in(inputs.wells)
    sections = [_serum_section(inputs, serum) for serum in sera]
    sections += [_distribution_section(inputs, sera), _qc_section(inputs, sera), _thumbnail_section(inputs),
                 _summary_section(inputs), _wells_section(inputs, sera)]
    n_failed, n_invalid = len(failed_images(inputs.statuses)), len(invalid_inputs(inputs.statuses))
    subtitle = (f"{len(inputs.images)} images, {len(inputs.wells)} wells, sera: {', '.join(map(serum_label, sera))}; "
                f"{n_invalid} invalid raw file(s), {n_failed} failed image(s); version {inputs.version}")
    return page_html(f"Plate report: {inputs.plate_name}", sections, subtitle)
