"""The plate report ``<output>/report/index.html``: reads tables, statuses and thumbnails, writes one page."""
from pathlib import Path

from luigi_tasks import PlateJob
from luigi_tasks.io import atomic_write, image_levels, open_file, read_image, read_table
from luigi_tasks.provenance import software_version
from luigi_tasks.status import read_status, status_names

from ..analysis.qc import well_mate_warnings
from ..analysis.scores import sera_in
from ..keys import (
    CELL_QC_TABLE, CELL_SEGMENTATION, CHANNEL_COLORS, IMAGE_BACKGROUNDS, IMAGE_TABLE, INFECTED_CELLS_TABLE,
    INFECTION_DECISION, MARKER, MARKER_SCORES, MARKER_TOPHAT, NUCLEI, REPORT_RECORD,
    WELL_TABLE)
from ..report import Channel, Figure, ReportInputs, cell_intensities, cell_thumbnail, pick_wells, plate_report_html
from ..report.columns import serum_label
from ..report.figures import rgb_png
from ..settings import setting
from .background import read_backgrounds
from .base import record_files
from .scores import ImageCellsReader

__all__ = ["PlateReport", "REPORT_FILE", "THUMBNAIL_SIZE", "thumbnail_level"]

REPORT_FILE = Path("report") / "index.html"
THUMBNAIL_SIZE = 320
"""Thumbnails use the first pyramid level at most this many pixels wide (or the smallest)."""


def thumbnail_level(shapes, size=THUMBNAIL_SIZE):
    """Index of the first level of ``shapes`` (``s0, s1, ...``) no larger than ``size``, else the last.

    Examples
    --------
    >>> thumbnail_level([(1024, 1024), (512, 512), (256, 256)]), thumbnail_level([(512, 512)])
    (2, 0)
    """
    fitting = [index for index, shape in enumerate(shapes) if max(shape) <= size]
    return fitting[0] if fitting else len(shapes) - 1


def _channel(container, key, level):
    return Channel(read_image(container, key, level), tuple(container[key].attrs["ContrastLimits"]),
                   CHANNEL_COLORS.get(key, "Gray"))


class PlateReport(ImageCellsReader, PlateJob):
    """``report/index.html``: heatmaps, distributions, QC, run summary and thumbnails of a plate."""

    outputs = (REPORT_RECORD,)
    output_format = 2  # the captions show the spillover widths
    n_outlier_thumbnails = 2

    scores_positive_cutoff_IgG = setting("scores", "positive_cutoff_IgG")
    scores_positive_cutoff_IgA = setting("scores", "positive_cutoff_IgA")
    scores_positive_cutoff_IgM = setting("scores", "positive_cutoff_IgM")

    @property
    def report_path(self):
        """``<output>/report/index.html``."""
        return Path(self.output_dir) / REPORT_FILE

    def output_files(self):
        """The page must exist too."""
        return [self.report_path]

    def cutoffs(self):
        """Serum -> positive cut-off."""
        return {f"serum_{ig}": getattr(self, f"scores_positive_cutoff_{ig}") for ig in ("IgG", "IgA", "IgM")}

    def statuses(self):
        """Job or workflow name -> status record, from ``<output>/batchlib/*.status``."""
        return {name: read_status(self.output_dir, name) for name in status_names(self.output_dir)}

    def thumbnail(self, image, serum, caption):
        """Composite of nuclei, serum and marker with cell outlines, as a report figure."""
        with open_file(self.container(image), "r") as container:
            levels = image_levels(container, CELL_SEGMENTATION)
            level = thumbnail_level([container[f"{CELL_SEGMENTATION}/{name}"].shape for name in levels])
            keys = [key for key in (MARKER, serum, NUCLEI) if key and key in container]
            channels = [_channel(container, key, level) for key in keys]
            cells = read_image(container, CELL_SEGMENTATION, level)
            infection = read_table(container, INFECTED_CELLS_TABLE)
            qc = read_table(container, CELL_QC_TABLE)
        infected = infection.loc[infection["is_infected"], "label_id"]
        outliers = qc.loc[qc["is_outlier"], "label_id"]
        return Figure(rgb_png(cell_thumbnail(channels, cells, infected, outliers)), caption, alt=f"thumbnail {image}")

    def thumbnails(self, images, wells, sera):
        """Thumbnails of the best, the worst and some outlier wells."""
        serum = sera[0] if sera else None
        figures = []
        for pick in pick_wells(wells, serum, self.n_outlier_thumbnails):
            candidates = images[images["well_name"] == pick.well_name]
            flagged = candidates[candidates["is_outlier"].astype(bool)]
            row = (flagged if pick.why == "outlier" and len(flagged) else candidates).iloc[0]
            score = wells.loc[wells["well_name"] == pick.well_name, f"{serum}_score"].iloc[0] if serum else None
            text = f", {serum_label(serum)} well score {score:.3g}" if serum and score == score else ""
            caption = f"{pick.well_name} ({pick.why}): site {row['site_name']}{text}"
            figures.append(self.thumbnail(row["image_name"], serum, caption))
        return figures

    def report_inputs(self, images):
        """Read everything the page shows."""
        with open_file(self.tables_path, "r") as container:
            image_table, well_table = read_table(container, IMAGE_TABLE), read_table(container, WELL_TABLE)
        image_table = image_table[image_table["image_name"].isin(images)].reset_index(drop=True)
        sera = sera_in(well_table)
        left_out = {serum: set(image_table.loc[image_table["is_outlier"].astype(bool)
                                               | image_table[f"{serum}_is_outlier"].astype(bool), "image_name"])
                    for serum in sera}
        widths = self.spillover_widths()
        records = (cells for cells, _ in self.image_cells(list(image_table["image_name"]), sera, widths))
        intensities = cell_intensities(records, read_backgrounds(self.tables_path), sera, left_out)
        decision, marker_scores, warnings = self.infection_inputs(image_table, sera)
        return ReportInputs(self.plate_name, image_table, well_table, intensities,
                            self.thumbnails(image_table, well_table, sera), self.statuses(),
                            self.significant_params(), software_version(), self.cutoffs(),
                            decision, marker_scores, warnings, widths)

    def infection_inputs(self, image_table, sera):
        """The infected-cell decision, the marker score histogram and the well-mate warnings."""
        with open_file(self.tables_path, "r") as container:
            decision, scores = read_table(container, INFECTION_DECISION), read_table(container, MARKER_SCORES)
            measured = read_table(container, IMAGE_BACKGROUNDS).drop(columns="well_name")
        columns = ["image_name", "well_name", "fraction_infected",
                   *(f"{serum}_{statistic}" for serum in sera for statistic in ("score", "score_log_se"))]
        images = image_table[columns].merge(measured, on="image_name")
        return decision, scores, well_mate_warnings(images, channels=[*sera, MARKER_TOPHAT], sera=sera)

    def run_plate(self, images, tables_file):
        page = plate_report_html(self.report_inputs(images))
        with atomic_write(self.report_path) as tmp:
            Path(tmp).write_text(page, encoding="utf-8")
        self.logger.info("plate report written to %s (%.1f MB)", self.report_path, len(page) / 2**20)
        record_files(tables_file, REPORT_RECORD, [self.report_path], self.tables_path)
