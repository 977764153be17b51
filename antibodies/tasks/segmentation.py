"""Nucleus (StarDist) and cell (seeded watershed) segmentation."""
import luigi

from ..analysis.cells import (
    DistanceHeightMap,
    FixedThresholdForeground,
    IntensityHeightMap,
    OtsuForeground,
    PropagationHeightMap,
    segment_cells,
)
from ..keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION
from ..models import BUNDLED_MODEL, resolve_model_folder
from ..models.server import nucleus_segmenter
from .base import AssayImageJob, read_images, write_label_image

__all__ = ["NucleusSegmentation", "CellSegmentation", "HEIGHT_MAPS"]

HEIGHT_MAPS = {"distance": DistanceHeightMap(), "propagation": PropagationHeightMap(), "intensity": IntensityHeightMap()}


def _threshold(value):
    return None if value < 0 else value


class NucleusSegmentation(AssayImageJob):
    """StarDist nuclei; the model is loaded once per worker (see :mod:`antibodies.models.server`)."""

    inputs = (NUCLEI,)
    outputs = (NUCLEUS_SEGMENTATION,)
    uses_gpu = True
    max_batch_size = 64

    nuclei_model = luigi.Parameter(default=BUNDLED_MODEL, description="StarDist model: bundled name, folder or cached name")
    nuclei_prob_thresh = luigi.FloatParameter(default=-1.0, description="Probability threshold (<0: model's)")
    nuclei_nms_thresh = luigi.FloatParameter(default=-1.0, description="NMS threshold (<0: model's)")

    def run(self, input_files, output_files, nuclei_model, nuclei_prob_thresh, nuclei_nms_thresh):
        model = nucleus_segmenter(resolve_model_folder(nuclei_model))
        for input_file, output_file in zip(input_files, output_files):
            image = read_images(input_file, [NUCLEI])[NUCLEI]
            labels = model.segment(image, _threshold(nuclei_prob_thresh), _threshold(nuclei_nms_thresh))
            write_label_image(output_file, NUCLEUS_SEGMENTATION, labels)


class CellSegmentation(AssayImageJob):
    """Cells grown from the nuclei inside the serum foreground; cell id == nucleus id."""

    outputs = (CELL_SEGMENTATION,)

    cells_height_map = luigi.ChoiceParameter(choices=sorted(HEIGHT_MAPS), default="distance", description="Height map")
    cells_foreground = luigi.ChoiceParameter(choices=["otsu", "fixed"], default="otsu", description="Foreground mask")
    cells_foreground_threshold = luigi.FloatParameter(default=0.0, description="Serum threshold for 'fixed'")

    @property
    def inputs(self):
        return [NUCLEUS_SEGMENTATION] + self.sera()

    def foreground(self):
        """The foreground strategy chosen by the parameters."""
        if self.cells_foreground == "fixed":
            return FixedThresholdForeground(threshold=self.cells_foreground_threshold)
        return OtsuForeground()

    def run(self, input_files, output_files, cells_height_map, **_):
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, self.inputs)
            nuclei = images.pop(NUCLEUS_SEGMENTATION)
            cells = segment_cells(nuclei, list(images.values()), self.foreground(), HEIGHT_MAPS[cells_height_map])
            write_label_image(output_file, CELL_SEGMENTATION, cells)
