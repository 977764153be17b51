"""Fast, exact grey-level morphology with a disk footprint.

A disk is decomposed into its rows: row ``dy`` of ``skimage.morphology.disk(r)``
is a centred run of half-width ``w(dy)``.  An erosion by the disk is therefore
the minimum over ``dy`` of a row-shifted 1-D minimum filter of half-width
``w(dy)``.  The 1-D filters for all half-widths are built incrementally by
pairwise minima of shifted copies (``w -> w + d`` with ``d <= w``), so the
whole erosion costs about ``r`` vectorised passes per direction instead of
``r**2`` comparisons per pixel.  Pixels outside the image are ignored, which
for a disk is identical to skimage's default ``mode='reflect'``; the result
equals ``skimage.morphology.white_tophat(image, disk(radius))`` exactly.
:func:`near_mask` uses the same decomposition for a binary dilation by a
Euclidean ball.
"""

import logging
import math

import numpy as np
from skimage.morphology import disk

__all__ = ["white_tophat", "erode_disk", "dilate_disk", "open_disk", "near_mask"]

logger = logging.getLogger(__name__)


def _disk_half_widths(radius):
    """Half-width of each row of ``disk(radius)``, rows ``dy = 0 .. radius``.

    Parameters
    ----------
    radius : int
        Disk radius in pixels.

    Returns
    -------
    list of int
        ``widths[dy]`` is the half-width of the row at vertical offset ``dy``.

    Examples
    --------
    >>> _disk_half_widths(3)
    [3, 2, 2, 0]
    """
    rows = disk(radius)[radius:]
    return [int(row.sum()) // 2 for row in rows]


def _widen(running, padded_width, step, reduce):
    """Grow a running 1-D (horizontal) filter by ``step`` pixels on each side.

    ``running[:, j]`` reduces ``padded[:, j : j + 2 * w + 1]``; the result
    reduces ``padded[:, j : j + 2 * (w + step) + 1]``.  Valid when the two
    shifted windows touch, i.e. ``2 * step <= 2 * w + 1``.
    """
    width = padded_width - 2 * step
    return reduce(running[:, :width], running[:, 2 * step:2 * step + width])


def _ball_half_widths(distance):
    """Row half-widths of the footprint ``dy**2 + dx**2 < distance**2``.

    Examples
    --------
    >>> _ball_half_widths(3)
    [2, 2, 2]
    """
    return [math.isqrt(distance**2 - dy**2 - 1) for dy in range(distance)]


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D (M, N) image, got shape {image.shape}")
    return image


def _morph_disk(image, radius, reduce):
    """Erode (``reduce=np.minimum``) or dilate (``np.maximum``) by a disk."""
    image = _check_image(image)
    radius = int(radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return image.copy()
    return _morph_rows(image, _disk_half_widths(radius), reduce)


def _morph_rows(image, widths, reduce):
    """Reduce over a symmetric footprint given by its row half-widths ``widths[dy]``."""
    n_rows, n_cols = image.shape
    radius = len(widths) - 1
    # edge replication == ignoring outside pixels for min/max by a disk
    padded = np.pad(image, radius, mode="edge")
    row_offsets = {}
    for dy, w in enumerate(widths):
        row_offsets.setdefault(w, []).append(dy)

    result = None
    running = padded  # running[:, j] reduces padded[:, j : j + 2 * w + 1]
    w = 0
    for target in sorted(row_offsets):
        while w < target:
            step = 1 if w == 0 else min(target - w, w)
            if w == 0:
                running = reduce(
                    reduce(running[:, :-2], running[:, 1:-1]), running[:, 2:]
                )
            else:
                running = _widen(running, running.shape[1], step, reduce)
            w += step
        columns = running[:, radius - w:radius - w + n_cols]
        for dy in row_offsets[w]:
            for shift in {dy, -dy}:
                rows = columns[radius + shift:radius + shift + n_rows]
                if result is None:
                    result = rows.copy()
                else:
                    reduce(result, rows, out=result)
    return result


def erode_disk(image, radius):
    """Grey-level erosion of an (M, N) image by ``skimage.morphology.disk(radius)``.

    Parameters
    ----------
    image : (M, N) array
        Input image, any real dtype.
    radius : int
        Disk radius in pixels.

    Returns
    -------
    (M, N) array
        Eroded image, same dtype as ``image``.

    Examples
    --------
    >>> img = np.array([[5, 5, 5], [5, 1, 5], [5, 5, 5]])
    >>> erode_disk(img, 1)
    array([[5, 1, 5],
           [1, 1, 1],
           [5, 1, 5]])
    """
    return _morph_disk(image, radius, np.minimum)


def dilate_disk(image, radius):
    """Grey-level dilation of an (M, N) image by ``skimage.morphology.disk(radius)``.

    Parameters
    ----------
    image : (M, N) array
        Input image, any real dtype.
    radius : int
        Disk radius in pixels.

    Returns
    -------
    (M, N) array
        Dilated image, same dtype as ``image``.
    """
    return _morph_disk(image, radius, np.maximum)


def near_mask(mask, distance):
    """Pixels closer than ``distance`` (Euclidean) to a True pixel of ``mask``.

    Equal to ``scipy.ndimage.distance_transform_edt(~mask) < distance``, as a
    binary dilation with the footprint ``dy**2 + dx**2 < distance**2``.

    Parameters
    ----------
    mask : (M, N) bool array
    distance : int
        0 gives an all-False result.

    Returns
    -------
    (M, N) bool array

    Examples
    --------
    >>> mask = np.zeros((1, 7), bool); mask[0, 3] = True
    >>> near_mask(mask, 2).astype(int).tolist()
    [[0, 0, 1, 1, 1, 0, 0]]
    """
    mask = _check_image(mask).astype(bool)
    distance = int(distance)
    if distance <= 0:
        return np.zeros(mask.shape, bool)
    return _morph_rows(mask, _ball_half_widths(distance), np.maximum)


def open_disk(image, radius):
    """Grey-level opening (erosion, then dilation) by a disk.

    Parameters
    ----------
    image : (M, N) array
        Input image, any real dtype.
    radius : int
        Disk radius in pixels.

    Returns
    -------
    (M, N) array
        Opened image, same dtype as ``image``; never above ``image``.
    """
    return dilate_disk(erode_disk(image, radius), radius)


def white_tophat(image, radius=20):
    """White top-hat of an (M, N) image with a disk of the given radius.

    Equal to ``skimage.morphology.white_tophat(image, disk(radius))``, but
    computed with a row decomposition of the disk, so the cost grows about
    linearly (not quadratically) with the radius.

    Parameters
    ----------
    image : (M, N) array
        Input image, any real dtype.
    radius : int, optional
        Disk radius in pixels; structures narrower than the disk are kept,
        broader background is removed.

    Returns
    -------
    (M, N) array
        ``image - opening(image)``, non-negative: the image's dtype for
        integer images (exact, and half the size of float32 for uint16
        camera images), float32 otherwise.

    Examples
    --------
    >>> img = np.zeros((7, 7), dtype=np.uint16)
    >>> img[3, 3] = 10
    >>> float(white_tophat(img, radius=1)[3, 3])
    10.0
    """
    image = np.asarray(image)
    opened = open_disk(image, radius)
    if image.dtype.kind in "iu":
        return image - opened  # opened <= image: no wrap-around
    return np.subtract(image, opened).astype(np.float32, copy=False)
