"""Infected / control cell calls from the virus-marker channel.

A cell is *infected* when the ``quantile{q}`` column of its ``marker_tophat``
features is strictly greater than ``median + factor * mad`` of the marker
background that applies to its image (MAD unscaled, at least `MIN_MAD`).
Every other cell is a *control* cell, except QC outlier cells, which are
neither infected nor control and so take no part in any score.

In other words each cell has a *marker score* ``(x - median) / mad`` in
units of its image's background noise, and ``factor`` is a plate-wide cut on
that score.  How ``factor`` is chosen is a strategy (`INFECTION_METHODS`):

``"valley"`` (`LogValleyFactor`, the default)
    the least dense point, on the log scale, between the medians of the two
    groups that ``"mixture"`` splits the plate's scores into: it follows a
    population of dim infected cells down.  Where the groups lie far apart
    (a nearly empty valley), the midpoint.
``"midpoint"`` (`LogMidpointFactor`)
    halfway, on the log scale, between the medians of those two groups.
``"mixture"`` (`LogMixtureFactor`)
    where the two components of a Gaussian mixture of the log scores are
    equally likely.
``"otsu"`` (`LogOtsuFactor`)
    Otsu's threshold on the log of the plate's marker scores.
``"fixed"`` (`FixedFactor`)
    a given factor; with the plate background this is the batchlib rule
    ``plate median + 4.8 x plate MAD``.

The fitted cuts fall in the valley between the non-infected cells (scores
of a few noise units) and the infected ones (tens to hundreds), wherever
that valley lies on this plate.  They are kept within ``[min_factor,
max_factor]``, so a plate without infected cells gets the floor and its
noise is not split in two; a mock-infected well on an infected plate is
judged by the plate's cut and gets (almost) no infected cells.

Normalising by each image's own background (see
`antibodies.analysis.background.ImageBackground`) is what keeps the call
stable when one image is brighter, hazier or noisier than its plate mates.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import quantile_column  # the column's name is made where the column is

__all__ = [
    "MIN_MAD",
    "CLEAR_CALL",
    "BATCHLIB_THRESHOLD_FACTOR",
    "quantile_column",
    "infection_threshold",
    "marker_scores",
    "FixedFactor",
    "LogOtsuFactor",
    "LogMixtureFactor",
    "LogMidpointFactor",
    "LogValleyFactor",
    "INFECTION_METHODS",
    "make_infection_method",
    "score_histogram",
    "classify_infected",
]

logger = logging.getLogger(__name__)

MIN_MAD = 1.0
"""Smallest background MAD used as the noise unit (one count), so a flat background does not divide by 0."""

BATCHLIB_THRESHOLD_FACTOR = 4.8
"""batchlib's cut on the marker score (background MADs): the default of the functions here. The pipeline's
default is the configspec's (``[infection] threshold_factor``)."""


CLEAR_CALL = "is_clear_call"
"""Column of the call table: the call holds by the score margin, so the cell enters the serum scores."""


def infection_threshold(background, threshold_factor=BATCHLIB_THRESHOLD_FACTOR):
    """Marker intensity above which a cell is infected.

    Parameters
    ----------
    background : BackgroundStats
        Background of the marker channel.
    threshold_factor : float
        Number of background MADs (at least `MIN_MAD`) above the background median.

    Returns
    -------
    float
        ``background.median + threshold_factor * max(background.mad, MIN_MAD)``.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> infection_threshold(BackgroundStats(10.0, 2.0), threshold_factor=4.8)
    19.6
    >>> infection_threshold(BackgroundStats(10.0, 0.0), threshold_factor=4.8)   # MAD at least MIN_MAD
    14.8
    """
    return float(background.median + threshold_factor * _noise_unit(background))


def _noise_unit(background):
    return np.nan if np.isnan(background.mad) else max(background.mad, MIN_MAD)


def marker_scores(values, background):
    """Marker values in units of the background noise: ``(x - median) / max(mad, MIN_MAD)``.

    Parameters
    ----------
    values : (N,) array_like of float
        Per-cell marker statistic (e.g. the ``quantile0.95`` column).
    background : BackgroundStats
        Marker background of the cells' image.

    Returns
    -------
    (N,) ndarray of float

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> marker_scores([10.0, 30.0], BackgroundStats(10.0, 4.0)).tolist()
    [0.0, 5.0]
    """
    return (np.asarray(values, dtype=float) - background.median) / _noise_unit(background)


@dataclass(frozen=True)
class FixedFactor:
    """A given cut on the marker score (batchlib: 4.8 with the plate background)."""

    factor: float = BATCHLIB_THRESHOLD_FACTOR

    def fit(self, scores):
        """Return ``factor`` whatever the scores."""
        return float(self.factor)


def _log_scores(scores):
    scores = np.asarray(scores, dtype=float)
    return np.log10(np.clip(scores[np.isfinite(scores)], 0.1, None))


def _otsu(logs):
    """Otsu's threshold of log scores (skimage imported here, so scheduling never imports it)."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(logs, nbins=512))


@dataclass(frozen=True)
class LogOtsuFactor:
    """Otsu's threshold of the log10 marker scores, kept within ``[min_factor, max_factor]``.

    Attributes
    ----------
    min_factor : float
        Lowest cut (noise units); also the cut when there are too few cells.
    max_factor : float
        Highest cut (noise units).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = np.concatenate([rng.normal(4, 1, 500), rng.normal(200, 50, 500)])
    >>> 5 < LogOtsuFactor(min_factor=1.0).fit(scores) < 60
    True
    >>> LogOtsuFactor(min_factor=8.0).fit(rng.normal(4, 1, 1000))   # no infected cells: the floor
    8.0
    """

    min_factor: float = 8.0
    max_factor: float = 200.0

    def fit(self, scores):
        """Return the cut for a plate's marker scores (any shape; NaN ignored)."""
        logs = _log_scores(scores)
        if logs.size < 2 or np.ptp(logs) == 0:
            return float(self.min_factor)
        cut = 10 ** _otsu(logs)
        return float(np.clip(cut, self.min_factor, self.max_factor))


def _equal_posterior_cut(weights, means, sds):
    """Point between two Gaussian means where both weighted densities are equal."""
    (w0, w1), (m0, m1), (s0, s1) = weights, means, sds
    a = 1 / s1 ** 2 - 1 / s0 ** 2
    b = 2 * (m0 / s0 ** 2 - m1 / s1 ** 2)
    c = m1 ** 2 / s1 ** 2 - m0 ** 2 / s0 ** 2 + 2 * np.log(w0 * s1 / (w1 * s0))
    roots = np.roots([a, b, c]) if abs(a) > 1e-12 else np.array([-c / b])
    inside = [r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-9 and m0 <= r.real <= m1]
    return inside[0] if inside else (m0 + m1) / 2


@dataclass(frozen=True)
class LogMixtureFactor:
    """Two-Gaussian mixture of the log10 marker scores; the cut where both are equally likely.

    Started from Otsu's split and refined by EM, so unequal class sizes and
    widths (many narrow non-infected cells, fewer spread infected ones) move
    the cut into the valley between them.  Kept within ``[min_factor,
    max_factor]`` like `LogOtsuFactor`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = np.concatenate([rng.normal(4, 1, 900), rng.normal(200, 50, 100)])
    >>> 10 < LogMixtureFactor().fit(scores) < 60
    True
    >>> LogMixtureFactor(min_factor=8.0).fit(rng.normal(4, 1, 1000))
    8.0
    """

    min_factor: float = 8.0
    max_factor: float = 200.0
    iterations: int = 50

    def fit(self, scores):
        """Return the cut for a plate's marker scores (any shape; NaN ignored)."""
        logs = _log_scores(scores)
        if logs.size < 10 or np.ptp(logs) == 0:
            return float(self.min_factor)
        upper = logs > _otsu(logs)
        responsibility = upper.astype(float)
        for _ in range(self.iterations):
            weights, means, sds = _mixture_parameters(logs, responsibility)
            if min(weights) * logs.size < 3:
                return float(self.min_factor)
            responsibility = _upper_responsibility(logs, weights, means, sds)
        cut = 10 ** _equal_posterior_cut(weights, means, sds)
        return float(np.clip(cut, self.min_factor, self.max_factor))


def _mixture_parameters(logs, upper):
    """Weights, means and SDs of the (lower, upper) components given upper responsibilities."""
    parameters = []
    for r in (1.0 - upper, upper):
        total = max(r.sum(), 1e-9)
        mean = float((r * logs).sum() / total)
        sd = float(np.sqrt((r * (logs - mean) ** 2).sum() / total))
        parameters.append((total / logs.size, mean, max(sd, 0.02)))
    return tuple(zip(*parameters))


def _upper_responsibility(logs, weights, means, sds):
    densities = [w / s * np.exp(-0.5 * ((logs - m) / s) ** 2) for w, m, s in zip(weights, means, sds)]
    return densities[1] / np.maximum(densities[0] + densities[1], 1e-300)


def _mixture_groups(scores):
    """The plate's log scores and the two groups the mixture's cut splits them into; None if a group has < 3."""
    logs = _log_scores(scores)
    mixture_cut = LogMixtureFactor(min_factor=0.0, max_factor=np.inf).fit(scores)
    if mixture_cut <= 0:
        return None
    lower, upper = logs[logs <= np.log10(mixture_cut)], logs[logs > np.log10(mixture_cut)]
    return (logs, lower, upper) if lower.size >= 3 and upper.size >= 3 else None


def _midpoint(lower, upper):
    """Halfway, on the log scale, between the medians of two groups of log scores."""
    return 10 ** ((np.median(lower) + np.median(upper)) / 2)


def _log_density(logs, bandwidth, step=0.01):
    """Bin centres and counts of a histogram of ``logs`` (bins of ``step``), smoothed by a Gaussian of ``bandwidth``."""
    from scipy.ndimage import gaussian_filter1d

    edges = np.arange(logs.min() - 5 * bandwidth, logs.max() + 5 * bandwidth + step, step)
    return edges[:-1] + step / 2, gaussian_filter1d(np.histogram(logs, edges)[0].astype(float), bandwidth / step)


@dataclass(frozen=True)
class LogMidpointFactor:
    """Halfway, on the log scale, between the medians of the two classes of the mixture split.

    Robust to a heavy upper tail of the non-infected class (cells that take
    in a bit of an infected neighbour), which pulls a Gaussian mixture's cut
    towards the non-infected cells.  Kept within ``[min_factor, max_factor]``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> scores = np.concatenate([rng.normal(4, 1, 900), rng.normal(400, 50, 100)])
    >>> 30 < LogMidpointFactor().fit(scores) < 50
    True
    """

    min_factor: float = 8.0
    max_factor: float = 200.0

    def fit(self, scores):
        """Return the cut for a plate's marker scores (any shape; NaN ignored)."""
        groups = _mixture_groups(scores)
        if groups is None:
            return float(self.min_factor)
        _, lower, upper = groups
        return float(np.clip(_midpoint(lower, upper), self.min_factor, self.max_factor))


@dataclass(frozen=True)
class LogValleyFactor:
    """The least dense point of the log10 marker scores between the medians of the mixture's two groups.

    The density is a histogram of 0.01 decades smoothed by a Gaussian of
    ``bandwidth`` decades.  Where infected cells range from bright to barely
    above the non-infected ones, the valley follows them down, while the
    `LogMidpointFactor` stays halfway between the groups' medians and misses
    the dim ones.  The valley is trusted only if it is a real dip: its
    density at most ``dip`` times the highest density on either side of it.
    Without one (a single population: a plate without infected cells) the cut
    is ``min_factor``; with one it is kept within ``[floor, max_factor]``.
    Where the valley is nearly empty (density below ``overlap`` times the
    lower peak: the groups lie far apart), its least dense point is poorly
    defined and may fall into the tail of non-infected cells that take in a
    little of an infected neighbour; the cut is then `LogMidpointFactor`'s.

    Attributes
    ----------
    min_factor : float
        The cut when the scores show no valley (noise units).
    max_factor : float
        Highest cut (noise units).
    floor : float
        Lowest cut a valley may give (noise units): non-infected cells' 95th
        percentile is about 5 on the generated plates.
    bandwidth : float
        Smoothing of the density (decades).
    dip : float
        Largest ratio of the valley's density to the lower of the two peaks.
    overlap : float
        Below this ratio the groups count as apart and the midpoint is used
        (0: always the valley).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> dim_tail = 10 ** rng.normal(1.5, 0.4, 600)          # infected cells from about 5 to 300 noise units
    >>> scores = np.concatenate([rng.normal(3, 0.6, 1000), dim_tail])
    >>> 5 < LogValleyFactor().fit(scores) < LogMidpointFactor().fit(scores)
    True
    >>> LogValleyFactor().fit(rng.normal(3, 0.6, 2000))     # one population: min_factor
    8.0
    """

    min_factor: float = 8.0
    max_factor: float = 200.0
    floor: float = 5.0
    bandwidth: float = 0.05
    dip: float = 0.5
    overlap: float = 0.03

    def fit(self, scores):
        """Return the cut for a plate's marker scores (any shape; NaN ignored)."""
        groups = _mixture_groups(scores)
        if groups is None:
            return float(self.min_factor)
        logs, lower, upper = groups
        centres, density = _log_density(logs, self.bandwidth)
        between = np.flatnonzero((centres >= np.median(lower)) & (centres <= np.median(upper)))
        if between.size == 0:  # both groups' medians within one bin: one population
            return float(self.min_factor)
        valley = between[np.argmin(density[between])]
        peaks = min(density[:valley + 1].max(), density[valley:].max())
        if density[valley] > self.dip * peaks:
            return float(self.min_factor)
        if density[valley] < self.overlap * peaks:
            return float(np.clip(_midpoint(lower, upper), self.min_factor, self.max_factor))
        return float(np.clip(10 ** centres[valley], self.floor, self.max_factor))


INFECTION_METHODS = {"mixture": LogMixtureFactor, "midpoint": LogMidpointFactor, "valley": LogValleyFactor,
                     "otsu": LogOtsuFactor, "fixed": FixedFactor}
"""How the plate's cut on the marker score is chosen, keyed by config name."""


def make_infection_method(name, **options):
    """Build an infection method from its config name (see `INFECTION_METHODS`).

    Examples
    --------
    >>> make_infection_method("fixed", factor=5.0).fit([1.0, 100.0])
    5.0
    """
    try:
        cls = INFECTION_METHODS[name]
    except KeyError:
        raise ValueError(f"unknown infection method {name!r}; choose from {sorted(INFECTION_METHODS)}") from None
    return cls(**options)


def score_histogram(scores, bins=np.linspace(-1.0, 4.0, 101)):
    """Histogram of the log10 marker scores, for the report.

    Parameters
    ----------
    scores : array_like of float
    bins : (K + 1,) array_like
        Bin edges in log10 units (scores below 0.1 are counted at 0.1).

    Returns
    -------
    pandas.DataFrame
        Columns ``log10_score_low, log10_score_high, n_cells``.

    Examples
    --------
    >>> score_histogram([1.0, 10.0, 10.0], bins=[-1, 0.5, 1.5])["n_cells"].tolist()
    [1, 2]
    """
    bins = np.asarray(bins, dtype=float)
    counts, _ = np.histogram(np.clip(_log_scores(scores), bins[0], bins[-1]), bins)
    return pd.DataFrame({"log10_score_low": bins[:-1], "log10_score_high": bins[1:], "n_cells": counts})


def _outlier_mask(labels, cell_outliers):
    """Boolean (N,) mask of outlier cells aligned with ``labels``."""
    if cell_outliers is None:
        return np.zeros(len(labels), dtype=bool)
    flags = cell_outliers.set_index("label_id")["is_outlier"].astype(bool)
    missing = pd.Index(labels).difference(flags.index)
    if len(missing):
        raise ValueError(f"cell_outliers lacks label_id(s) {missing[:5].tolist()}")
    return flags.reindex(labels).to_numpy()


def classify_infected(marker_table, background, threshold_factor=BATCHLIB_THRESHOLD_FACTOR, quantile=0.95,
                      cell_outliers=None, margin=1.0):
    """Call each cell infected or control.

    Parameters
    ----------
    marker_table : pandas.DataFrame
        Per-cell features of ``marker_tophat`` with columns ``label_id`` and
        ``quantile{quantile}``.
    background : BackgroundStats
        Marker background of the image (or of the plate, for batchlib's rule).
    threshold_factor : float
        ``k`` in ``median + k * max(mad, MIN_MAD)``, e.g. the ``fit`` of an
        infection method.
    quantile : float
        Which quantile column to compare, e.g. 0.95 -> ``quantile0.95``.
    cell_outliers : pandas.DataFrame, optional
        Columns ``label_id, is_outlier`` (e.g. from
        `antibodies.analysis.qc.flag_cells`), matched on ``label_id``; every
        cell of ``marker_table`` must be listed.  Outlier cells get
        ``is_infected == is_control == False``.
    margin : float
        A call is clear when the marker score is above ``margin x k``
        (infected) or below ``k / margin`` (control); >= 1.

    Returns
    -------
    pandas.DataFrame
        Columns ``label_id, is_infected, is_control, is_clear_call`` (bool),
        rows in the order of ``marker_table``.  Cells with a NaN marker value are
        neither infected nor control.  A NaN threshold (e.g. a fixed marker
        background without MAD) makes every valid cell a control; a warning
        is logged.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> marker = pd.DataFrame({"label_id": [1, 2], "quantile0.95": [10.0, 30.0]})
    >>> classify_infected(marker, BackgroundStats(10.0, 2.0)).is_infected.tolist()
    [False, True]
    >>> classify_infected(marker, BackgroundStats(10.0, 2.0), margin=2.5).is_clear_call.tolist()  # 30 < 34
    [True, False]
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
    clear = valid.copy()
    if margin > 1 and not np.isnan(threshold):
        clear &= (values > infection_threshold(background, threshold_factor * margin)) | \
            (values <= infection_threshold(background, threshold_factor / margin))
    return pd.DataFrame({
        "label_id": labels,
        "is_infected": above & valid,
        "is_control": ~above & valid,
        CLEAR_CALL: clear,
    })
