"""Thumbnails of plate images: RGB composites with cell outlines (numpy only).

A thumbnail overlays up to three channels in their viewer colours (nuclei
blue, serum green, marker red), outlines every cell in white and infected
cells in magenta; cells that are neither infected nor control (QC outliers)
are outlined in grey.
"""
from typing import NamedTuple

import numpy as np
from skimage.segmentation import find_boundaries

__all__ = ["COLORS", "Channel", "rescale", "composite", "outline", "paint", "cell_thumbnail"]

COLORS = {
    "Red": (1.0, 0.0, 0.0),
    "Green": (0.0, 1.0, 0.0),
    "Blue": (0.0, 0.4, 1.0),
    "Gray": (1.0, 1.0, 1.0),
    "White": (1.0, 1.0, 1.0),
    "Magenta": (1.0, 0.0, 1.0),
    "DimGray": (0.5, 0.5, 0.5),
}
"""RGB in [0, 1] of the colour names used by the viewer attributes and the overlays."""


class Channel(NamedTuple):
    """One channel of a composite: the image, its display range and its colour name."""

    image: np.ndarray
    limits: tuple
    color: str


def rescale(image, limits):
    """Map ``limits = (low, high)`` to ``[0, 1]``, clipping outside.

    Examples
    --------
    >>> rescale(np.array([0, 5, 10, 20]), (0, 10)).tolist()
    [0.0, 0.5, 1.0, 1.0]
    """
    low, high = (float(v) for v in limits)
    span = high - low if high > low else 1.0
    return np.clip((np.asarray(image, dtype=np.float32) - low) / span, 0.0, 1.0)


def composite(channels):
    """Add the channels in their colours into one ``(M, N, 3)`` float image in ``[0, 1]``.

    Parameters
    ----------
    channels : sequence of Channel
        Images of one shape.
    """
    shape = channels[0].image.shape
    rgb = np.zeros(shape + (3,), dtype=np.float32)
    for channel in channels:
        rgb += rescale(channel.image, channel.limits)[..., None] * np.asarray(COLORS[channel.color], np.float32)
    return np.clip(rgb, 0.0, 1.0)


def outline(labels, ids=None):
    """Return the inner boundary pixels of the labels (of ``ids`` only, if given).

    Examples
    --------
    >>> labels = np.zeros((5, 5), int); labels[1:4, 1:4] = 7
    >>> outline(labels).sum(), outline(labels, ids=[3]).sum()
    (np.int64(8), np.int64(0))
    """
    selected = labels if ids is None else np.where(np.isin(labels, list(ids)), labels, 0)
    return find_boundaries(selected, mode="inner") & (selected > 0)


def paint(rgb, mask, color):
    """Return ``rgb`` with the pixels of ``mask`` set to ``color``."""
    painted = rgb.copy()
    painted[mask] = COLORS[color]
    return painted


def cell_thumbnail(channels, cells, infected_ids=(), outlier_ids=()):
    """Compose a thumbnail with cell outlines and infected cells marked.

    Parameters
    ----------
    channels : sequence of Channel
    cells : (M, N) int ndarray
        Cell label image of the same shape as the channels.
    infected_ids, outlier_ids : iterable of int
        Cells outlined in magenta (infected) and grey (QC outliers); the
        others in white.

    Returns
    -------
    (M, N, 3) uint8 ndarray
    """
    rgb = composite(channels)
    rgb = paint(rgb, outline(cells), "White")
    rgb = paint(rgb, outline(cells, outlier_ids), "DimGray")
    rgb = paint(rgb, outline(cells, infected_ids), "Magenta")
    return np.round(rgb * 255).astype(np.uint8)
