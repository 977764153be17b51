"""Nucleus (StarDist) and cell (seeded watershed) segmentation, and how sharp the nuclei are."""
import functools

import pandas as pd

from luigi_tasks.io import open_file, write_image, write_table

from ..analysis.cells import (
    BorderedCutCells,
    DistanceHeightMap,
    FixedThresholdForeground,
    GuidedOtsuForeground,
    IntensityHeightMap,
    ModelCutCells,
    OtsuForeground,
    ProbabilityHeightMap,
    PropagationHeightMap,
    cell_model_input,
    full_resolution,
    mean_serum,
    segment_cells,
)
from ..analysis.focus import nucleus_edge_sharpness
from ..analysis.nuclei import normalize_percentile
from ..keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION, NUCLEUS_SHARPNESS_TABLE
from ..models import cell_model_binning, resolve_model_folder
from ..models.server import model_runner
from ..settings import setting
from .base import AssayImageJob, read_images, write_label_image

__all__ = ["NucleusSegmentation", "CellSegmentation", "HEIGHT_MAPS", "FOREGROUNDS", "CUT_CELLS"]

#: ``[cells] cut_cells`` strategies that seed cells from the cell model's instances (``absorbed``: none).
CUT_CELLS = {"seeded": ModelCutCells, "bordered": BorderedCutCells}

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
    """StarDist nuclei, and table ``nucleus_segmentation/sharpness``: the image's `nucleus_edge_sharpness` (one row,
    the focus check of the QC). The model is loaded once per worker (see :mod:`antibodies.models.server`).
    """

    inputs = (NUCLEI,)
    outputs = (NUCLEUS_SEGMENTATION, f"tables/{NUCLEUS_SHARPNESS_TABLE}")
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
            sharpness = nucleus_edge_sharpness(image, labels)
            with open_file(output_file, "a") as container:
                write_image(container, NUCLEUS_SEGMENTATION, labels, is_label=True)
                write_table(container, NUCLEUS_SHARPNESS_TABLE, pd.DataFrame({"nucleus_edge_sharpness": [sharpness]}))


class CellSegmentation(AssayImageJob):
    """Cells grown from the nuclei inside the serum foreground; cell id == nucleus id.

    With ``[cells] height_map = learned`` the borders between touching cells follow the object
    probability of a learned cell model (``[cells] model``, served like the nucleus model), and with
    ``[cells] cut_cells = seeded`` a cell cut by the image border whose nucleus lies outside the field grows
    from the model's own instance of it (ids above the nuclei's; ``bordered``: only where the model draws a border
    between that instance and the cells of nuclei).
    """

    outputs = (CELL_SEGMENTATION,)

    cells_height_map = setting("cells", "height_map")
    cells_model = setting("cells", "model")
    cells_distance_weight = setting("cells", "distance_weight")
    cells_foreground = setting("cells", "foreground")
    cells_foreground_threshold = setting("cells", "foreground_threshold")
    cells_foreground_envelope = setting("cells", "foreground_envelope")
    cells_cut_cells = setting("cells", "cut_cells")
    cells_model_flips = setting("cells", "model_flips")

    @staticmethod
    def uses_cell_model(height_map):
        """Whether ``[cells] height_map`` = ``height_map`` splits the cells with the learned cell model."""
        return height_map == "learned"

    @classmethod
    def unused_settings(cls, values):
        """The cell model, the distance weight and the cut cells shape the cells only under the learned split, the
        envelope only the guided foreground. ``cut_cells = absorbed`` and ``model_flips = none`` give the cells of
        the version before those settings, so they stay out of the fingerprint: finished plates stay complete."""
        unused = set() if cls.uses_cell_model(values.get("cells_height_map")) else {
            "cells_model", "cells_distance_weight", "cells_cut_cells", "cells_model_flips"}
        if values.get("cells_cut_cells") == "absorbed":
            unused.add("cells_cut_cells")
        if values.get("cells_model_flips") == "none":
            unused.add("cells_model_flips")
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

    def strategies(self, nuclei_image, serum):
        """The height map and cut-cell strategies chosen by the parameters, for this image."""
        if not self.learned:
            return HEIGHT_MAPS[self.cells_height_map](None, self.cells_distance_weight), None
        run, binning = self.cell_model
        model_input = cell_model_input(nuclei_image, serum, binning, normalize_percentile)
        strategy = CUT_CELLS.get(self.cells_cut_cells)
        if strategy is None:
            probability = run("object_probability", model_input, self.cells_model_flips)
        else:
            probability, instances = run("object_probability_and_instances", model_input, self.cells_model_flips,
                                         strategy.nms_thresh)
        probability = full_resolution(probability, binning, serum.shape)
        cut_cells = None if strategy is None else strategy.from_model(instances, binning, probability)
        return HEIGHT_MAPS[self.cells_height_map](probability, self.cells_distance_weight), cut_cells

    @functools.cached_property
    def cell_model(self):
        """``(run, binning)`` of the cell model: resolved, and its input read, once per task."""
        folder = resolve_model_folder(self.cells_model)
        return model_runner(folder).run, cell_model_binning(folder)

    def compute(self, input_files, output_files, **_):
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, self.inputs)
            nuclei, nuclei_image = images.pop(NUCLEUS_SEGMENTATION), images.pop(NUCLEI, None)
            serum = mean_serum(list(images.values()))
            height_map, cut_cells = self.strategies(nuclei_image, serum)
            cells = segment_cells(nuclei, serum, self.foreground(), height_map, cut_cells)
            write_label_image(output_file, CELL_SEGMENTATION, cells)
