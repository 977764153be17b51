"""How sharp an image is: the edges of its nuclei, against the plate's other images.

A field out of focus (a failed autofocus, a tilted well bottom) still segments and scores, but its cells and
means are wrong (`antibodies.analysis.qc.OutOfFocusQC` leaves such an image out). The steepest slope across a
blurred step is its contrast / (sigma sqrt(2 pi)), so the slope at the nuclei's edges over their contrast falls
as the blur grows, whatever the nuclei's brightness or number.
"""
import numpy as np
from scipy import ndimage as ndi

from .features import cell_features, label_edges

__all__ = ["EDGE_SIGMA", "nucleus_edge_sharpness"]

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
    edges = np.where(label_edges(labels), labels, 0)
    inside = cell_features(labels, image, quantiles=())["medians"].to_numpy()
    contrast = inside - float(np.median(image[labels == 0])) if (labels == 0).any() else np.full(ids.size, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = ndi.mean(slope, edges, ids) / contrast
    ratios = ratios[np.isfinite(ratios) & (contrast > 0)]
    return float(np.median(ratios)) if ratios.size else float("nan")
