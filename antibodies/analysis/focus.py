"""How sharp an image is: the edges of its nuclei, against the plate's other images.

A field out of focus (a failed autofocus, a tilted well bottom) still segments and scores, but its cells and
means are wrong. The steepest slope across a blurred step is its contrast / (sigma sqrt(2 pi)), so the slope at
the nuclei's edges over their contrast falls as the blur grows, whatever the nuclei's brightness or number.
"""
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from .features import cell_features

__all__ = ["EDGE_SIGMA", "nucleus_edge_sharpness", "focus_warnings"]

EDGE_SIGMA = 1.0
"""Scale (px) of the Gaussian derivative that measures the slope at a nucleus edge."""


def nucleus_edge_sharpness(image, labels):
    """Median over the nuclei of the slope at their edge over their contrast (1/px).

    The slope is the mean Gaussian gradient magnitude (`EDGE_SIGMA`) over a nucleus's edge pixels; the
    contrast its median intensity less the median of the image's pixels outside every nucleus.

    Parameters
    ----------
    image : (M, N) array
        The nuclei channel.
    labels : (M, N) int array
        Nucleus labels; 0 is background.

    Returns
    -------
    float
        About ``1 / (sqrt(2 pi) x sqrt(sigma ** 2 + EDGE_SIGMA ** 2))`` for nuclei blurred by a Gaussian of
        ``sigma`` px; NaN without a nucleus brighter than its surroundings.

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disk = ((yy - 32) ** 2 + (xx - 32) ** 2 < 15 ** 2).astype(int)
    >>> sharp = nucleus_edge_sharpness(ndi.gaussian_filter(100.0 * disk, 1.0), disk)
    >>> soft = nucleus_edge_sharpness(ndi.gaussian_filter(100.0 * disk, 4.0), disk)
    >>> round(sharp, 2), round(soft, 2)  # 1 / (sqrt(2 pi) sqrt(2)) = 0.28, 1 / (sqrt(2 pi) sqrt(17)) = 0.10
    (0.27, 0.11)
    """
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    if not ids.size:
        return float("nan")
    image = np.asarray(image, dtype=np.float32)
    slope = ndi.gaussian_gradient_magnitude(image, EDGE_SIGMA)
    edges = np.where(find_boundaries(labels, mode="inner"), labels, 0)
    inside = cell_features(labels, image, quantiles=())["medians"].to_numpy()
    contrast = inside - float(np.median(image[labels == 0])) if (labels == 0).any() else np.full(ids.size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = ndi.mean(slope, edges, ids) / contrast
    ratios = ratios[np.isfinite(ratios) & (contrast > 0)]
    return float(np.median(ratios)) if ratios.size else float("nan")


def focus_warnings(images, min_ratio=0.6):
    """Warnings for images whose nuclei's edges are much softer than the plate's.

    Parameters
    ----------
    images : pandas.DataFrame
        ``image_name, well_name, nucleus_edge_sharpness``.
    min_ratio : float
        Smallest accepted sharpness, relative to the median over the plate's images (on ten tune plates
        every image was within 0.87-1.32 of its plate's; a site blurred by 6 px read 0.46-0.48).

    Returns
    -------
    pandas.DataFrame
        ``image_name, well_name, channel, reason``, one row per warning (as
        `antibodies.analysis.qc.well_mate_warnings`).

    Examples
    --------
    >>> images = pd.DataFrame({"image_name": list("abcd"), "well_name": ["A01", "A01", "A02", "A02"],
    ...                        "nucleus_edge_sharpness": [0.25, 0.24, 0.26, 0.09]})
    >>> focus_warnings(images)["reason"].tolist()
    ['nuclei edges 0.37 as sharp as the plate median (< 0.6): out of focus?']
    """
    sharpness = images["nucleus_edge_sharpness"].astype(float)
    relative = sharpness / sharpness.median()
    rows = [(images.at[index, "image_name"], images.at[index, "well_name"], "nuclei",
             f"nuclei edges {relative[index]:.2g} as sharp as the plate median (< {min_ratio:g}): out of focus?")
            for index in images.index[(relative < min_ratio).to_numpy()]]
    return pd.DataFrame(rows, columns=["image_name", "well_name", "channel", "reason"])
