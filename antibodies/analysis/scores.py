"""Per-image and per-well antibody scores.

For a serum channel ``S`` and a pool of valid cells (one image, or all
non-outlier images of a well), with ``I`` / ``C`` the background-subtracted
per-cell mean intensities (``means - background.median``) of infected /
control cells:

``S_score``
    ``median(I) / median(C)``, each median estimated by a *median estimator*:
    :class:`SampleMedian` (batchlib's, the default) or :class:`HarrellDavisMedian`
    (``[scores] median_estimator``)
``S_score_log_se``
    asymptotic standard error of ``log(S_score)`` from the two medians:
    ``sqrt(se(I)**2 + se(C)**2)`` with ``se(X) = 1.2533 * 1.4826 *
    mad(X) / (sqrt(n) * median(X))`` (the sample median's standard error
    for a normal population, its scale estimated robustly); NaN with fewer
    than ``MIN_INTERVAL_CELLS`` cells in a group or a median <= 0.
    `call_positive` turns it into a confidence interval.
``S_robust_z_score``
    ``(median(I) - median(C)) / mad(C)`` with the *unscaled*
    ``mad(C) = median(|C - median(C)|)`` (no 1.4826 factor)
``S_ratio_of_means``
    ``mean(I) / mean(C)``
``S_median_infected``, ``S_median_control``, ``S_mad_control``
    the ingredients above.

Empty pools give NaN; a zero denominator gives +-inf or NaN (IEEE).  Rows that
are outliers for ``S`` get NaN in the three score columns; the ingredients
and cell counts are kept for diagnosis.  QC outlier cells (neither infected
nor control in the infection table) never enter a pool.  Memory grows with
the number of cells: a well keeps only its valid cells' means and sizes.

How the plate-statistics modules connect, per plate::

    cell_flags = qc.flag_cells(features)                   # per image
    image_flags = qc.flag_images(table_of_image_name_and_n_cells, image_rules)
    histograms = background.accumulate_histograms(
        records, outlier_images, strategy.total_wells)
    backgrounds = strategy.compute(histograms)
    calls = infection.classify_infected(
        marker_features, backgrounds["marker_tophat"], cell_outliers=cell_flags)
    images, wells = score_plate(image_cells, backgrounds, image_flags=image_flags)
    wells = call_positive(wells)
"""

import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.special import betainc

from antibodies.analysis.qc import (
    DEFAULT_SERUM_RULES, DEFAULT_WELL_RULES, PASSED, combine_outlier_types, outlier_types,
    serum_outlier_types)
from antibodies.analysis.infection import CLEAR_CALL
from antibodies.analysis.spillover import compensate_spillover

__all__ = [
    "ImageCells",
    "PlateScores",
    "SampleMedian",
    "HarrellDavisMedian",
    "MEDIAN_ESTIMATORS",
    "SCORE_STATISTICS",
    "SERUM_STATISTICS",
    "CELL_COLUMNS",
    "CELL_FRAME_COLUMNS",
    "DEFAULT_POSITIVE_CUTOFFS",
    "DEFAULT_CALL_CONFIDENCE",
    "MIN_INTERVAL_CELLS",
    "compare_intensities",
    "cell_frame",
    "subtract_backgrounds",
    "summarize_cells",
    "score_plate",
    "flagged_sera",
    "score_images",
    "score_wells",
    "call_positive",
    "sera_in",
    "split_by_serum",
]

logger = logging.getLogger(__name__)

SCORE_STATISTICS = ("score", "score_log_se", "robust_z_score", "ratio_of_means")
"""Per-serum columns set to NaN for outliers."""

SERUM_STATISTICS = SCORE_STATISTICS + ("median_infected", "median_control", "mad_control", "clipped_cells")
"""Per-serum statistic columns, each prefixed with ``<serum>_``."""

CLIPPED_CELL = 0.01
"""A cell with at least this fraction of its pixels at the camera ceiling counts as clipped (``clipped_cells``)."""

CELL_COLUMNS = ("n_cells", "n_infected", "n_control", "fraction_infected",
                "cell_size_median", "cell_size_mean", "cell_size_min", "cell_size_max")
"""Serum-independent columns of a pool of valid cells."""

CELL_FRAME_COLUMNS = ("label_id", "sizes", "means", "local_background", "neighbour_contrast", "clipped")
"""The only columns of a serum table `cell_frame` reads (a reader may skip the others)."""

DEFAULT_POSITIVE_CUTOFFS = {"serum_IgG": 1.3, "serum_IgA": 1.39, "serum_IgM": 1.27}
"""Default ``<serum>_score`` cut-offs above which a sample is positive."""

DEFAULT_CALL_CONFIDENCE = 0.95
"""Confidence of the score interval that must clear the cut-off for a call (`call_positive`)."""

MIN_INTERVAL_CELLS = 10
"""Fewer cells in a group give no interval (the call is inconclusive): the sample MAD of a handful of
cells is erratic and a median's normal approximation poor (3-6 infected cells gave intervals that
missed the true ratio by 9-20 % on tune_sparse_few_infected)."""

_MEDIAN_SE = 1.2533 * 1.4826
"""sqrt(pi / 2) (the median's standard error over sigma / sqrt(n), normal data) x the MAD-to-sigma factor."""

_FLAG_COLUMNS = ("is_outlier", "outlier_type")


@dataclass(frozen=True)
class ImageCells:
    """Per-cell input of one image.

    Attributes
    ----------
    image_name, site_name, well_name : str
    tables : Mapping[str, pandas.DataFrame]
        Channel -> per-cell features (``label_id, means, sizes, ...``); every
        scored serum must be present.
    infection : pandas.DataFrame
        ``label_id, is_infected, is_control`` from
        `antibodies.analysis.infection.classify_infected`.
    backgrounds : Mapping[str, BackgroundStats], optional
        Channel -> the background this image subtracts (e.g. its own, see
        `antibodies.analysis.background.ImageBackground`); None: the plate's.
    per_cell_background : bool
        Each cell subtracts its serum table's ``local_background`` instead
        (`antibodies.analysis.background.LocalBackground`).
    spillover_width : float or Mapping[str, float]
        Serum means are compensated for the signal exchanged with touching
        cells over a band this wide (px), from the serum tables'
        ``neighbour_contrast`` (`antibodies.analysis.spillover`); 0: raw means.
        A mapping gives each serum its own width.
    """

    image_name: str
    site_name: str
    well_name: str
    tables: Mapping
    infection: pd.DataFrame
    backgrounds: Mapping = None
    per_cell_background: bool = False
    spillover_width: float | Mapping = 0.0

    def width(self, serum):
        """The spillover width of ``serum``."""
        widths = self.spillover_width
        return float(widths.get(serum, 0.0) if isinstance(widths, Mapping) else widths)


class PlateScores(NamedTuple):
    """Image and well score tables of a plate."""

    images: pd.DataFrame
    wells: pd.DataFrame


def _median(values):
    return np.median(values) if values.size else np.float64(np.nan)


@dataclass(frozen=True)
class SampleMedian:
    """The sample median: the middle value, or the mean of the middle two (batchlib's score).

    Examples
    --------
    >>> float(SampleMedian()(np.array([1.0, 2.0, 10.0])))
    2.0
    """

    def __call__(self, values):
        """Median of a (N,) float array; NaN when empty."""
        return _median(values)


@dataclass(frozen=True)
class HarrellDavisMedian:
    """The Harrell-Davis median: a weighted mean of all order statistics.

    Order statistic ``i`` of ``n`` gets the Beta((n + 1) / 2, (n + 1) / 2)
    probability of ``((i - 1) / n, i / n]`` (Harrell & Davis, Biometrika 69,
    1982).  It estimates the population median, as the sample median does,
    with a lower variance for the small samples of a well with a handful of
    infected cells, where the sample median keeps one or two values.  The
    score's interval keeps the sample median's asymptotic standard error.

    Examples
    --------
    >>> round(float(HarrellDavisMedian()(np.array([10.0, 1.0, 2.0]))), 4)  # (7 x 1 + 13 x 2 + 7 x 10) / 27
    3.8148
    >>> float(HarrellDavisMedian()(np.array([5.0])))
    5.0
    """

    def __call__(self, values):
        """Harrell-Davis median of a (N,) float array; NaN when empty."""
        ordered = np.sort(np.asarray(values, dtype=float))
        n = ordered.size
        if n == 0:
            return np.float64(np.nan)
        shape = (n + 1) / 2
        weights = np.diff(betainc(shape, shape, np.arange(n + 1) / n))
        return np.float64(weights @ ordered)


MEDIAN_ESTIMATORS = {"sample": SampleMedian(), "harrell_davis": HarrellDavisMedian()}
"""``[scores] median_estimator`` -> the estimator of the medians in the score."""


def _mean(values):
    return np.mean(values) if values.size else np.float64(np.nan)


def _relative_median_se(values, median):
    """Asymptotic standard error of ``median`` relative to itself (NaN below ``MIN_INTERVAL_CELLS`` or median <= 0)."""
    if values.size < MIN_INTERVAL_CELLS or not median > 0:
        return np.nan
    return _MEDIAN_SE * _median(np.abs(values - median)) / (np.sqrt(values.size) * median)


def compare_intensities(infected, control, median=SampleMedian()):
    """Compare background-subtracted intensities of infected and control cells.

    Parameters
    ----------
    infected, control : (N,) array_like of float
        Background-subtracted per-cell mean intensities.
    median : callable
        Median estimator of the two groups (:data:`MEDIAN_ESTIMATORS`); the
        MAD of the controls is always the sample median of their deviations.

    Returns
    -------
    dict
        ``score, score_log_se, robust_z_score, ratio_of_means,
        median_infected, median_control, mad_control`` (floats; NaN for
        empty inputs).

    Examples
    --------
    >>> stats = compare_intensities([30.0, 40.0, 50.0], [10.0, 20.0, 30.0])
    >>> stats["score"], stats["robust_z_score"], stats["ratio_of_means"], stats["mad_control"]
    (2.0, 2.0, 2.0, 10.0)
    >>> stats["score_log_se"]  # fewer than MIN_INTERVAL_CELLS cells: no interval
    nan
    >>> stats = compare_intensities(np.arange(30.0, 50.0), np.arange(10.0, 30.0))
    >>> round(stats["score_log_se"], 4)  # 1.8581 * sqrt((5/39.5)**2 + (5/19.5)**2) / sqrt(20)
    0.1188
    """
    infected = np.asarray(infected, dtype=float)
    control = np.asarray(control, dtype=float)
    median_infected, median_control = median(infected), median(control)
    mad_control = _median(np.abs(control - median_control))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = {
            "score": median_infected / median_control,
            "score_log_se": np.hypot(_relative_median_se(infected, median_infected),
                                     _relative_median_se(control, median_control)),
            "robust_z_score": (median_infected - median_control) / mad_control,
            "ratio_of_means": _mean(infected) / _mean(control),
            "median_infected": median_infected,
            "median_control": median_control,
            "mad_control": mad_control,
        }
    return {key: float(value) for key, value in stats.items()}


def _indexed(table, image_name, what):
    indexed = table.set_index("label_id")
    if not indexed.index.is_unique:
        raise ValueError(f"{what} of image {image_name!r} has duplicate label_id")
    return indexed


def cell_frame(record, sera):
    """Valid cells of one image with their infection call, size and serum means.

    Parameters
    ----------
    record : ImageCells
    sera : sequence of str

    Returns
    -------
    pandas.DataFrame
        Index ``label_id``; columns ``is_infected, is_control, is_clear_call, sizes`` and one
        column of means per serum (compensated with the record's
        ``spillover_width``; with ``per_cell_background`` also
        ``<serum>_local_background``; where the serum table has it,
        ``<serum>_clipped``); only cells that are infected or control (QC
        outlier cells dropped).

    Examples
    --------
    >>> tables = {"serum_IgG": pd.DataFrame({"label_id": [1, 2, 3], "sizes": [300, 400, 500],
    ...                                      "means": [5.0, 6.0, 7.0]})}
    >>> infection = pd.DataFrame({"label_id": [1, 2, 3], "is_infected": [True, False, False],
    ...                           "is_control": [False, True, False]})
    >>> cells = cell_frame(ImageCells("a", "s", "A01", tables, infection), ["serum_IgG"])
    >>> cells.index.tolist(), cells["sizes"].tolist(), cells["serum_IgG"].tolist()
    ([1, 2], [300.0, 400.0], [5.0, 6.0])
    """
    aligned = _aligned_cell_frame(record, sera)
    if aligned is not None:
        return aligned
    infection = _indexed(record.infection, record.image_name, "infection table")
    cells = infection[["is_infected", "is_control"]].astype(bool)
    cells[CLEAR_CALL] = _clear_calls(infection)
    size_source = record.tables[sera[0]] if sera else next(iter(record.tables.values()), None)
    sizes = (_indexed(size_source, record.image_name, "feature table")["sizes"]
             if size_source is not None else pd.Series(np.nan, index=cells.index))
    columns = {"sizes": sizes}
    for serum in sera:
        table = _indexed(record.tables[serum], record.image_name, serum)
        columns[serum] = _compensated_means(table, record, serum)
        if record.per_cell_background:
            columns[f"{serum}_local_background"] = _local_background(table, record.image_name, serum)
        if "clipped" in table:
            columns[f"{serum}_clipped"] = table["clipped"]
    for name, column in columns.items():
        if not column.index.sort_values().equals(cells.index.sort_values()):
            raise ValueError(f"{name!r} labels of image {record.image_name!r} "
                             "differ from the infection table")
        cells[name] = column.reindex(cells.index).to_numpy(dtype=float)
    return cells[cells["is_infected"] | cells["is_control"]]


def _clear_calls(infection):
    """The infection table's ``is_clear_call`` (True for every cell of a table without it)."""
    if CLEAR_CALL not in infection:
        return np.ones(len(infection), dtype=bool)
    return infection[CLEAR_CALL].to_numpy(dtype=bool)


def _compensated_means(table, record, serum):
    """A serum table's ``means``, compensated for spillover when the record asks for it."""
    width = record.width(serum)
    if not width:
        return table["means"]
    if "neighbour_contrast" not in table:
        raise ValueError(f"the {serum} cell table of image {record.image_name!r} has no neighbour_contrast column "
                         "(written by an older version): rerun CellFeatures with --force-recompute, "
                         "or set [scores] spillover_width = 0")
    return pd.Series(compensate_spillover(table["means"], table["neighbour_contrast"], width),
                     index=table.index)


def _aligned_sources(record, sera):
    """``(label_id, size table)`` when every table of ``record`` that `cell_frame` reads lists the
    infection table's labels, unique and increasing, in its order; else None (the general path decides)."""
    labels = record.infection["label_id"].to_numpy()
    size_source = record.tables[sera[0]] if sera else next(iter(record.tables.values()), None)
    if size_source is None or labels.dtype.kind not in "iu" or not (np.diff(labels) > 0).all():
        return None
    sources = [size_source] + [record.tables[serum] for serum in sera]
    if not all(np.array_equal(table["label_id"].to_numpy(), labels) for table in sources):
        return None
    if record.per_cell_background and not all("local_background" in record.tables[s] for s in sera):
        return None
    return labels, size_source


def _aligned_cell_frame(record, sera):
    """`cell_frame` without indexing and reindexing, where `_aligned_sources` finds the tables aligned; else None."""
    aligned = _aligned_sources(record, sera)
    if aligned is None:
        return None
    labels, size_source = aligned
    cells = pd.DataFrame({"is_infected": record.infection["is_infected"].to_numpy(dtype=bool),
                          "is_control": record.infection["is_control"].to_numpy(dtype=bool),
                          CLEAR_CALL: _clear_calls(record.infection),
                          "sizes": size_source["sizes"].to_numpy(dtype=float)},
                         index=pd.Index(labels, name="label_id"))
    for serum in sera:
        table = record.tables[serum]
        cells[serum] = _compensated_means(table, record, serum).to_numpy(dtype=float)
        if record.per_cell_background:
            cells[f"{serum}_local_background"] = table["local_background"].to_numpy(dtype=float)
        if "clipped" in table:
            cells[f"{serum}_clipped"] = table["clipped"].to_numpy(dtype=float)
    return cells[cells["is_infected"] | cells["is_control"]]


def _local_background(table, image_name, serum):
    """The ``local_background`` column of a serum table, or a clear error naming the fix."""
    if "local_background" not in table:
        raise ValueError(f"the {serum} cell table of image {image_name!r} has no local_background column "
                         "(written by an older version): rerun CellFeatures with --force-recompute, "
                         "or choose another background method")
    return table["local_background"]


def subtract_backgrounds(cells, sera, backgrounds):
    """Return ``cells`` with each serum column minus its background.

    The background is the cell's own ``<serum>_local_background`` column
    where ``cells`` has one, else the median in ``backgrounds``.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> cells = pd.DataFrame({"serum_IgG": [110.0, 130.0]})
    >>> subtract_backgrounds(cells, ["serum_IgG"], {"serum_IgG": BackgroundStats(100.0)})["serum_IgG"].tolist()
    [10.0, 30.0]
    >>> cells["serum_IgG_local_background"] = [90.0, 120.0]
    >>> subtract_backgrounds(cells, ["serum_IgG"], {"serum_IgG": BackgroundStats(100.0)})["serum_IgG"].tolist()
    [20.0, 10.0]
    """
    cells = cells.copy()
    for serum in sera:
        local = f"{serum}_local_background"
        cells[serum] = cells[serum] - (cells[local] if local in cells else backgrounds[serum].median)
    return cells


def summarize_cells(cells, sera, backgrounds=None, median=SampleMedian()):
    """Counts, size statistics and per-serum statistics of a pool of valid cells.

    Parameters
    ----------
    cells : pandas.DataFrame
        As returned by `cell_frame` (possibly concatenated over images).
    sera : sequence of str
    backgrounds : Mapping[str, BackgroundStats], optional
        Background per serum, whose median is subtracted from the means;
        None when ``cells`` are background-subtracted already
        (`subtract_backgrounds`).
    median : callable
        Median estimator of the score (:data:`MEDIAN_ESTIMATORS`).

    Returns
    -------
    dict
        ``CELL_COLUMNS`` and ``<serum>_<statistic>`` for ``SERUM_STATISTICS``.
        A serum's statistics leave out cells whose mean is NaN (an image left
        out of that serum's pool); ``<serum>_clipped_cells`` is the larger of
        the fractions of clipped infected and control cells.
    """
    infected = cells["is_infected"].to_numpy(dtype=bool)
    control = cells["is_control"].to_numpy(dtype=bool)
    sizes = cells["sizes"].to_numpy(dtype=float)
    n_cells = int(infected.sum() + control.sum())
    row = {
        "n_cells": n_cells,
        "n_infected": int(infected.sum()),
        "n_control": int(control.sum()),
        "fraction_infected": infected.sum() / n_cells if n_cells else np.nan,
        "cell_size_median": float(_median(sizes)),
        "cell_size_mean": float(_mean(sizes)),
        "cell_size_min": float(sizes.min()) if sizes.size else np.nan,
        "cell_size_max": float(sizes.max()) if sizes.size else np.nan,
    }
    clear = _clear_calls(cells)
    for serum in sera:
        offset = 0.0 if backgrounds is None else backgrounds[serum].median
        values = cells[serum].to_numpy(dtype=float) - offset
        scored = clear & np.isfinite(values)
        stats = compare_intensities(values[infected & scored], values[control & scored], median)
        stats["clipped_cells"] = _clipped_cells(cells, serum, (infected & scored, control & scored))
        row.update({f"{serum}_{key}": value for key, value in stats.items()})
    return row


def _clipped_cells(cells, serum, groups):
    """The larger fraction, over the groups, of clipped cells (`CLIPPED_CELL`); NaN without ``<serum>_clipped``."""
    column = f"{serum}_clipped"
    if column not in cells:
        return np.nan
    clipped = cells[column].to_numpy(dtype=float) >= CLIPPED_CELL
    return float(max((clipped[group].mean() for group in groups if group.any()), default=np.nan))


def _subtracted_cells(record, sera, backgrounds):
    """Valid cells of a record minus the image's own backgrounds (else the plate's)."""
    return subtract_backgrounds(cell_frame(record, sera), sera, record.backgrounds or backgrounds)


def _serum_columns(serum):
    return [f"{serum}_{s}" for s in SERUM_STATISTICS] + [f"{serum}_{c}" for c in _FLAG_COLUMNS]


def _add_flags(table, overall, sera, backgrounds, serum_rules):
    """Add overall and per-serum outlier columns; NaN the scores of outliers."""
    table["is_outlier"] = (overall != PASSED).to_numpy(dtype=bool)
    table["outlier_type"] = overall
    for serum in sera:
        types = combine_outlier_types(
            overall, serum_outlier_types(table, serum, backgrounds[serum], serum_rules))
        is_outlier = (types != PASSED).to_numpy(dtype=bool)
        table[f"{serum}_is_outlier"] = is_outlier
        table[f"{serum}_outlier_type"] = types
        table.loc[is_outlier, [f"{serum}_{s}" for s in SCORE_STATISTICS]] = np.nan
    return table


def _frame(rows, keys, sera):
    columns = list(keys) + list(CELL_COLUMNS) + [
        f"{serum}_{s}" for serum in sera for s in SERUM_STATISTICS]
    return pd.DataFrame(rows, columns=columns)


def _ordered(table, keys, sera):
    columns = list(keys) + list(_FLAG_COLUMNS) + list(CELL_COLUMNS)
    return table[columns + [c for serum in sera for c in _serum_columns(serum)]]


def _image_outliers(image_flags):
    """Image name -> outlier type of the flagged images."""
    if image_flags is None:
        return {}
    flagged = image_flags[image_flags["is_outlier"].astype(bool)]
    return {name: (kind if isinstance(kind, str) and kind else "outlier")
            for name, kind in zip(flagged["image_name"], flagged["outlier_type"])}


def _detect_sera(records, sera):
    """Peek the first record for ``serum*`` channels when ``sera`` is None."""
    records = iter(records)
    if sera is not None:
        return records, tuple(sera)
    first = next(records, None)
    if first is None:
        return iter(()), ()
    found = tuple(ch for ch in first.tables if ch.startswith("serum"))
    return itertools.chain([first], records), found


_IMAGE_KEYS = ("image_name", "site_name", "well_name")
_WELL_KEYS = ("well_name", "n_images", "n_outlier_images")


def _image_table(rows, outliers, sera, backgrounds, serum_rules):
    table = _frame(rows, _IMAGE_KEYS, sera)
    overall = pd.Series([outliers.get(name, PASSED) for name in table["image_name"]],
                        index=table.index, dtype=str)
    table = _add_flags(table, overall, sera, backgrounds, serum_rules)
    return _ordered(table, _IMAGE_KEYS, sera)


def _well_table(pools, counts, sera, backgrounds, well_rules, serum_rules, median):
    rows = []
    for well in sorted(counts):
        parts = pools.get(well, ([], {}))[0]
        cells = pd.concat(parts) if parts else _empty_cells(sera)
        n_images, n_outliers, _ = counts[well]
        rows.append({"well_name": well, "n_images": n_images, "n_outlier_images": n_outliers,
                     **summarize_cells(cells, sera, median=median)})
    table = _frame(rows, _WELL_KEYS, sera)
    left_out = _EveryImageLeftOut({well: pool[1] for well, pool in pools.items()})
    table = _add_flags(table, _well_outlier_types(table, counts, well_rules), sera, backgrounds,
                       (*serum_rules, left_out))
    return _ordered(table, _WELL_KEYS, sera)


def _well_outlier_types(table, counts, well_rules):
    """The well rules' outlier types; a well whose every image is an outlier says so, with its first image's reason."""
    types = outlier_types(table, well_rules)
    every = {well: reason for well, (n_images, n_outliers, reason) in counts.items() if n_outliers == n_images}
    return pd.Series([f"every image an outlier ({every[well]})" if well in every else kind
                      for well, kind in zip(table["well_name"], types)], index=table.index, dtype=str)


def _empty_cells(sera):
    return pd.DataFrame({"is_infected": pd.Series(dtype=bool), "is_control": pd.Series(dtype=bool),
                         CLEAR_CALL: pd.Series(dtype=bool), "sizes": pd.Series(dtype=float),
                         **{serum: pd.Series(dtype=float) for serum in sera}})


def score_plate(records, backgrounds, sera=None, image_flags=None, image_serum_rules=(),
                well_rules=DEFAULT_WELL_RULES, well_serum_rules=DEFAULT_SERUM_RULES, median=SampleMedian()):
    """Image and well score tables of a plate in one pass over its images.

    Parameters
    ----------
    records : Iterable[ImageCells]
        One record per image; consumed once.
    backgrounds : Mapping[str, BackgroundStats]
        Plate background per serum channel: subtracted from the cells of
        records without backgrounds of their own, and the noise level of the
        serum rules.
    sera : sequence of str, optional
        Serum channels to score; default: the channels of the first record
        whose name starts with ``"serum"``.  Only these get columns.
    image_flags : pandas.DataFrame, optional
        ``image_name, is_outlier, outlier_type`` (e.g. from
        `antibodies.analysis.qc.flag_images`).  Outlier images get NaN scores
        and are left out of their well's pool; unlisted images are valid.
    image_serum_rules : sequence of serum rules
        Per-serum rules applied to the image table (none by default); an image
        they flag for a serum is left out of that serum's well pool (a well
        with no image left gets the outlier type ``every image left out``).
    well_rules : sequence of table rules
        Applied to the well table (default: at least 20 control cells).
    well_serum_rules : sequence of serum rules
        Per-serum rules applied to the well table (default: median infected
        intensity at least 3 x background MAD and the fixed IgG/IgA minima).
    median : callable
        Median estimator of the scores (:data:`MEDIAN_ESTIMATORS`).

    Returns
    -------
    PlateScores
        ``images``: ``image_name, site_name, well_name, is_outlier,
        outlier_type``, ``CELL_COLUMNS``, then per serum
        ``<S>_score, <S>_robust_z_score, <S>_ratio_of_means,
        <S>_median_infected, <S>_median_control, <S>_mad_control,
        <S>_is_outlier, <S>_outlier_type``; rows in record order.
        ``wells``: ``well_name, n_images, n_outlier_images`` then the same
        columns, pooled over the well's non-outlier images; sorted by well.
        A serum's outlier type includes the overall one.
    """
    records, sera = _detect_sera(records, sera)
    outliers = _image_outliers(image_flags)
    rows, pools, counts = [], {}, {}
    for record in records:
        cells = _subtracted_cells(record, sera, backgrounds)
        rows.append({"image_name": record.image_name, "site_name": record.site_name,
                     "well_name": record.well_name, **summarize_cells(cells, sera, median=median)})
        n_images, n_outliers, reason = counts.get(record.well_name, (0, 0, None))
        is_outlier = record.image_name in outliers
        reason = reason or (outliers[record.image_name] if is_outlier else None)
        counts[record.well_name] = (n_images + 1, n_outliers + is_outlier, reason)
        if not is_outlier:
            pools.setdefault(record.well_name, []).append((record.image_name, cells))
    images = _image_table(rows, outliers, sera, backgrounds, image_serum_rules)
    wells = _well_table(_serum_pools(pools, images, sera), counts, sera, backgrounds,
                        well_rules, well_serum_rules, median)
    return PlateScores(images, wells)


def _serum_pools(pools, images, sera):
    """Well -> its images' cells, each serum's means NaN in the images its serum rules flagged.

    Returns ``(cells, left_out)`` per well: ``left_out`` maps each serum to the outlier types of the images
    left out of its pool."""
    flagged = images.set_index("image_name")
    result = {}
    for well, parts in pools.items():
        cells, left_out = [], {serum: [] for serum in sera}
        for name, part in parts:
            out = [serum for serum in sera if flagged.at[name, f"{serum}_is_outlier"]]
            for serum in out:
                left_out[serum].append(flagged.at[name, f"{serum}_outlier_type"])
            cells.append(part.assign(**dict.fromkeys(out, np.nan)) if out else part)
        result[well] = (cells, left_out)
    return result


@dataclass(frozen=True)
class _EveryImageLeftOut:
    """Serum rule of a well table: a well whose every image its serum's image rules left out."""

    left_out: Mapping

    def flag(self, table, serum, background=None):
        """The left-out images' first reason, for the wells where no image was left for ``serum``."""
        def reason(well, n_images, n_outliers):
            types = self.left_out.get(well, {}).get(serum, [])
            return f"every image left out ({types[0]})" if types and len(types) == n_images - n_outliers else PASSED
        rows = zip(table["well_name"], table["n_images"], table["n_outlier_images"])
        return pd.Series([reason(*row) for row in rows], index=table.index, dtype=str)


def flagged_sera(record, sera, backgrounds, rules):
    """The sera whose image serum ``rules`` flag one image (it leaves their well pools in `score_plate`).

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> from antibodies.analysis.qc import ClippedCellsQC
    >>> table = pd.DataFrame({"label_id": [1, 2], "sizes": [300, 300], "means": [9e3, 4e3], "clipped": [0.5, 0.0]})
    >>> calls = pd.DataFrame({"label_id": [1, 2], "is_infected": [True, False], "is_control": [False, True]})
    >>> record = ImageCells("a", "s", "A01", {"serum_IgG": table}, calls)
    >>> flagged_sera(record, ["serum_IgG"], {"serum_IgG": BackgroundStats(100.0)}, [ClippedCellsQC()])
    ['serum_IgG']
    """
    row = pd.DataFrame([summarize_cells(_subtracted_cells(record, sera, backgrounds), sera)])
    return [serum for serum in sera if serum_outlier_types(row, serum, backgrounds[serum], rules).iloc[0] != PASSED]


def score_images(records, backgrounds, sera=None, image_flags=None, serum_rules=(), median=SampleMedian()):
    """Image score table; see `score_plate` (its ``images``)."""
    records, sera = _detect_sera(records, sera)
    outliers = _image_outliers(image_flags)
    rows = [{"image_name": r.image_name, "site_name": r.site_name, "well_name": r.well_name,
             **summarize_cells(_subtracted_cells(r, sera, backgrounds), sera, median=median)} for r in records]
    return _image_table(rows, outliers, sera, backgrounds, serum_rules)


def score_wells(records, backgrounds, sera=None, image_flags=None,
                well_rules=DEFAULT_WELL_RULES, serum_rules=DEFAULT_SERUM_RULES, median=SampleMedian()):
    """Well score table; see `score_plate` (its ``wells``)."""
    return score_plate(records, backgrounds, sera, image_flags, (),
                       well_rules, serum_rules, median).wells


def sera_in(table):
    """Serum channels with columns in a score table, in column order.

    Examples
    --------
    >>> sera_in(pd.DataFrame(columns=["outlier_type", "serum_IgG_outlier_type"]))
    ['serum_IgG']
    """
    suffix = "_outlier_type"
    return [c[:-len(suffix)] for c in table.columns if c.endswith(suffix) and c != "outlier_type"]


def call_positive(table, cutoffs=DEFAULT_POSITIVE_CUTOFFS, confidence=DEFAULT_CALL_CONFIDENCE):
    """Call each scored serum positive or negative where the score's interval clears its cut-off.

    Adds, after ``<S>_score``: ``<S>_is_positive`` and the interval
    ``<S>_score_ci_low, <S>_score_ci_high`` = ``score * exp(-+z * score_log_se)``
    with ``z`` the two-sided normal quantile of ``confidence``.  A serum is
    positive when the interval lies above its cut-off, negative when it lies
    at or below it, and inconclusive (``<NA>`` with a score) when it contains
    the cut-off; so a well of few cells is only called when its score is far
    from the cut-off.  ``confidence = 0`` calls on the score alone
    (batchlib's rule).

    Parameters
    ----------
    table : pandas.DataFrame
        A score table (``<S>_score`` and ``<S>_score_log_se`` per serum).
    cutoffs : Mapping[str, float]
        Serum channel -> cut-off; a score strictly above it is positive.
    confidence : float
        In [0, 1): confidence of the interval.

    Returns
    -------
    pandas.DataFrame
        A copy with nullable-boolean ``<S>_is_positive`` (``<NA>`` where the
        score is NaN, e.g. outliers, or the call is inconclusive) and the
        interval columns, for each serum with a cut-off.

    Examples
    --------
    >>> table = pd.DataFrame({"serum_IgG_score": [1.3, 1.31, np.nan, 1.5, 1.5],
    ...                       "serum_IgG_score_log_se": [0.0, 0.0, np.nan, 0.05, 0.2],
    ...                       "serum_IgG_outlier_type": ["", "", "x", "", ""]})
    >>> call_positive(table)["serum_IgG_is_positive"].tolist()
    [False, True, <NA>, True, <NA>]
    >>> call_positive(table, confidence=0)["serum_IgG_is_positive"].tolist()
    [False, True, <NA>, True, True]
    """
    if not 0 <= confidence < 1:
        raise ValueError(f"confidence must be in [0, 1), got {confidence}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    table = table.copy()
    for serum in sera_in(table):
        if serum not in cutoffs:
            continue
        score = table[f"{serum}_score"]
        log_se = table[f"{serum}_score_log_se"].to_numpy(dtype=float)
        spread = np.exp(z * np.nan_to_num(log_se, nan=np.inf)) if z > 0 else np.ones(len(score))
        low, high = score / spread, score * spread
        positive = pd.array(low > cutoffs[serum], dtype="boolean")
        positive[(score.isna() | ((low <= cutoffs[serum]) & (high > cutoffs[serum]))).to_numpy()] = pd.NA
        at = table.columns.get_loc(f"{serum}_score") + 1
        for offset, (name, column) in enumerate((("is_positive", positive), ("score_ci_low", low),
                                                 ("score_ci_high", high))):
            table.insert(at + offset, f"{serum}_{name}", column)
    return table


def split_by_serum(table):
    """Per-serum views of a score table with the serum prefix dropped.

    Parameters
    ----------
    table : pandas.DataFrame
        A score table (image or well).

    Returns
    -------
    dict of str -> pandas.DataFrame
        Serum -> its serum-independent columns (minus the overall
        ``is_outlier, outlier_type``) followed by ``score, robust_z_score,
        ..., is_outlier, outlier_type`` of that serum.

    Examples
    --------
    >>> table = pd.DataFrame({"well_name": ["A01"], "is_outlier": [True],
    ...     "outlier_type": ["x"], "serum_IgG_score": [np.nan],
    ...     "serum_IgG_is_outlier": [True], "serum_IgG_outlier_type": ["x"]})
    >>> split_by_serum(table)["serum_IgG"].columns.tolist()
    ['well_name', 'score', 'is_outlier', 'outlier_type']
    """
    sera = sera_in(table)
    prefixes = tuple(f"{serum}_" for serum in sera)
    common = [c for c in table.columns
              if not c.startswith(prefixes) and c not in _FLAG_COLUMNS]
    result = {}
    for serum in sera:
        own = [c for c in table.columns if c.startswith(f"{serum}_")]
        result[serum] = table[common + own].rename(
            columns={c: c[len(serum) + 1:] for c in own})
    return result
