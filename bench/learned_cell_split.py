"""A learned cell split against a run's cells, on processed bench plates (offline).

The cell model (``antibodies/training/train_cell_model.py``; bundled:
``vero_cells_v1``) gives each image an object probability; here it is the
watershed's height map with the run's nuclei as markers and the run's cells
as the mask, so only the split differs from the run's (a run of the distance
split, or of another cell model)::

    python bench/learned_cell_split.py antibodies/models/vero_cells_v1 \
        --plates tune_standard_scheme1,tune_broad_scheme1,tune_grown_cells_scheme1 --images 8 --weights 0,0.01

It reads the plates that ``bench/generalization.py`` rendered and processed
under ``--root`` (raw TIFFs, truth, and the nuclei and cells of run ``--variant``)
and prints, per plate and height map, cells F1@0.5, the mean IoU of matched
cells and the median bias and absolute error of the well scores against the
true ratio (true infected calls and true backgrounds; only wells with at least
``MIN_INFECTED`` infected cells, counted in the column ``wells``). Older experiment models
without ``input.json`` (full resolution) still load. Choose only on tune plates.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


#: Wells with fewer infected cells than this have no offline score: a median of fewer says little.
MIN_INFECTED = 5


def _well_errors(cells, wells):
    errors = []
    for well, group in cells.groupby("well"):
        ratio = wells.at[well, "ratio_serum_IgG"]
        if np.isfinite(ratio) and group.infected.sum() >= MIN_INFECTED:
            score = group[group.infected].mean_serum.median() / group[~group.infected].mean_serum.median()
            errors.append((score - ratio) / ratio)
    return np.array(errors)


def _cell_rows(truth, labels, serum, infected_ids):
    """Per predicted cell: its mean serum and whether its main true owner is infected."""
    from score_errors import owners

    owner, _ = owners(labels, truth)
    n_pred = labels.max() + 1
    area = np.bincount(labels.ravel(), minlength=n_pred)
    means = np.bincount(labels.ravel(), serum.ravel(), n_pred) / np.maximum(area, 1)
    present = np.flatnonzero(area[1:]) + 1
    return pd.DataFrame({"mean_serum": means[present], "infected": np.isin(owner[present], infected_ids)})


def evaluate(args):
    import tifffile
    from skimage.segmentation import watershed
    from stardist.models import StarDist2D

    from antibodies.analysis.cells import ProbabilityHeightMap, cell_probability, object_probability
    from antibodies.analysis.nuclei import normalize_percentile
    from antibodies.models import MODEL_INPUT
    from cell_segmentation import match_labels
    from luigi_tasks.io import open_file, parse_image_name, read_image

    folder = Path(args.model)
    spec = json.loads((folder / MODEL_INPUT).read_text()) if (folder / MODEL_INPUT).exists() else {}
    factor = spec.get("bin", 2 if spec.get("binned") else 1)
    model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
    root, rows = Path(args.root), []
    for plate in args.plates.split(","):
        roles = json.loads((root / "raw" / plate / "channel_mapping.json").read_text())
        pages = {role: index for index, role in enumerate(roles.values())}
        wells = pd.read_csv(root / "truth" / plate / "wells.csv").set_index("well_name")
        cells, scores = {}, []
        for truth_file in sorted((root / "truth" / plate).glob("*.npz"))[: args.images]:
            truth = np.load(truth_file)
            raw = tifffile.imread(root / "raw" / plate / f"{truth_file.stem}.tiff")
            with open_file(root / "out" / args.variant / plate / f"{truth_file.stem}.h5") as container:
                nuclei, ours = read_image(container, "nucleus_segmentation"), read_image(container, "cell_segmentation")
            prob = cell_probability(lambda image: object_probability(model, image), raw[pages["nuclei"]],
                                    raw[pages["serum_IgG"]], factor, normalize_percentile)
            splits = {"the run's cells": ours}
            for weight in args.weights:
                height = ProbabilityHeightMap(prob, weight).compute(nuclei, None, None)
                splits[f"learned + {weight} x distance"] = watershed(height, markers=nuclei, mask=ours > 0)
            serum_channel = list(roles)[pages["serum_IgG"]]
            serum = raw[pages["serum_IgG"]].astype(np.float32) - float(truth[f"background_{serum_channel}"])
            well = parse_image_name(truth_file.stem).well_name
            for name, labels in splits.items():
                match = match_labels(truth["cells"], labels)
                scores.append({"height map": name, "f1": match["f1"], "iou": match["mean_matched_iou"]})
                table = _cell_rows(truth["cells"], labels, serum, truth["infected_ids"]).assign(well=well)
                cells.setdefault(name, []).append(table)
        for name, figures in pd.DataFrame(scores).groupby("height map", sort=False):
            errors = _well_errors(pd.concat(cells[name]), wells)
            rows.append({"plate": plate, "height map": name, "cells F1": figures.f1.mean(),
                         "matched IoU": figures.iou.mean(), "bias %": 100 * np.median(errors),
                         "abs. error %": 100 * np.median(np.abs(errors)), "wells": len(errors)})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the model folder")
    parser.add_argument("--plates", required=True, help="comma separated plate names under ROOT/raw")
    parser.add_argument("--images", type=int, default=8, help="first images of each plate")
    parser.add_argument("--root", default="/tmp/bench_generalization")
    parser.add_argument("--variant", default="default", help="the output folder under ROOT/out whose nuclei and cells are used")
    parser.add_argument("--weights", type=lambda text: [float(w) for w in text.split(",")], default=[0.0, 0.01],
                        help="distance weights to add to the negated probability")
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    evaluate(args)


if __name__ == "__main__":
    main()
