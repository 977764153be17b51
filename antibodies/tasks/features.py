"""Per-cell features of each serum channel and of the marker top-hat, plus intensity histograms."""
import numpy as np

from luigi_tasks.io import open_file, read_image, write_table
from luigi_tasks.io.chunks import write_deflated

from ..analysis.background import intensity_histogram
from ..analysis.features import (
    background_pixels, camera_ceiling, cell_border_band, cell_clipped_fractions, cell_features)
from ..analysis.local_background import SURFACE_EXCLUSION, background_surface, cell_local_backgrounds
from ..analysis.spillover import cell_contacts, neighbour_contrast
from ..keys import (
    CELL_SEGMENTATION, MARKER_TOPHAT, NUCLEUS_SEGMENTATION, cell_table, cell_table_key, histogram_key, raw_key)
from ..settings import setting
from .base import AssayImageJob, read_images

__all__ = ["CellFeatures"]


class CellFeatures(AssayImageJob):
    """Tables ``cell_segmentation/<channel>`` and histograms ``histograms/<channel>/{background,total}``.

    Serum tables also hold each cell's ``local_background`` (the mean under the
    cell of a smooth surface through the image's background pixels) and its
    ``neighbour_contrast`` (the signal it exchanges with touching cells,
    `antibodies.analysis.spillover`) and ``clipped``, the fraction of its pixels
    at the camera ceiling (saturated; `antibodies.analysis.features.camera_ceiling`).
    ``features_exclude_nuclei`` leaves nucleus pixels out of the serum statistics;
    the marker top-hat is measured in the cell interior, without a band of
    ``infection_border_exclusion`` pixels along the cell border (its signal is perinuclear).
    """

    output_format = 3  # serum tables gained clipped
    features_exclude_nuclei = setting("features", "exclude_nuclei")
    infection_quantile = setting("infection", "quantile")
    infection_border_exclusion = setting("infection", "border_exclusion")
    background_exclusion = setting("background", "exclusion")

    def channels(self):
        """Channels measured: the sera and the marker top-hat."""
        return self.sera() + [MARKER_TOPHAT]

    @property
    def inputs(self):
        return [CELL_SEGMENTATION, NUCLEUS_SEGMENTATION] + self.channels()

    def keys_read(self, exclude_nuclei):
        """The inputs read: the nuclei only when their pixels are left out of the serum statistics."""
        return [key for key in self.inputs if key != NUCLEUS_SEGMENTATION or exclude_nuclei]

    def output_keys(self):
        """One table and two histograms per channel."""
        keys = [cell_table_key(channel) for channel in self.channels()]
        return keys + [histogram_key(c, which) for c in self.channels() for which in ("background", "total")]

    def compute(self, input_files, output_files, features_exclude_nuclei, infection_quantile,
                infection_border_exclusion, background_exclusion):
        quantiles = sorted({0.95, infection_quantile})
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, self.keys_read(features_exclude_nuclei))
            cells, nuclei = images[CELL_SEGMENTATION], images.get(NUCLEUS_SEGMENTATION)
            border = cell_border_band(cells, infection_border_exclusion)
            background = background_pixels(cells, background_exclusion)
            surface_pixels = background_pixels(cells, SURFACE_EXCLUSION)
            contacts = cell_contacts(cells)
            with open_file(output_file, "a") as container:
                for channel in self.channels():
                    is_marker = channel == MARKER_TOPHAT
                    table = cell_features(cells, images[channel], nuclei, exclude_nuclei=features_exclude_nuclei and not is_marker,
                                          quantiles=quantiles, exclude=border if is_marker else None)
                    if not is_marker:
                        surface = background_surface(images[channel], surface_pixels)
                        table["local_background"] = cell_local_backgrounds(cells, surface, table["label_id"])
                        table["neighbour_contrast"] = neighbour_contrast(cells, table["label_id"], table["means"], contacts)
                        counts = self.camera_counts(container, channel, images[channel])
                        ceiling = camera_ceiling(counts)
                        table["clipped"] = cell_clipped_fractions(cells, counts, table["label_id"], ceiling)
                    write_table(container, cell_table(channel), table)
                    self.write_histograms(container, channel, images[channel], background)

    @staticmethod
    def camera_counts(container, channel, image):
        """The channel as the camera wrote it: its uncorrected copy where a flat-field correction kept one."""
        return read_image(container, raw_key(channel)) if raw_key(channel) in container else image

    @staticmethod
    def write_histograms(container, channel, image, background):
        """Store the background-pixel and all-pixel histograms of one channel."""
        for which, mask in (("background", background), ("total", None)):
            key = histogram_key(channel, which)
            if key in container:
                del container[key]
            counts = intensity_histogram(image, mask).astype(np.int64)
            write_deflated(container, key, counts, chunks=(8192,), shuffle=False, level=4)
