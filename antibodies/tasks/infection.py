"""Infected-cell calls per image, against the plate background of the marker top-hat."""
import luigi

from luigi_tasks.io import open_file, write_table

from ..analysis.infection import classify_infected
from ..analysis.qc import CellSizeQC, flag_cells
from ..keys import CELL_QC_TABLE, INFECTED_CELLS_TABLE, MARKER_TOPHAT, cell_table
from .background import read_backgrounds
from .base import AssayImageJob, read_tables

__all__ = ["InfectedCells"]


class InfectedCells(AssayImageJob):
    """Table ``cell_segmentation/infected_cells`` (``label_id, is_infected, is_control``) and the cell QC."""

    outputs = (f"tables/{INFECTED_CELLS_TABLE}", f"tables/{CELL_QC_TABLE}")
    inputs = (f"tables/{cell_table(MARKER_TOPHAT)}",)

    infection_threshold_factor = luigi.FloatParameter(default=4.8, description="k in median + k * MAD")

    def run(self, input_files, output_files, infection_threshold_factor):
        background = read_backgrounds(self.tables_path)[MARKER_TOPHAT]
        size_rule = CellSizeQC(self.qc_cell_min_size, self.qc_cell_max_size)
        whole_cells = cell_table(self.sera()[0])  # the marker table measures cell interiors only
        for input_file, output_file in zip(input_files, output_files):
            tables = read_tables(input_file, [cell_table(MARKER_TOPHAT), whole_cells])
            marker = tables[cell_table(MARKER_TOPHAT)]
            outliers = flag_cells(tables[whole_cells], (size_rule,))
            calls = classify_infected(marker, background, infection_threshold_factor, self.infection_quantile, outliers)
            with open_file(output_file, "a") as container:
                write_table(container, INFECTED_CELLS_TABLE, calls)
                write_table(container, CELL_QC_TABLE, outliers)
