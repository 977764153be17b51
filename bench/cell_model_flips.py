"""The cell model's probability averaged over mirror images of its input (offline).

    python bench/cell_model_flips.py --plates tune_standard_scheme1,tune_elongated_cells_scheme1 --images 8

It reads the plates that ``bench/generalization.py`` rendered and processed
under ``--root`` (truth, and the nuclei and channels of run ``--variant``),
predicts the cell model's object probability once per flip of each image and
segments the cells with each ``[cells] model_flips`` choice (the run's own
choice reproduces its cells), the run's nuclei and foreground. Printed per
plate and choice: cells F1@0.5, true positives, the seconds per image of the
probability and the smallest share of an image's pixels that equal the run;
then the mean F1 over the plates. Choose only on tune plates.
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def image_rows(model, factor, container_path, truth_path):
    from antibodies.analysis.cells import (CELL_MODEL_FLIPS, ProbabilityHeightMap, cell_model_input, flip_averaged,
                                           full_resolution, mean_serum, object_probability, segment_cells)
    from antibodies.analysis.nuclei import normalize_percentile
    from antibodies.keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION, SERUM_ROLES
    from antibodies.tasks.segmentation import FOREGROUNDS
    from cell_segmentation import match_labels
    from cut_cells import default
    from luigi_tasks.io import open_file, read_image

    with open_file(container_path) as container:
        nuclei, run = read_image(container, NUCLEUS_SEGMENTATION), read_image(container, CELL_SEGMENTATION)
        nuclei_image = read_image(container, NUCLEI)
        serum = mean_serum([read_image(container, role) for role in SERUM_ROLES if role in container])
    model_input = cell_model_input(nuclei_image, serum, factor, normalize_percentile)
    foreground = FOREGROUNDS[default("foreground")](default("foreground_threshold"), default("foreground_envelope"))
    truth = np.load(truth_path)["cells"]
    rows = []
    for name, flips in CELL_MODEL_FLIPS.items():
        start = time.perf_counter()
        probability = flip_averaged(lambda x: object_probability(model, x), model_input, flips)
        seconds = time.perf_counter() - start
        height_map = ProbabilityHeightMap(full_resolution(probability, factor, serum.shape), default("distance_weight"))
        cells = segment_cells(nuclei, serum, foreground, height_map)
        rows.append({"flips": name, "seconds": seconds, "same_as_run": float((cells == run).mean()),
                     **match_labels(truth, cells)})
    return rows


def main():
    from cut_cells import plate_arguments, plate_rows

    rows = plate_rows(plate_arguments(__doc__.splitlines()[0]).parse_args(), image_rows)
    table = rows.groupby(["plate", "flips"], sort=False).agg(
        f1=("f1", "mean"), tp=("tp", "sum"), seconds=("seconds", "mean"), same_as_run=("same_as_run", "min"))
    table = table.unstack("flips")
    print(table.round(4).to_string())
    print("mean cells F1 over the plates:", table["f1"].mean().round(4).to_dict())


if __name__ == "__main__":
    main()
