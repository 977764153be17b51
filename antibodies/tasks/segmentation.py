"""Nucleus (StarDist) and cell (seeded watershed) segmentation."""
import functools

from ..analysis.cells import (
    DistanceHeightMap,
    FixedThresholdForeground,
    GuidedOtsuForeground,
    IntensityHeightMap,
    OtsuForeground,
    ProbabilityHeightMap,
    PropagationHeightMap,
    cell_probability,
    mean_serum,
    segment_cells,
)
from ..analysis.nuclei import normalize_percentile
from ..keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION
from ..models import cell_model_binning, resolve_model_folder
from ..models.server import model_runner
from ..settings import setting
from .base import AssayImageJob, read_images, write_label_image

__all__ = ["NucleusSegmentation", "CellSegmentation", "HEIGHT_MAPS", "FOREGROUNDS"]

HEIGHT_MAPS = {
    "learned": ProbabilityHeightMap,
    "distance": lambda probability, distance_weight: DistanceHeightMap(),
    "propagation": lambda probability, distance_weight: PropagationHeightMap(),
    "intensity": lambda probability, distance_weight: IntensityHeightMap(),
}
"""Height map strategies keyed by ``[cells] height_map``, built from the image's cell probability (``learned``
only; else None) and ``[cells] distance_weight``."""
FOREGROUNDS = {
    "guided": lambda threshold, envelope: GuidedOtsuForeground(envelope_radii=envelope),
    "otsu": lambda threshold, envelope: OtsuForeground(),
    "fixed": lambda threshold, envelope: FixedThresholdForeground(threshold=threshold),
}
"""Foreground strategies keyed by ``[cells] foreground``, built from ``[cells] foreground_threshold`` and
``[cells] foreground_envelope``."""


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
        model = model_runner(resolve_model_folder(nuclei_model))
        for input_file, output_file in zip(input_files, output_files):
            image = read_images(input_file, [NUCLEI])[NUCLEI]
            labels = model.run("segment_nuclei", image, _threshold(nuclei_prob_thresh), _threshold(nuclei_nms_thresh))
            write_label_image(output_file, NUCLEUS_SEGMENTATION, labels)


class CellSegmentation(AssayImageJob):
    """Cells grown from the nuclei inside the serum foreground; cell id == nucleus id.

    With ``[cells] height_map = learned`` the borders between touching cells follow the object
    probability of a learned cell model (``[cells] model``, served like the nucleus model).
    """

    outputs = (CELL_SEGMENTATION,)

    cells_height_map = setting("cells", "height_map")
    cells_model = setting("cells", "model")
    cells_distance_weight = setting("cells", "distance_weight")
    cells_foreground = setting("cells", "foreground")
    cells_foreground_threshold = setting("cells", "foreground_threshold")
    cells_foreground_envelope = setting("cells", "foreground_envelope")

    @staticmethod
    def uses_cell_model(height_map):
        """Whether ``[cells] height_map`` = ``height_map`` splits the cells with the learned cell model."""
        return height_map == "learned"

    @classmethod
    def unused_settings(cls, values):
        """The cell model and the distance weight shape the cells only under the learned split, the envelope only
        the guided foreground."""
        unused = set() if cls.uses_cell_model(values.get("cells_height_map")) else {"cells_model", "cells_distance_weight"}
        return unused if values.get("cells_foreground") == "guided" else unused | {"cells_foreground_envelope"}

    @property
    def learned(self):
        return self.uses_cell_model(self.cells_height_map)

    @property
    def uses_gpu(self):
        return self.learned

    @property
    def inputs(self):
        return [NUCLEUS_SEGMENTATION] + self.sera() + ([NUCLEI] if self.learned else [])

    def foreground(self):
        """The foreground strategy chosen by the parameters."""
        return FOREGROUNDS[self.cells_foreground](self.cells_foreground_threshold, self.cells_foreground_envelope)

    def height_map(self, nuclei_image, serum):
        """The height map strategy chosen by the parameters, for this image."""
        probability = self.cell_probability(nuclei_image, serum) if self.learned else None
        return HEIGHT_MAPS[self.cells_height_map](probability, self.cells_distance_weight)

    @functools.cached_property
    def cell_model(self):
        """``(predict, binning)`` of the cell model: resolved, and its input read, once per task."""
        folder = resolve_model_folder(self.cells_model)
        return functools.partial(model_runner(folder).run, "object_probability"), cell_model_binning(folder)

    def cell_probability(self, nuclei_image, serum):
        """The cell model's object probability of one image."""
        predict, binning = self.cell_model
        return cell_probability(predict, nuclei_image, serum, binning, normalize_percentile)

    def compute(self, input_files, output_files, **_):
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, self.inputs)
            nuclei, nuclei_image = images.pop(NUCLEUS_SEGMENTATION), images.pop(NUCLEI, None)
            serum = mean_serum(list(images.values()))
            cells = segment_cells(nuclei, serum, self.foreground(), self.height_map(nuclei_image, serum))
            write_label_image(output_file, CELL_SEGMENTATION, cells)
