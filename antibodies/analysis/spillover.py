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

import numpy as np

__all__ = ["cell_contacts", "neighbour_contrast", "compensate_spillover"]


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
