"""Infected-cell calls: the plate's cut on the marker score, then the calls per image."""
from pathlib import Path

import numpy as np
import pandas as pd

from luigi_tasks import PlateJob
from luigi_tasks.io import open_file, read_table, write_table

from ..analysis.infection import (
    classify_infected,
    make_infection_method,
    marker_scores,
    quantile_column,
    score_histogram,
)
from ..analysis.qc import CELL_SIZE_COLUMNS, flag_cells, make_qc_rule
from ..keys import CELL_QC_TABLE, INFECTED_CELLS_TABLE, INFECTION_DECISION, MARKER_SCORES, MARKER_TOPHAT, cell_table
from ..settings import setting
from .background import read_image_backgrounds
from .base import AssayImageJob, read_tables

__all__ = ["InfectionDecision", "InfectedCells", "read_infection_factor"]


def read_infection_factor(tables_path):
    """Return the plate's cut on the marker score (background MADs above the background median)."""
    with open_file(tables_path, "r") as container:
        return float(read_table(container, INFECTION_DECISION)["factor"].iloc[0])


class InfectionDecision(PlateJob):
    """Tables ``plate/infection_decision`` (method, factor) and ``plate/marker_scores`` (histogram)."""

    outputs = (f"tables/{INFECTION_DECISION}", f"tables/{MARKER_SCORES}")

    infection_method = setting("infection", "method")
    infection_threshold_factor = setting("infection", "threshold_factor")
    infection_min_factor = setting("infection", "min_factor")
    infection_max_factor = setting("infection", "max_factor")
    infection_quantile = setting("infection", "quantile")

    def method(self):
        """The infection method chosen by ``infection_method``, with its options."""
        fitted = {"min_factor": self.infection_min_factor, "max_factor": self.infection_max_factor}
        options = {"fixed": {"factor": self.infection_threshold_factor}}.get(self.infection_method, fitted)
        return make_infection_method(self.infection_method, **options)

    def scores(self, images):
        """Marker scores of every cell of the given images, one container at a time."""
        backgrounds = read_image_backgrounds(self.tables_path)
        column = quantile_column(self.infection_quantile)
        table = cell_table(MARKER_TOPHAT)
        for image in images:
            marker = read_tables(self.container(image), [table], {table: [column]})[table]
            yield marker_scores(marker[column], backgrounds[image][MARKER_TOPHAT])

    def run_plate(self, images, tables_file):
        scores = np.concatenate([np.zeros(0), *self.scores(images)])
        factor = self.method().fit(scores)
        self.logger.info("infected when the marker score exceeds %.3g background MADs (%s, %d cells)",
                         factor, self.infection_method, scores.size)
        decision = pd.DataFrame({"method": [self.infection_method], "factor": [factor], "n_cells": [scores.size]})
        with open_file(tables_file, "a") as container:
            write_table(container, INFECTION_DECISION, decision)
            write_table(container, MARKER_SCORES, score_histogram(scores))


class InfectedCells(AssayImageJob):
    """Table ``cell_segmentation/infected_cells`` (``label_id, is_infected, is_control, is_clear_call``) and the
    cell QC."""

    outputs = (f"tables/{INFECTED_CELLS_TABLE}", f"tables/{CELL_QC_TABLE}")
    output_format = 2  # the call table gained is_clear_call
    inputs = (f"tables/{cell_table(MARKER_TOPHAT)}",)

    infection_quantile = setting("infection", "quantile")
    infection_score_margin = setting("infection", "score_margin")
    qc_cell_min_size = setting("qc", "cell_min_size")
    qc_cell_max_size = setting("qc", "cell_max_size")

    def plate_decision(self):
        """``(per-image backgrounds, factor)`` read once per task from the plate tables."""
        if "_decision" not in self.__dict__:
            self._decision = (read_image_backgrounds(self.tables_path), read_infection_factor(self.tables_path))
        return self._decision

    def compute(self, input_files, output_files, infection_quantile, infection_score_margin, qc_cell_min_size,
                qc_cell_max_size):
        backgrounds, factor = self.plate_decision()
        size_rule = make_qc_rule("cell_size", min_size=qc_cell_min_size, max_size=qc_cell_max_size)
        whole_cells = cell_table(self.sera()[0])  # the marker table measures cell interiors only
        columns = {cell_table(MARKER_TOPHAT): ["label_id", quantile_column(infection_quantile)],
                   whole_cells: CELL_SIZE_COLUMNS}
        for input_file, output_file in zip(input_files, output_files):
            image = Path(input_file).name.removesuffix(self.container_extension)
            tables = read_tables(input_file, [cell_table(MARKER_TOPHAT), whole_cells], columns)
            outliers = flag_cells(tables[whole_cells], (size_rule,))
            calls = classify_infected(tables[cell_table(MARKER_TOPHAT)], backgrounds[image][MARKER_TOPHAT], factor,
                                      infection_quantile, outliers, infection_score_margin)
            with open_file(output_file, "a") as container:
                write_table(container, INFECTED_CELLS_TABLE, calls)
                write_table(container, CELL_QC_TABLE, outliers)
