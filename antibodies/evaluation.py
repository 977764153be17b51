"""Compare a processed plate with the ground truth of a synthetic plate.

Used by the tests and by ``bench/``: nuclei and cells matched at IoU 0.5,
infected-cell accuracy and the rank correlation of well scores with the
true ratios.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from luigi_tasks.io import open_file, read_image, read_table
from luigi_tasks.job import plate_tables_path

from .keys import CELL_SEGMENTATION, INFECTED_CELLS_TABLE, NUCLEUS_SEGMENTATION, WELL_TABLE

__all__ = ["segmentation_f1", "evaluate_image", "evaluate_plate"]


def segmentation_f1(truth, prediction, threshold=0.5):
    """Return F1 of instance matching at IoU ``threshold`` (StarDist's matching)."""
    from stardist.matching import matching

    return float(matching(truth, prediction, thresh=threshold).f1)


def _infected_truth(truth, cells):
    """Truth infected flag for each predicted cell, via the true cell it overlaps most."""
    infected_ids = set(truth["infected_ids"].tolist())
    labels, true_cells = cells.ravel(), truth["cells"].ravel()
    inside = labels > 0
    pairs = pd.DataFrame({"label": labels[inside], "true": true_cells[inside]})
    best = pairs.groupby("label")["true"].agg(lambda v: v.value_counts().idxmax())
    return best.map(lambda cell: cell in infected_ids)


def evaluate_image(container, truth_file):
    """Return nuclei F1, cell F1 and infected-call accuracy of one image."""
    truth = np.load(truth_file)
    with open_file(container) as f:
        nuclei, cells = read_image(f, NUCLEUS_SEGMENTATION), read_image(f, CELL_SEGMENTATION)
        calls = read_table(f, INFECTED_CELLS_TABLE).set_index("label_id")
    expected = _infected_truth(truth, cells)
    called = calls["is_infected"].reindex(expected.index).fillna(False).astype(bool)
    valid = calls["is_infected"].reindex(expected.index).notna() & (calls["is_infected"] | calls["is_control"]).reindex(expected.index).fillna(False)
    return {
        "nuclei_f1": segmentation_f1(truth["nuclei"], nuclei),
        "cells_f1": segmentation_f1(truth["cells"], cells),
        "infected_accuracy": float((called[valid] == expected[valid]).mean()),
        "n_cells": int(valid.sum()),
    }


def evaluate_plate(output_dir, truth_dir, plate_name):
    """Return per-image figures and plate figures of a processed synthetic plate."""
    output_dir, truth_dir = Path(output_dir), Path(truth_dir)
    rows = [
        {"image_name": t.stem, **evaluate_image(output_dir / f"{t.stem}.h5", t)}
        for t in sorted(truth_dir.glob("*.npz"))
    ]
    images = pd.DataFrame(rows)
    truth = pd.read_csv(truth_dir / "wells.csv").set_index("well_name")
    with open_file(plate_tables_path(output_dir, plate_name)) as f:
        wells = read_table(f, WELL_TABLE).set_index("well_name")
    figures = {key: float(images[key].mean()) for key in ("nuclei_f1", "cells_f1", "infected_accuracy")}
    for column in [c for c in truth.columns if c.startswith("ratio_")]:
        serum = column.removeprefix("ratio_")
        both = pd.concat([truth[column], wells[f"{serum}_score"]], axis=1).dropna()
        figures[f"{serum}_spearman"] = float(spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic) if len(both) > 2 else np.nan
        positive, negative = both[truth.loc[both.index, "is_positive"]], both[~truth.loc[both.index, "is_positive"]]
        if len(positive) and len(negative):
            figures[f"{serum}_separation"] = float(positive.iloc[:, 1].min() - negative.iloc[:, 1].max())
    return images, figures
