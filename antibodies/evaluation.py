"""Compare a processed plate with the ground truth of a synthetic plate.

Used by the tests and by ``bench/``: nuclei and cells matched at IoU 0.5,
infected-cell accuracy (mean and worst image), and the well scores against
the true ratios: rank and linear correlation, median relative error,
positive/negative AUC, wrong calls and wells left without a score.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from luigi_tasks.io import open_file, parse_image_name, read_image, read_table, table_key
from luigi_tasks.job import plate_tables_path
from luigi_tasks.provenance import PARAMS_ATTR

from .analysis.background import BACKGROUND_STRATEGIES
from .keys import (
    CELL_SEGMENTATION, INFECTED_CELLS_TABLE, NUCLEUS_SEGMENTATION, SUBTRACTED_BACKGROUNDS, WELL_TABLE, cell_table)

__all__ = ["segmentation_f1", "evaluate_image", "evaluate_plate", "auc", "well_score_figures", "background_errors"]


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
        "n_infected_called": int(called[valid].sum()),
    }


def auc(positive, negative):
    """Area under the ROC curve of scores of positive versus negative samples (ties count half).

    Examples
    --------
    >>> auc([2.0, 3.0], [1.0, 1.5])
    1.0
    >>> auc([1.0], [1.0, 2.0])
    0.25
    """
    positive, negative = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    if positive.size == 0 or negative.size == 0:
        return float("nan")
    return float(((positive > negative) + 0.5 * (positive == negative)).mean())


def well_score_figures(true_ratio, scores, is_positive_call, positive_ratio=1.3):
    """Figures of one serum's well scores against the true ratios.

    Parameters
    ----------
    true_ratio : pandas.Series
        True ratio per well (NaN for wells without one: empty or mock-infected).
    scores : pandas.Series
        ``<serum>_score`` per well (same index; NaN = no score).
    is_positive_call : pandas.Series
        ``<serum>_is_positive`` per well (nullable boolean).
    positive_ratio : float
        A true ratio at or above this is positive.

    Returns
    -------
    dict
        ``spearman, pearson, median_rel_error, auc, wrong_calls,
        inconclusive_calls`` (a score but no call: its interval holds the
        cut-off), ``wells_without_score, negative_wells_without_score``.

    Examples
    --------
    >>> truth = pd.Series([1.0, 2.0, 3.0, 1.1])
    >>> figures = well_score_figures(truth, pd.Series([1.1, 2.0, 2.7, np.nan]),
    ...                              pd.Series([False, True, True, pd.NA], dtype="boolean"))
    >>> round(figures["median_rel_error"], 6), figures["wells_without_score"], figures["negative_wells_without_score"]
    (0.1, 1, 1)
    >>> figures["wrong_calls"], figures["inconclusive_calls"]
    (0, 0)
    """
    scored = true_ratio.notna()
    truth, score = true_ratio[scored], scores.reindex(true_ratio.index)[scored]
    both = score.notna()
    positive = truth >= positive_ratio
    calls = is_positive_call.reindex(true_ratio.index)[scored]
    wrong = (calls.notna() & (calls.astype("boolean") != positive)).sum()
    enough = both.sum() > 2
    return {
        "spearman": float(spearmanr(truth[both], score[both]).statistic) if enough else float("nan"),
        "pearson": float(pearsonr(truth[both], score[both]).statistic) if enough else float("nan"),
        "median_rel_error": float((abs(score[both] - truth[both]) / truth[both]).median()),
        "auc": auc(score[both & positive], score[both & ~positive]),
        "wrong_calls": int(wrong),
        "inconclusive_calls": int((both & calls.isna()).sum()),
        "wells_without_score": int((~both).sum()),
        "negative_wells_without_score": int((~both & ~positive).sum()),
    }


def _mock_infected_fraction(images, truth):
    """Fraction of valid cells called infected in mock-infected wells (cells, no virus)."""
    mock = truth.index[(truth["fraction_infected"] == 0) & ~truth["is_empty"].astype(bool)]
    rows = images[images["well_name"].isin(mock)]
    return float(rows["n_infected_called"].sum() / max(rows["n_cells"].sum(), 1)) if len(rows) else float("nan")


def background_errors(subtracted, truth_files, channel_roles):
    """Error of each image's subtracted serum background, relative to its control cells' true signal.

    Parameters
    ----------
    subtracted : pandas.DataFrame
        ``images/subtracted_backgrounds`` (``image_name``, ``<role>_median``).
    truth_files : Mapping[str, pathlib.Path]
        Image name -> truth npz (``background_<channel>``, ``<role>_cell_means``).
    channel_roles : Mapping[str, str]
        Microscope channel -> role (``channel_mapping.json``).

    Returns
    -------
    dict
        ``<role>_background_error``: median over images of
        ``|subtracted - true| / median(true control cell means)``.
    """
    table = subtracted.set_index("image_name")
    errors = {}
    for channel, role in channel_roles.items():
        if not (role or "").startswith("serum") or f"{role}_median" not in table:
            continue
        values = []
        for image, path in truth_files.items():
            truth = np.load(path)
            control = np.setdiff1d(truth["cell_ids"], truth["infected_ids"])
            means = truth[f"{role}_cell_means"][np.isin(truth["cell_ids"], control)]
            if means.size and image in table.index:
                values.append(abs(table.at[image, f"{role}_median"] - float(truth[f"background_{channel}"]))
                              / np.median(means))
        errors[f"{role}_background_error"] = float(np.median(values)) if values else float("nan")
    return errors


def _cells_local_backgrounds(output_dir, subtracted):
    """``subtracted`` with each serum median replaced by the size-weighted mean ``local_background`` of the image's cells."""
    subtracted = subtracted.copy()
    sera = [c.removesuffix("_median") for c in subtracted.columns if c.startswith("serum_") and c.endswith("_median")]
    for index, image in subtracted["image_name"].items():
        with open_file(output_dir / f"{image}.h5") as f:
            for serum in sera:
                cells = read_table(f, cell_table(serum))
                subtracted.at[index, f"{serum}_median"] = float(np.average(cells["local_background"],
                                                                           weights=cells["sizes"]))
    return subtracted


def evaluate_plate(output_dir, truth_dir, plate_name, channel_roles=None):
    """Return per-image figures and plate figures of a processed synthetic plate.

    With ``channel_roles`` (``channel_mapping.json``) also the serum background errors
    (`background_errors`); under a per-cell background method an image's background is the
    size-weighted mean of its cells' ``local_background``.
    """
    output_dir, truth_dir = Path(output_dir), Path(truth_dir)
    rows = [
        {"image_name": t.stem, **evaluate_image(output_dir / f"{t.stem}.h5", t)}
        for t in sorted(truth_dir.glob("*.npz"))
    ]
    images = pd.DataFrame(rows)
    images["well_name"] = [parse_image_name(name).well_name for name in images["image_name"]]
    truth = pd.read_csv(truth_dir / "wells.csv").set_index("well_name")
    with open_file(plate_tables_path(output_dir, plate_name)) as f:
        wells = read_table(f, WELL_TABLE).set_index("well_name")
        subtracted = read_table(f, SUBTRACTED_BACKGROUNDS)
        params = json.loads(f[table_key(SUBTRACTED_BACKGROUNDS)].attrs.get(PARAMS_ATTR, "{}"))
    if BACKGROUND_STRATEGIES[params.get("background_method", "image")].per_cell:
        subtracted = _cells_local_backgrounds(output_dir, subtracted)
    figures = {key: float(images[key].mean()) for key in ("nuclei_f1", "cells_f1", "infected_accuracy")}
    if channel_roles is not None:
        figures.update(background_errors(subtracted, {t.stem: t for t in truth_dir.glob("*.npz")}, channel_roles))
    figures["worst_image_infected_accuracy"] = float(images["infected_accuracy"].min())
    figures["mock_infected_fraction"] = _mock_infected_fraction(images, truth)
    for column in [c for c in truth.columns if c.startswith("ratio_")]:
        serum = column.removeprefix("ratio_")
        calls = wells.get(f"{serum}_is_positive", pd.Series(pd.NA, index=wells.index, dtype="boolean"))
        for key, value in well_score_figures(truth[column], wells[f"{serum}_score"], calls).items():
            figures[f"{serum}_{key}"] = value
        both = pd.concat([truth[column], wells[f"{serum}_score"]], axis=1).dropna()
        positive, negative = both[truth.loc[both.index, "is_positive"]], both[~truth.loc[both.index, "is_positive"]]
        if len(positive) and len(negative):
            figures[f"{serum}_separation"] = float(positive.iloc[:, 1].min() - negative.iloc[:, 1].max())
    return images, figures
