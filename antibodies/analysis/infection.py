"""Infected / control cell calls from the virus-marker channel.

A cell is *infected* when the ``quantile{q}`` column of its ``marker_tophat``
features is strictly greater than the plate background threshold
``median + threshold_factor * mad`` (MAD unscaled).  Every other cell is a
*control* cell, except QC outlier cells, which are neither infected nor
control and so take no part in any score.
"""

import logging

import numpy as np
import pandas as pd

__all__ = ["quantile_column", "infection_threshold", "classify_infected"]

logger = logging.getLogger(__name__)


def quantile_column(quantile):
    """Name of the per-cell feature column of a quantile.

    Examples
    --------
    >>> quantile_column(0.95)
    'quantile0.95'
    """
    return f"quantile{quantile}"


def infection_threshold(background, threshold_factor=4.8):
    """Marker intensity above which a cell is infected.

    Parameters
    ----------
    background : BackgroundStats
        Plate background of the marker channel.
    threshold_factor : float
        Number of background MADs above the background median.

    Returns
    -------
    float
        ``background.median + threshold_factor * background.mad``.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> infection_threshold(BackgroundStats(10.0, 2.0), threshold_factor=4.8)
    19.6
    """
    return float(background.median + threshold_factor * background.mad)


def _outlier_mask(labels, cell_outliers):
    """Boolean (N,) mask of outlier cells aligned with ``labels``."""
    if cell_outliers is None:
        return np.zeros(len(labels), dtype=bool)
    flags = cell_outliers.set_index("label_id")["is_outlier"].astype(bool)
    missing = pd.Index(labels).difference(flags.index)
    if len(missing):
        raise ValueError(f"cell_outliers lacks label_id(s) {missing[:5].tolist()}")
    return flags.reindex(labels).to_numpy()


def classify_infected(marker_table, background, threshold_factor=4.8, quantile=0.95,
                      cell_outliers=None):
    """Call each cell infected or control.

    Parameters
    ----------
    marker_table : pandas.DataFrame
        Per-cell features of ``marker_tophat`` with columns ``label_id`` and
        ``quantile{quantile}``.
    background : BackgroundStats
        Plate background of the marker channel.
    threshold_factor : float
        ``k`` in ``median + k * mad``.
    quantile : float
        Which quantile column to compare, e.g. 0.95 -> ``quantile0.95``.
    cell_outliers : pandas.DataFrame, optional
        Columns ``label_id, is_outlier`` (e.g. from
        `antibodies.analysis.qc.flag_cells`), matched on ``label_id``; every
        cell of ``marker_table`` must be listed.  Outlier cells get
        ``is_infected == is_control == False``.

    Returns
    -------
    pandas.DataFrame
        Columns ``label_id, is_infected, is_control`` (bool), rows in the
        order of ``marker_table``.  Cells with a NaN marker value are
        neither infected nor control.  A NaN threshold (e.g. a fixed marker
        background without MAD) makes every valid cell a control; a warning
        is logged.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> marker = pd.DataFrame({"label_id": [1, 2], "quantile0.95": [10.0, 30.0]})
    >>> classify_infected(marker, BackgroundStats(10.0, 2.0)).is_infected.tolist()
    [False, True]
    """
    threshold = infection_threshold(background, threshold_factor)
    if np.isnan(threshold):
        logger.warning("infection threshold is NaN (background %s); no cell is infected",
                       background)
    labels = marker_table["label_id"].to_numpy()
    values = marker_table[quantile_column(quantile)].to_numpy(dtype=float)
    outlier = _outlier_mask(labels, cell_outliers)
    valid = ~outlier & ~np.isnan(values)
    above = values > threshold
    return pd.DataFrame({
        "label_id": labels,
        "is_infected": above & valid,
        "is_control": ~above & valid,
    })
