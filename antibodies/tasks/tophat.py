"""Marker top-hat: the granular virus signal without its smooth background."""

from ..analysis.tophat import white_tophat
from ..keys import MARKER, MARKER_TOPHAT
from ..settings import setting
from .base import AssayImageJob, read_images, write_intensity_image

__all__ = ["MarkerTophat"]


class MarkerTophat(AssayImageJob):
    """White top-hat of the marker channel with a disk of ``infection_tophat_radius``."""

    inputs = (MARKER,)
    outputs = (MARKER_TOPHAT,)

    infection_tophat_radius = setting("infection", "tophat_radius")

    def compute(self, input_files, output_files, infection_tophat_radius):
        for input_file, output_file in zip(input_files, output_files):
            marker = read_images(input_file, [MARKER])[MARKER]
            write_intensity_image(output_file, MARKER_TOPHAT, white_tophat(marker, infection_tophat_radius))
