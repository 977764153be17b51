"""Plate tables: QC and scores per image and per well, all sera merged in ``default``."""
import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from luigi_tasks import InvalidInputError
from luigi_tasks.io import open_file, parse_image_name, read_table, write_table

from ..analysis.qc import flag_images, make_qc_rule, manual_outlier_names, plate_warnings
from ..analysis.spillover import SPILLOVER_METHODS
from ..analysis.scores import (
    CELL_FRAME_COLUMNS, MEDIAN_ESTIMATORS, ImageCells, call_positive, flagged_sera, score_plate, split_by_serum)
from ..keys import (
    CELL_QC_TABLE, IMAGE_TABLE, INFECTED_CELLS_TABLE, NUCLEUS_SHARPNESS_TABLE, SPILLOVER_WIDTHS, WELL_TABLE, cell_table,
    image_table, well_table)
from ..settings import setting
from .background import read_backgrounds, read_image_backgrounds, subtracts_per_cell
from .base import AssayPlateJob, read_tables
from .spillover import read_exchange_sums

__all__ = ["ImageCellsReader", "PlateScores", "read_manual_outliers"]


def read_manual_outliers(path):
    """Read a manual outlier CSV (``filename,label``; label 1 = outlier)."""
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as error:
        raise InvalidInputError(path, f"manual outlier table unreadable ({error})", "give a CSV with filename,label") from error
    if not {"filename", "label"} <= set(table.columns):
        raise InvalidInputError(path, f"columns {list(table.columns)} lack filename,label", "add a header filename,label")
    return table


class ImageCellsReader:
    """Plate jobs that read the cell tables of every image as :class:`ImageCells` (scores, report)."""

    background_method = setting("background", "method")

    def spillover_widths(self):
        """Serum -> the spillover width the plate's scores used (``plate/spillover_widths``)."""
        with open_file(self.tables_path, "r") as container:
            table = read_table(container, SPILLOVER_WIDTHS)
        return dict(zip(table["serum"], table["width"]))

    def image_cells(self, images, sera, widths, more=None):
        """Yield ``(ImageCells, {name: table})`` of each image, one container at a time.

        Parameters
        ----------
        images : sequence of str
        sera : sequence of str
        widths : Mapping[str, float]
            Serum -> spillover width (px).
        more : Mapping[str, sequence of str or None], optional
            Further tables of each image to hand back beside its cells: name -> the columns to read (None: all).
        """
        more = dict(more or {})
        names = [cell_table(s) for s in sera] + [INFECTED_CELLS_TABLE, *more]
        columns = {**{cell_table(s): CELL_FRAME_COLUMNS for s in sera}, **more}
        backgrounds = read_image_backgrounds(self.tables_path)
        per_cell = subtracts_per_cell(self.background_method)
        for image in images:
            tables = read_tables(self.container(image), names, columns)
            name = parse_image_name(image)
            cells = ImageCells(image, name.site_name, name.well_name, {s: tables[cell_table(s)] for s in sera},
                               tables[INFECTED_CELLS_TABLE], backgrounds[image], per_cell, widths)
            yield cells, {key: tables[key] for key in more}


class PlateScores(ImageCellsReader, AssayPlateJob):
    """Tables ``images/default``, ``wells/default`` and one image and well table per serum."""

    qc_image_min_cells = setting("qc", "image_min_cells")
    qc_image_max_cells = setting("qc", "image_max_cells")
    qc_image_max_clipped_cells = setting("qc", "image_max_clipped_cells")
    qc_image_min_sharpness = setting("qc", "image_min_sharpness")
    qc_image_min_absolute_sharpness = setting("qc", "image_min_absolute_sharpness")
    qc_well_min_control_cells = setting("qc", "well_min_control_cells")
    qc_well_min_infected_intensity_factor = setting("qc", "well_min_infected_intensity_factor")
    qc_well_min_infected_intensity_IgG = setting("qc", "well_min_infected_intensity_IgG")
    qc_well_min_infected_intensity_IgA = setting("qc", "well_min_infected_intensity_IgA")
    qc_manual_outliers = setting("qc", "manual_outliers")
    scores_call_confidence = setting("scores", "call_confidence")
    scores_positive_cutoff_IgG = setting("scores", "positive_cutoff_IgG")
    scores_positive_cutoff_IgA = setting("scores", "positive_cutoff_IgA")
    scores_positive_cutoff_IgM = setting("scores", "positive_cutoff_IgM")
    scores_median_estimator = setting("scores", "median_estimator")
    scores_spillover = setting("scores", "spillover")
    scores_spillover_width = setting("scores", "spillover_width")
    scores_spillover_scale = setting("scores", "spillover_scale")
    output_format = 3  # 2: plate/spillover_widths; 3: the images' nucleus_edge_sharpness

    @property
    def outputs(self):
        names = [IMAGE_TABLE, WELL_TABLE, SPILLOVER_WIDTHS] + [
            n for s in self.sera() for n in (image_table(s), well_table(s))]
        return tuple(f"tables/{name}" for name in names)

    def fingerprint_payload(self):
        """The manual outlier table's content counts, not only its path."""
        payload = super().fingerprint_payload()
        if self.qc_manual_outliers:
            payload["manual_outliers"] = hashlib.sha256(Path(self.qc_manual_outliers).read_bytes()).hexdigest()
        return payload

    def image_rules(self):
        """Image QC rules: number of valid cells, focus (against the plate; a floor if set), manual outliers."""
        names = manual_outlier_names(read_manual_outliers(self.qc_manual_outliers)) if self.qc_manual_outliers else ()
        return (make_qc_rule("cell_count", min_cells=self.qc_image_min_cells, max_cells=self.qc_image_max_cells),
                make_qc_rule("out_of_focus", min_ratio=self.qc_image_min_sharpness,
                             min_sharpness=self.qc_image_min_absolute_sharpness),
                make_qc_rule("manual", names=frozenset(names)))  # no names: a rule that flags nothing

    def image_serum_rules(self):
        """Per-serum image QC: an image whose serum is clipped in many cells leaves that serum's well pool."""
        return (make_qc_rule("clipped_cells", max_fraction=self.qc_image_max_clipped_cells),)

    def well_serum_rules(self):
        """Per-serum well QC: infected intensity against background MAD; fixed minima only where configured."""
        minima = {"serum_IgG": self.qc_well_min_infected_intensity_IgG, "serum_IgA": self.qc_well_min_infected_intensity_IgA}
        minima = {serum: value for serum, value in minima.items() if value > 0}
        return (make_qc_rule("infected_intensity", factor=self.qc_well_min_infected_intensity_factor),
                make_qc_rule("fixed_infected_intensity", minima=minima))

    def warn_left_out(self, images_table):
        """Name each image left out of the scores for clipping or focus, and the fix."""
        for image, reason in zip(images_table["image_name"], images_table["outlier_type"].astype(str)):
            if "out of focus" in reason:
                self.logger.warning("%s: %s; left out of its well's scores. Image the site again (check the "
                                    "autofocus)", self.container(image), reason)
        for serum in self.sera():
            types = images_table[f"{serum}_outlier_type"].astype(str)
            for image, reason in zip(images_table["image_name"], types):
                if "clipped at the camera ceiling" in reason:
                    self.logger.warning("%s: %s; left out of its well's %s score. Image the well again with a shorter "
                                        "exposure or a lower gain", self.container(image), reason, serum)

    def spillover(self):
        """The `SPILLOVER_METHODS` strategy of ``[scores] spillover``."""
        if self.scores_spillover == "measured":
            return SPILLOVER_METHODS["measured"](scale=self.scores_spillover_scale, fallback=self.scores_spillover_width)
        return SPILLOVER_METHODS["fixed"](width=self.scores_spillover_width)

    def exchange_sums(self, images, sera):
        """Serum -> the `BorderExchange` tables added up over ``images`` (image -> its sera), one container at a time."""
        sums = dict.fromkeys(sera)
        for image, image_sera in images.items():
            for serum, part in read_exchange_sums(self.container(image), image_sera).items():
                sums[serum] = part if sums[serum] is None else sums[serum] + part
        return sums

    def records(self, images):
        """Yield ``(ImageCells, valid cells, nucleus edge sharpness)`` of each image (no spillover width yet)."""
        more = {CELL_QC_TABLE: ["is_outlier"], NUCLEUS_SHARPNESS_TABLE: None}
        for cells, tables in self.image_cells(images, self.sera(), {}, more):
            sharpness = float(tables[NUCLEUS_SHARPNESS_TABLE]["nucleus_edge_sharpness"].iloc[0])
            yield cells, int((~tables[CELL_QC_TABLE]["is_outlier"]).sum()), sharpness

    def measured_images(self, records, flags, backgrounds):
        """Image -> the sera whose spillover width its cells measure: those its scores use.

        Not an outlier image, and not a serum it is flagged for: a saturated image (60 x too bright) would
        otherwise set the plate's width alone."""
        outliers = set(flags.loc[flags["is_outlier"].astype(bool), "image_name"])
        rules, sera = self.image_serum_rules(), self.sera()
        measured = {}
        for record in records:
            if record.image_name not in outliers:
                flagged = flagged_sera(record, sera, record.backgrounds or backgrounds, rules)
                measured[record.image_name] = [serum for serum in sera if serum not in flagged]
        return measured

    def plate_widths(self, records, flags, backgrounds):
        """Serum -> the spillover width of the plate's scores (measured over `measured_images`, or fixed)."""
        spillover, sera = self.spillover(), self.sera()
        sums = self.exchange_sums(self.measured_images(records, flags, backgrounds), sera) if spillover.measures else {}
        widths = spillover.widths(sums, sera)
        self.logger.info("spillover widths (%s): %s", self.scores_spillover,
                         ", ".join(f"{serum} {width:.2f} px" for serum, width in widths.items()))
        return widths

    def run_plate(self, images, tables_file):
        rows = list(self.records(images))
        records = [record for record, _, _ in rows]
        measures = pd.DataFrame([(image, n, sharpness) for image, (_, n, sharpness) in zip(images, rows)],
                                columns=["image_name", "n_cells", "nucleus_edge_sharpness"])
        flags = flag_images(measures, self.image_rules())
        backgrounds = read_backgrounds(self.tables_path)
        widths = self.plate_widths(records, flags, backgrounds)
        records = [replace(record, spillover_width=widths) for record in records]
        scores = score_plate(records, backgrounds, self.sera(), flags, image_serum_rules=self.image_serum_rules(),
                             well_rules=(make_qc_rule("control_cells", min_control_cells=self.qc_well_min_control_cells),),
                             well_serum_rules=self.well_serum_rules(),
                             median=MEDIAN_ESTIMATORS[self.scores_median_estimator])
        cutoffs = {f"serum_{ig}": getattr(self, f"scores_positive_cutoff_{ig}") for ig in ("IgG", "IgA", "IgM")}
        images_table, wells_table = (call_positive(table, cutoffs, self.scores_call_confidence)
                                     for table in (scores.images, scores.wells))
        images_table.insert(images_table.columns.get_loc("outlier_type") + 1, "nucleus_edge_sharpness",
                            measures["nucleus_edge_sharpness"].to_numpy())
        for line in plate_warnings(wells_table, self.sera()):
            self.logger.warning("%s: %s", self.plate_name, line)
        self.warn_left_out(images_table)
        with open_file(tables_file, "a") as container:
            write_table(container, IMAGE_TABLE, images_table)
            write_table(container, WELL_TABLE, wells_table)
            write_table(container, SPILLOVER_WIDTHS, pd.DataFrame({"serum": list(widths), "width": list(widths.values()),
                                                                   "method": self.scores_spillover}))
            for serum, table in split_by_serum(images_table).items():
                write_table(container, image_table(serum), table)
            for serum, table in split_by_serum(wells_table).items():
                write_table(container, well_table(serum), table)
