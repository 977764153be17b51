"""Plate backgrounds from the per-image histograms, over non-outlier images."""
import numpy as np
import pandas as pd

from luigi_tasks.io import open_file, parse_image_name, read_table, write_table

from ..analysis.background import (
    BACKGROUND_STRATEGIES,
    BackgroundStats,
    ImageHistograms,
    accumulate_histograms,
    backgrounds_table,
    image_background_table,
    image_backgrounds_table,
    make_background_strategy,
    well_background_table,
)
from ..analysis.qc import CELL_SIZE_COLUMNS, flag_cells, flag_images, make_qc_rule
from ..keys import (
    IMAGE_BACKGROUNDS,
    MARKER_TOPHAT,
    PLATE_BACKGROUNDS,
    SUBTRACTED_BACKGROUNDS,
    WELL_BACKGROUNDS,
    cell_table,
    histogram_key,
)
from ..settings import setting
from .base import AssayPlateJob, read_tables

__all__ = ["PlateBackground", "read_backgrounds", "read_image_backgrounds"]


def _row_stats(row):
    channels = [column.removesuffix("_median") for column in row.index if column.endswith("_median")]
    return {c: BackgroundStats(float(row[f"{c}_median"]), float(row[f"{c}_mad"])) for c in channels}


def read_backgrounds(tables_path):
    """Return the plate summary ``{channel: BackgroundStats}`` from the plate tables file."""
    with open_file(tables_path, "r") as container:
        return _row_stats(read_table(container, PLATE_BACKGROUNDS).iloc[0])


def read_image_backgrounds(tables_path):
    """Return ``{image: {channel: BackgroundStats}}``: what each image subtracts."""
    with open_file(tables_path, "r") as container:
        table = read_table(container, SUBTRACTED_BACKGROUNDS).set_index("image_name").drop(columns="well_name")
    return {image: _row_stats(row) for image, row in table.iterrows()}


def subtracts_per_cell(background_method):
    """Whether cells subtract their own ``local_background`` under ``background_method``."""
    return BACKGROUND_STRATEGIES[background_method].per_cell


class PlateBackground(AssayPlateJob):
    """Per-image, per-well and plate background median/MAD of every measured channel, and what each image subtracts."""

    outputs = tuple(f"tables/{name}" for name in (PLATE_BACKGROUNDS, IMAGE_BACKGROUNDS, WELL_BACKGROUNDS,
                                                   SUBTRACTED_BACKGROUNDS))

    background_method = setting("background", "method")
    background_min_pixels = setting("background", "min_pixels")
    background_wells = setting("background", "wells")
    background_fixed_marker_tophat = setting("background", "fixed_marker_tophat")
    background_fixed_serum_IgG = setting("background", "fixed_serum_IgG")
    background_fixed_serum_IgA = setting("background", "fixed_serum_IgA")
    background_fixed_serum_IgM = setting("background", "fixed_serum_IgM")
    qc_cell_min_size = setting("qc", "cell_min_size")
    qc_cell_max_size = setting("qc", "cell_max_size")
    qc_image_min_cells = setting("qc", "image_min_cells")
    qc_image_max_cells = setting("qc", "image_max_cells")

    def channels(self):
        """Measured channels: sera and the marker top-hat."""
        return self.sera() + [MARKER_TOPHAT]

    def strategy(self):
        """The background strategy chosen by ``background_method``, with its options."""
        options = {
            "image": lambda: {"min_pixels": self.background_min_pixels},
            "local": lambda: {"min_pixels": self.background_min_pixels},
            "empty_wells": lambda: {"wells": tuple(self.background_wells)},
            "fixed": lambda: {"medians": {c: getattr(self, f"background_fixed_{c}") for c in self.channels()}},
        }
        return make_background_strategy(self.background_method, **options.get(self.background_method, dict)())

    def cell_sizes(self, images):
        """Yield ``label_id, sizes`` of the cells of each image (its first serum's table)."""
        table = cell_table(self.channels()[0])
        for image in images:
            yield read_tables(self.container(image), [table], {table: CELL_SIZE_COLUMNS})[table]

    def valid_cell_counts(self, images):
        """Number of cells of each image that pass the cell size rule, flagged for all images at once."""
        sizes = list(self.cell_sizes(images))
        if not sizes:
            return np.zeros(0, dtype=int)
        size_rule = make_qc_rule("cell_size", min_size=self.qc_cell_min_size, max_size=self.qc_cell_max_size)
        outliers = flag_cells(pd.concat(sizes, ignore_index=True), (size_rule,))["is_outlier"].to_numpy(dtype=bool)
        image_of_cell = np.repeat(np.arange(len(sizes)), [len(table) for table in sizes])
        return np.bincount(image_of_cell[~outliers], minlength=len(sizes))

    def image_flags(self, images):
        """Outlier flags of the images from their numbers of valid cells."""
        counts = [int(n) for n in self.valid_cell_counts(images)]
        rules = (make_qc_rule("cell_count", min_cells=self.qc_image_min_cells, max_cells=self.qc_image_max_cells),)
        return flag_images(pd.DataFrame({"image_name": list(images), "n_cells": counts},
                                        columns=["image_name", "n_cells"]), rules)

    def histogram_records(self, images, total_wells):
        """Yield the histograms of each image, reading one container at a time."""
        for image in images:
            well = parse_image_name(image).well
            with open_file(self.container(image), "r") as container:
                background = {c: container[histogram_key(c, "background")][:] for c in self.channels()}
                total = {c: container[histogram_key(c, "total")][:] for c in self.channels()} if well in total_wells else {}
            yield ImageHistograms(image, well, background, total)

    def run_plate(self, images, tables_file):
        strategy = self.strategy()
        flags = self.image_flags(images)
        outliers = set(flags.loc[flags["is_outlier"], "image_name"])
        histograms = accumulate_histograms(self.histogram_records(images, strategy.total_wells), outliers,
                                           strategy.total_wells)
        backgrounds = strategy.compute(histograms)
        per_image = strategy.per_image(histograms)
        with open_file(tables_file, "a") as container:
            write_table(container, PLATE_BACKGROUNDS, backgrounds_table(backgrounds))
            write_table(container, SUBTRACTED_BACKGROUNDS, image_backgrounds_table(per_image, histograms.image_wells))
            write_table(container, IMAGE_BACKGROUNDS, image_background_table(histograms))
            write_table(container, WELL_BACKGROUNDS, well_background_table(histograms))
