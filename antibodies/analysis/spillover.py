"""Signal that touching cells exchange across their shared border.

Optical blur and segmentation errors mix the pixels of neighbouring cells
along the border they share: a cell's measured mean moves toward its
neighbours'.  Infected cells are the minority and mostly touch control cells,
so their serum mean is diluted and every positive score comes out low (on the
tune families by 3-9 % at a true ratio of 1.5-3).  With ``n_cb`` the pixel
pairs (4-connectivity) across the border of cells ``c`` and ``b``, ``A_c``
the area of ``c`` and ``m`` the measured means, the *neighbour contrast*

    g_c = sum_b n_cb (m_c - m_b) / A_c

is the mean change of ``c`` if each border pixel pair swapped one pixel's
worth of signal.  Compensation adds ``width * g_c``: ``width`` is the
effective band (px) over which the signal mixed (a Gaussian PSF of sigma
``s`` alone carries ``s / sqrt(2 pi)`` across a straight border, 0.5 px for
``s = 1.25``).  It is the linear spillover model of REDSEA (Bai et al.,
Front. Immunol. 2021) for multiplexed imaging, applied to per-cell means.

The flow, per image and serum channel::

    table["neighbour_contrast"] = neighbour_contrast(cells, table["label_id"], table["means"])
    means = compensate_spillover(table["means"], table["neighbour_contrast"], width)
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

__all__ = ["EXCHANGE_COLUMNS", "EXCHANGE_REACH", "FixedSpillover", "MeasuredSpillover", "SPILLOVER_METHODS",
           "border_exchange_sums", "cell_contacts", "compensate_spillover", "count_exchange_width", "exchange_width",
           "neighbour_contrast"]


def cell_contacts(labels):
    """Pixel pairs across the border of every two touching cells.

    Parameters
    ----------
    labels : (M, N) int array
        Cell labels; 0 is background (its borders do not count).

    Returns
    -------
    pairs : (K, 2) int64 array
        Label pairs ``(a, b)`` with ``a < b`` that touch (4-connectivity).
    counts : (K,) int64 array
        Number of horizontally or vertically adjacent pixel pairs of each.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2], [1, 3, 2], [0, 3, 3]])
    >>> pairs, counts = cell_contacts(labels)
    >>> pairs.tolist(), counts.tolist()
    ([[1, 2], [1, 3], [2, 3]], [1, 2, 2])
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2D (M, N), got shape {labels.shape}")
    first, second = [], []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        touching = (a != b) & (a > 0) & (b > 0)
        first.append(a[touching])
        second.append(b[touching])
    a, b = (np.concatenate(x).astype(np.int64) for x in (first, second))
    base = int(labels.max()) + 1
    codes, counts = np.unique(np.minimum(a, b) * base + np.maximum(a, b), return_counts=True)
    pairs = np.stack(np.divmod(codes, base), axis=1)
    return pairs.reshape(-1, 2), counts.astype(np.int64)


def neighbour_contrast(labels, label_ids, means, contacts=None):
    """Border-weighted difference of each cell's mean to its neighbours', per pixel of the cell.

    Parameters
    ----------
    labels : (M, N) int array
        Cell labels; 0 is background.
    label_ids : (K,) int array
        The cells measured (e.g. a feature table's ``label_id``).
    means : (K,) float array
        Their mean intensities, in the order of ``label_ids``.
    contacts : tuple, optional
        ``cell_contacts(labels)``, when several channels of one image are measured.

    Returns
    -------
    (K,) float64 array
        ``sum_b n_cb (m_c - m_b) / A_c``; 0 for a cell without measured neighbours.
        Neighbours missing from ``label_ids`` are left out.

    Examples
    --------
    >>> labels = np.array([[1, 1, 2, 2]])
    >>> neighbour_contrast(labels, [1, 2], [10.0, 30.0]).tolist()
    [-10.0, 10.0]
    """
    labels = np.asarray(labels)
    label_ids = np.asarray(label_ids, dtype=np.int64)
    means = np.asarray(means, dtype=np.float64)
    size = int(max(labels.max(), label_ids.max(initial=0))) + 1
    by_label = np.full(size, np.nan)
    by_label[label_ids] = means
    pairs, counts = cell_contacts(labels) if contacts is None else contacts
    difference = by_label[pairs[:, 0]] - by_label[pairs[:, 1]]
    measured = np.isfinite(difference)
    pairs, weighted = pairs[measured], counts[measured] * difference[measured]
    change = np.bincount(pairs[:, 0], weighted, size) - np.bincount(pairs[:, 1], weighted, size)
    areas = np.bincount(labels.ravel(), minlength=size)
    return change[label_ids] / np.maximum(areas[label_ids], 1)


def compensate_spillover(means, contrast, width):
    """Per-cell means corrected for the signal exchanged with touching cells.

    Parameters
    ----------
    means, contrast : array_like
        Measured means and their `neighbour_contrast`.
    width : float
        Effective width (px) of the mixed band; 0 returns ``means``.

    Returns
    -------
    numpy.ndarray
        ``means + width * contrast``.

    Examples
    --------
    >>> compensate_spillover([10.0, 30.0], [-10.0, 10.0], 0.5).tolist()
    [5.0, 35.0]
    """
    return np.asarray(means, dtype=np.float64) + width * np.asarray(contrast, dtype=np.float64)


EXCHANGE_REACH = 6
"""Distances (px) from an infected neighbour's border over which `border_exchange_sums` measures the exchange."""

EXCHANGE_COLUMNS = ("control_pixels", "control_level", "exchange", "contrast", "contrast_squared", "support",
                    "control_counts", "control_cell_counts", "count_exchange", "cell_count_contrast",
                    "count_contrast_squared")
"""Columns of `border_exchange_sums` (index: the distance): sums that add up over the images of a plate."""


_FIRST, _LAST, _ALL = slice(None, -1), slice(1, None), slice(None)
_NEIGHBOURS = (((_FIRST, _ALL), (_LAST, _ALL)), ((_LAST, _ALL), (_FIRST, _ALL)),
               ((_ALL, _FIRST), (_ALL, _LAST)), ((_ALL, _LAST), (_ALL, _FIRST)))
"""``(here, there)`` index pairs of an (M, N) image: each pixel and its neighbour below, above, right and left."""


def _touching(labels, cells, others):
    """Pixels of ``cells`` with a 4-neighbour of another label in ``others``, and that neighbour's label."""
    hit = np.zeros(labels.shape, bool)
    neighbour = np.zeros(labels.shape, labels.dtype)
    for here, there in _NEIGHBOURS:
        found = cells[here] & others[there] & (labels[there] != labels[here])
        hit[here] |= found
        neighbour[here][found] = labels[there][found]
    return hit, neighbour


def _exchange_geometry(labels, controls, infected):
    """Distances of control pixels to the nearest control-infected and control-control border, and who is across."""
    next_to_infected, infected_neighbour = _touching(labels, controls, infected)
    next_to_control, _ = _touching(labels, controls, controls)
    to_infected, nearest = ndi.distance_transform_edt(~next_to_infected, return_indices=True)
    return controls, to_infected, nearest, infected_neighbour, ndi.distance_transform_edt(~next_to_control)


def border_exchange_sums(labels, image, label_ids, means, backgrounds, infected, control, reach=EXCHANGE_REACH,
                         min_contrast=0.3, cache=None):
    """How much brighter control cells are next to an infected neighbour: sums per distance from its border.

    A control pixel at distance ``d`` from an infected neighbour ``b`` is compared, relative to its own cell's
    mean ``m_c``, with control pixels at the same distance from another control cell; the excess, regressed on
    the neighbour's relative contrast ``k = (m_b - m_c) / m_c``, is the share of the contrast that crossed the
    border to distance ``d`` (`exchange_width` adds it up over a plate).

    Parameters
    ----------
    labels : (M, N) int array
        Cell labels; 0 is background.
    image : (M, N) array
        The serum channel.
    label_ids : (K,) int array
    means, backgrounds : (K,) float arrays
        Each cell's mean before background subtraction and the background it subtracts.
    infected, control : (K,) bool arrays
        The cells' calls.
    reach : int
        Largest distance (px) measured.
    min_contrast : float
        Pixels next to a neighbour at least this much brighter (relative) count as ``support``.
    cache : dict, optional
        Pass the same dict for the sera of one image: their distance maps are computed once where the same cells
        are measured.

    Returns
    -------
    pandas.DataFrame
        Indexed by the distance 0..``reach``; columns `EXCHANGE_COLUMNS`: ``control_pixels`` and
        ``control_level`` (count and sum of ``(x - background) / m_c`` next to other control cells),
        ``exchange`` (sum of that times ``k`` next to infected cells), ``contrast``, ``contrast_squared``
        (sums of ``k`` and ``k**2``) and ``support``; the same in counts, for `count_exchange_width`:
        ``control_counts`` and ``control_cell_counts`` (sums of ``x - background`` and of ``m_c`` next to other
        control cells), ``count_exchange``, ``cell_count_contrast`` and ``count_contrast_squared`` (sums of
        ``(x - background) * q``, ``m_c * q`` and ``q**2`` next to infected cells, ``q = m_b - m_c``).
    """
    labels = np.asarray(labels)
    size = int(max(labels.max(), np.max(label_ids, initial=0))) + 1
    level, background = np.zeros(size), np.zeros(size)
    level[label_ids] = np.asarray(means, float) - np.asarray(backgrounds, float)
    background[label_ids] = backgrounds
    is_infected, is_control = np.zeros(size, bool), np.zeros(size, bool)
    is_infected[label_ids], is_control[label_ids] = infected, control
    measured = is_control & (level > 0)
    key = (measured.tobytes(), is_infected.tobytes())
    geometry = cache.get(key) if cache is not None else None
    if geometry is None:
        geometry = _exchange_geometry(labels, measured[labels], is_infected[labels])
        if cache is not None:
            cache.clear()
            cache[key] = geometry
    controls, to_infected, nearest, infected_neighbour, to_control = geometry
    near = np.flatnonzero(controls & (to_infected < reach + 0.5))  # pixels as flat indices, in image order
    across = nearest[0].flat[near], nearest[1].flat[near]
    own_side = labels[across] == labels.flat[near]
    near, across = near[own_side], (across[0][own_side], across[1][own_side])
    baseline = np.flatnonzero(controls & (to_control < reach + 0.5) & (to_infected > reach + 2))
    cells, baseline_cells = labels.flat[near], labels.flat[baseline]
    m = level[cells]
    q, x = level[infected_neighbour[across]] - m, image.flat[near] - background[cells]
    signal, cell_level = image.flat[baseline] - background[baseline_cells], level[baseline_cells]
    k, r = q / m, x / m
    at_near, at_baseline = np.rint(to_infected.flat[near]).astype(int), np.rint(to_control.flat[baseline]).astype(int)
    sums = [np.bincount(at, weights, minlength=reach + 1)[:reach + 1] for at, weights in (
        (at_baseline, None), (at_baseline, signal / cell_level), (at_near, r * k), (at_near, k),
        (at_near, k * k), (at_near, (k >= min_contrast).astype(float)), (at_baseline, signal),
        (at_baseline, cell_level), (at_near, x * q), (at_near, m * q), (at_near, q * q))]
    rows = np.stack(sums, axis=1)
    return pd.DataFrame(rows, columns=EXCHANGE_COLUMNS, index=pd.RangeIndex(reach + 1, name="distance"), dtype=float)


def exchange_width(sums, min_support=500):
    """Width (px) of the band infected and control cells exchange, from summed `border_exchange_sums`.

    Per distance, the least-squares slope (through 0) of the control pixels' excess over their baseline
    on the neighbour's relative contrast; the width is the sum of the slopes. ``None`` when fewer than
    ``min_support`` pixels touch a clearly brighter infected neighbour, or a baseline is missing.

    Examples
    --------
    >>> sums = pd.DataFrame({"control_pixels": [10, 10], "control_level": [10.0, 10.0],
    ...                      "exchange": [30.0, 12.0], "contrast": [20.0, 20.0],
    ...                      "contrast_squared": [40.0, 40.0], "support": [600, 600]})
    >>> round(exchange_width(sums), 6)  # (30 - 20) / 40 + (12 - 20) / 40
    0.05
    >>> exchange_width(sums.assign(support=[10, 10])) is None
    True
    """
    return _summed_slopes(sums, min_support, ("control_level", "control_pixels"), "exchange", "contrast",
                          "contrast_squared")


def count_exchange_width(sums, min_support=500):
    """`exchange_width` fitted in counts, so that bright contrasts carry it and dim cells weigh little.

    Per distance, the least-squares slope (through 0) of the control pixels' excess counts, ``x - background``
    less the baseline share of the cell's own level, on the neighbour's contrast ``m_b - m_c`` in counts; the
    baseline share is the ratio of summed counts to summed cell levels next to other control cells.

    Examples
    --------
    >>> sums = pd.DataFrame({"control_counts": [100.0, 100.0], "control_cell_counts": [100.0, 100.0],
    ...                      "count_exchange": [3000.0, 1200.0], "cell_count_contrast": [2000.0, 2000.0],
    ...                      "count_contrast_squared": [4000.0, 4000.0], "support": [600, 600]})
    >>> round(count_exchange_width(sums), 6)  # (3000 - 2000) / 4000 + (1200 - 2000) / 4000
    0.05
    """
    return _summed_slopes(sums, min_support, ("control_counts", "control_cell_counts"), "count_exchange",
                          "cell_count_contrast", "count_contrast_squared")


def _summed_slopes(sums, min_support, baseline, exchange, contrast, squared):
    """Sum over the distances of ``(exchange - baseline share x contrast) / squared``; None without support."""
    sums = sums.sort_index()
    share_of, per = baseline
    if sums["support"].iloc[0] < min_support or (sums[per] <= 0).any():
        return None
    slopes = (sums[exchange] - sums[share_of] / sums[per] * sums[contrast]) / sums[squared]
    return float(slopes.sum())


@dataclass(frozen=True)
class FixedSpillover:
    """The same width (px) for every serum of every plate."""

    width: float = 0.5
    measures = False

    def widths(self, sums, sera):
        """Serum -> width; ``sums`` is not used."""
        return dict.fromkeys(sera, float(self.width))


@dataclass(frozen=True)
class MeasuredSpillover:
    """``scale`` x the plate's own `count_exchange_width` per serum; ``fallback`` where it cannot be measured.

    The estimate sees the exchange within `EXCHANGE_REACH` px of the border, not a wide halo or what wrong
    calls mix, so it is scaled (docs/performance.md, "The spillover width fitted in counts").

    Examples
    --------
    >>> MeasuredSpillover(scale=2.0, fallback=0.5).widths({"serum_IgG": None}, ["serum_IgG"])
    {'serum_IgG': 0.5}
    """

    scale: float = 2.0
    fallback: float = 0.5
    min_support: int = 500
    measures = True

    def widths(self, sums, sera):
        """Serum -> width from ``sums`` (serum -> summed `border_exchange_sums` or None)."""
        result = {}
        for serum in sera:
            estimate = None if sums.get(serum) is None else self.estimate(sums[serum])
            result[serum] = self.fallback if estimate is None else max(self.scale * estimate, 0.0)
        return result

    def estimate(self, sums):
        """The plate's `count_exchange_width` (px) from its summed sums, or None where it has too little support."""
        return count_exchange_width(sums, self.min_support)


SPILLOVER_METHODS = {"fixed": FixedSpillover, "measured": MeasuredSpillover}
"""How the scores' spillover width is set, keyed by config name (``[scores] spillover``)."""
