"""Cells cut by the image border: absorbed by a neighbour, or seeded from the cell model (offline).

    python bench/cut_cells.py --plates tune_cut_field_scheme1,tune_second_standard_scheme1 --images 8

It reads the plates that ``bench/generalization.py`` rendered and processed
under ``--root`` (truth, and the nuclei, channels and cells of run ``--variant``),
runs the cell model (``--model``, the default ``[cells] model``) on each image
(once for the probability, once more for each strategy's instances) and segments
the cells with the run's nuclei, foreground and probability:
``absorbed`` (``[cells] cut_cells = absorbed``, which reproduces a run of it),
``seeded`` (:class:`~antibodies.analysis.cells.ModelCutCells`) and ``bordered``
(:class:`~antibodies.analysis.cells.BorderedCutCells`). Printed per
plate: cells F1@0.5, true positives and predicted cells of the run and of each,
the share of pixels where ``absorbed`` equals the run, and the mean F1 over the
plates. Choose only on tune plates.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def default(key):
    """The configspec default of ``[cells] key``."""
    from antibodies.settings import SPEC_PATH
    from luigi_tasks.config import load_config

    return load_config(None, SPEC_PATH)[f"cells_{key}"]


def image_rows(model, factor, container_path, truth_path):
    from antibodies.analysis.cells import (CELL_MODEL_FLIPS, ProbabilityHeightMap, cell_model_input,
                                           cell_probability_and_instances, full_resolution, mean_serum,
                                           segment_cells)
    from antibodies.analysis.nuclei import normalize_percentile
    from antibodies.keys import CELL_SEGMENTATION, NUCLEI, NUCLEUS_SEGMENTATION, SERUM_ROLES
    from antibodies.tasks.segmentation import CUT_CELLS, FOREGROUNDS
    from cell_segmentation import match_labels
    from luigi_tasks.io import open_file, read_image

    with open_file(container_path) as container:
        nuclei, run = read_image(container, NUCLEUS_SEGMENTATION), read_image(container, CELL_SEGMENTATION)
        nuclei_image = read_image(container, NUCLEI)
        serum = mean_serum([read_image(container, role) for role in SERUM_ROLES if role in container])
    model_input = cell_model_input(nuclei_image, serum, factor, normalize_percentile)
    flips = CELL_MODEL_FLIPS[default("model_flips")]
    probability = full_resolution(cell_probability_and_instances(model, model_input, flips)[0], factor, serum.shape)
    height_map = ProbabilityHeightMap(probability, default("distance_weight"))
    foreground = FOREGROUNDS[default("foreground")](default("foreground_threshold"), default("foreground_envelope"))
    cells = {"run": run, "absorbed": segment_cells(nuclei, serum, foreground, height_map)}
    for name, strategy in CUT_CELLS.items():
        instances = cell_probability_and_instances(model, model_input, (), strategy.nms_thresh)[1]
        cut_cells = strategy.from_model(instances, factor, probability)
        cells[name] = segment_cells(nuclei, serum, foreground, height_map, cut_cells)
    truth = np.load(truth_path)["cells"]
    rows = [{"cells": name, **match_labels(truth, labels)} for name, labels in cells.items()]
    return [dict(row, same_as_run=float((cells["absorbed"] == run).mean())) for row in rows]


def plate_arguments(description):
    """The arguments of an offline cell-model bench: plates, images, root, variant, model."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--plates", required=True, help="comma separated plate names under ROOT/out/VARIANT")
    parser.add_argument("--images", type=int, default=8, help="first images of each plate")
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_generalization"))
    parser.add_argument("--variant", default="default")
    parser.add_argument("--model", default=None, help="cell model name or folder (default: [cells] model)")
    return parser


def plate_rows(args, image_rows):
    """``image_rows(model, factor, container, truth)`` of the first ``args.images`` images of every plate."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    from antibodies.models import cell_model_binning, load_stardist_model, resolve_model_folder

    folder = resolve_model_folder(args.model or default("model"))
    model, factor = load_stardist_model(str(folder)), cell_model_binning(folder)
    rows = []
    for plate in args.plates.split(","):
        for truth_path in sorted((args.root / "truth" / plate).glob("*.npz"))[: args.images]:
            container = args.root / "out" / args.variant / plate / f"{truth_path.stem}.h5"
            rows += [dict(row, plate=plate) for row in image_rows(model, factor, container, truth_path)]
    return pd.DataFrame(rows)


def main():
    parser = plate_arguments(__doc__.splitlines()[0])
    parser.add_argument("--csv", help="also write the per-image figures to this file")
    args = parser.parse_args()
    rows = plate_rows(args, image_rows)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    table = rows.groupby(["plate", "cells"], sort=False).agg(
        f1=("f1", "mean"), tp=("tp", "sum"), predicted=("n_predicted", "sum"), true=("n_true", "sum"))
    table = table.unstack("cells").join(rows.groupby("plate").same_as_run.min().rename(("absorbed = run", "")))
    print(table.round(4).to_string())
    print("mean cells F1 over the plates:", table["f1"].mean().round(4).to_dict())


if __name__ == "__main__":
    main()
