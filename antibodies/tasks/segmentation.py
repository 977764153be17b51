"""Nucleus (StarDist) and cell (seeded watershed) segmentation."""

from ..analysis.cells import (
    DistanceHeightMap,
    FixedThresholdForeground,
    GuidedOtsuForeground,
    IntensityHeightMap,
    OtsuForeground,
    PropagationHeightMap,
    segment_cells,
)
from ..keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION
from ..models import resolve_model_folder
from ..models.server import nucleus_segmenter
from ..settings import setting
from .base import AssayImageJob, read_images, write_label_image

__all__ = ["NucleusSegmentation", "CellSegmentation", "HEIGHT_MAPS", "FOREGROUNDS"]

HEIGHT_MAPS = {"distance": DistanceHeightMap(), "propagation": PropagationHeightMap(), "intensity": IntensityHeightMap()}
FOREGROUNDS = {
    "guided": lambda threshold: GuidedOtsuForeground(),
    "otsu": lambda threshold: OtsuForeground(),
    "fixed": lambda threshold: FixedThresholdForeground(threshold=threshold),
}
"""Foreground strategies keyed by ``[cells] foreground``, built from ``[cells] foreground_threshold``."""


def _threshold(value):
    return None if value < 0 else value


class NucleusSegmentation(AssayImageJob):
    """StarDist nuclei; the model is loaded once per worker (see :mod:`antibodies.models.server`)."""

    inputs = (NUCLEI,)
    outputs = (NUCLEUS_SEGMENTATION,)
    uses_gpu = True
    max_batch_size = 64

    nuclei_model = setting("nuclei", "model")
    nuclei_prob_thresh = setting("nuclei", "prob_thresh")
    nuclei_nms_thresh = setting("nuclei", "nms_thresh")

    def compute(self, input_files, output_files, nuclei_model, nuclei_prob_thresh, nuclei_nms_thresh):
        model = nucleus_segmenter(resolve_model_folder(nuclei_model))
        for input_file, output_file in zip(input_files, output_files):
            image = read_images(input_file, [NUCLEI])[NUCLEI]
            labels = model.segment(image, _threshold(nuclei_prob_thresh), _threshold(nuclei_nms_thresh))
            write_label_image(output_file, NUCLEUS_SEGMENTATION, labels)


class CellSegmentation(AssayImageJob):
    """Cells grown from the nuclei inside the serum foreground; cell id == nucleus id."""

    outputs = (CELL_SEGMENTATION,)

    cells_height_map = setting("cells", "height_map")
    cells_foreground = setting("cells", "foreground")
    cells_foreground_threshold = setting("cells", "foreground_threshold")

    @property
    def inputs(self):
        return [NUCLEUS_SEGMENTATION] + self.sera()

    def foreground(self):
        """The foreground strategy chosen by the parameters."""
        return FOREGROUNDS[self.cells_foreground](self.cells_foreground_threshold)

    def compute(self, input_files, output_files, cells_height_map, **_):
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, self.inputs)
            nuclei = images.pop(NUCLEUS_SEGMENTATION)
            cells = segment_cells(nuclei, list(images.values()), self.foreground(), HEIGHT_MAPS[cells_height_map])
            write_label_image(output_file, CELL_SEGMENTATION, cells)
