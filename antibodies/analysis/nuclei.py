"""Nucleus segmentation with a StarDist model (pure science code).

The same :func:`normalize_percentile` is used for training
(:mod:`antibodies.training.train_nuclei_model`) and for inference
(:func:`segment_nuclei`), so the model always sees identically scaled input.
This module imports neither luigi nor h5py; stardist/tensorflow are only
touched through the ``model`` object handed in.
"""
import logging

import numpy as np

from .polygons import render_polygons

__all__ = [
    "MIN_CONTRAST_TO_NOISE", "binned_labels", "binned_mean", "contrast_to_noise", "counted_percentiles",
    "normalize_percentile", "segment_nuclei",
]

#: Below this contrast-to-noise ratio an image is treated as empty (no nuclei):
#: pure camera noise scores ~3, the faintest synthetic training styles >= 7.
MIN_CONTRAST_TO_NOISE = 5.0
_NOISE_ROW_STEP = 4

logger = logging.getLogger(__name__)


def binned_mean(image, factor):
    """Mean of ``factor`` x ``factor`` blocks of an (M, N) image, as float32.

    Rows and columns beyond the last whole block are dropped.

    Examples
    --------
    >>> binned_mean(np.arange(16.0).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    rows, columns = image.shape[0] // factor, image.shape[1] // factor
    blocks = np.asarray(image[: rows * factor, : columns * factor], dtype=np.float32)
    return blocks.reshape(rows, factor, columns, factor).mean((1, 3), dtype=np.float32)


def binned_labels(labels, factor):
    """The most frequent label of each ``factor`` x ``factor`` block of an (M, N) label image.

    A tie goes to the block's first pixel in reading order on blocks whose row
    + column is even and to its last one on the others, so no direction is
    preferred on average (the label image a binned model is trained on).

    Examples
    --------
    >>> labels = np.array([[1, 1, 0, 0], [1, 0, 2, 2], [0, 0, 2, 0], [0, 0, 3, 3]])
    >>> binned_labels(labels, 2).tolist()
    [[1, 2], [0, 3]]
    """
    rows, columns = labels.shape[0] // factor, labels.shape[1] // factor
    blocks = np.asarray(labels[: rows * factor, : columns * factor]).reshape(rows, factor, columns, factor)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(rows, columns, factor * factor)
    odd = (np.add.outer(np.arange(rows), np.arange(columns)) % 2).astype(bool)
    blocks = np.where(odd[..., None], blocks[..., ::-1], blocks)
    counts = (blocks[..., :, None] == blocks[..., None, :]).sum(-1)
    chosen = np.take_along_axis(blocks, counts.argmax(-1)[..., None], -1)[..., 0]
    return np.ascontiguousarray(chosen, dtype=np.int32)


def _is_small_uint(image):
    """True for 8- and 16-bit unsigned images (camera counts), whose statistics are taken by counting."""
    return image.dtype.kind == "u" and image.dtype.itemsize <= 2 and image.size > 0


def counted_percentiles(counts, q, offset=0):
    """``np.percentile(sample, q)`` (numpy's default 'linear' method) from the histogram of an integer sample.

    Reads the two order statistics around each percentile off the cumulative
    counts and interpolates between them as numpy does, so the values are
    the same bit for bit as ``np.percentile`` of the sample (as integers or
    as float32), without sorting or partitioning it.

    Parameters
    ----------
    counts : (K,) int array
        ``counts[v]`` is how many values of the sample equal ``v + offset``; at least one.
    q : sequence of float
        Percentiles in [0, 100].
    offset : int
        Value of bin 0.

    Returns
    -------
    (len(q),) float64 array

    Examples
    --------
    >>> sample = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    >>> q = (10, 50, 99.8)
    >>> counted_percentiles(np.bincount(sample), q).tolist() == np.percentile(sample, q).tolist()
    True
    """
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])
    virtual = (n - 1) * np.true_divide(np.asarray(q, dtype=np.float64), 100)
    previous = np.floor(virtual)
    gamma = virtual - previous
    below = np.clip(previous.astype(np.intp), 0, n - 1)
    above = np.clip(below + 1, 0, n - 1)
    low = np.searchsorted(cumulative, below, side="right").astype(np.float64) + offset
    high = np.searchsorted(cumulative, above, side="right").astype(np.float64) + offset
    difference = high - low
    result = low + difference * gamma
    np.subtract(high, difference * (1 - gamma), out=result, where=gamma >= 0.5)
    return result


def _percentiles(image, q):
    """``np.percentile`` of a float32 copy of ``image``, by counting when its values are 8/16-bit counts."""
    if _is_small_uint(image):
        return counted_percentiles(np.bincount(image.ravel()), q)
    return np.percentile(np.asarray(image, dtype=np.float32), q)


def normalize_percentile(image, low=1.0, high=99.8, eps=1e-20):
    """Scale an image so its ``low``/``high`` percentiles map to 0 and 1.

    Values outside the percentile range are not clipped (as in
    ``csbdeep.utils.normalize``).

    Parameters
    ----------
    image : numpy.ndarray
        (M, N) image of any numeric dtype.
    low, high : float
        Percentiles (0-100) mapped to 0 and 1.
    eps : float
        Guard against division by zero for constant images.

    Returns
    -------
    numpy.ndarray
        (M, N) float32 normalised image.
    """
    image = np.asarray(image)
    if _is_small_uint(image):  # every distinct value scaled once, then looked up (the same float arithmetic)
        counts = np.bincount(image.ravel())
        low_value, high_value = counted_percentiles(counts, (low, high))
        return _scaled(np.arange(counts.size, dtype=np.float32), low_value, high_value, eps)[image]
    low_value, high_value = np.percentile(np.asarray(image, dtype=np.float32), (low, high))
    return _scaled(image.astype(np.float32, copy=False), low_value, high_value, eps)


def _scaled(image, low_value, high_value, eps):
    """``(image - low) / (high - low + eps)`` as float32, computed in float64 (numpy float64 bounds)."""
    return ((image - low_value) / (high_value - low_value + eps)).astype(np.float32)


def _median_float32(values):
    """``np.median`` of a float32 copy of an int array, by counting (exact: half-integers below 2**23)."""
    offset = int(values.min())
    return np.float32(counted_percentiles(np.bincount(values - offset), (50.0,), offset)[0])


def _noise_sigma(image):
    """Robust (MAD) pixel noise from horizontal differences of every fourth row, as float32 arithmetic."""
    if _is_small_uint(image) and image.shape[1] > 1:
        differences = np.diff(image[::_NOISE_ROW_STEP].astype(np.int32), axis=1).ravel()
        median = _median_float32(differences)
        deviations = np.abs(2 * differences - int(2 * median))  # twice |d - median|: integers
        mad = np.float32(_median_float32(deviations) / np.float32(2))
    else:
        differences = np.diff(np.asarray(image, dtype=np.float32)[::_NOISE_ROW_STEP], axis=1).ravel()
        mad = np.median(np.abs(differences - np.median(differences)))
    return 1.4826 * mad / np.sqrt(2.0)


def contrast_to_noise(image, high=99.8):
    """Return the bright-structure contrast of an image in units of its pixel noise.

    ``(percentile(image, high) - median(image)) / sigma`` where the noise
    ``sigma`` is a robust (MAD) estimate from horizontal pixel differences
    (of every fourth row: plenty of samples), which ignores smooth background
    variation.  8- and 16-bit images are measured by counting their values
    (the same numbers as sorting them, 6x faster).

    Parameters
    ----------
    image : numpy.ndarray
        (M, N) image.
    high : float
        Percentile taken as the bright-structure level.

    Returns
    -------
    float
        About 3 for pure noise, tens to hundreds for images with nuclei.
    """
    image = np.asarray(image)
    sigma = _noise_sigma(image)
    high_value, median = _percentiles(image, (high, 50.0))
    return float((high_value - median) / max(sigma, 1e-6))


def segment_nuclei(model, image, prob_thresh=None, nms_thresh=None, normalizer=normalize_percentile,
                   n_tiles=None, min_contrast=MIN_CONTRAST_TO_NOISE, binning=None, border=0):
    """Segment nuclei in one 2D image with a StarDist2D model.

    Parameters
    ----------
    model : stardist.models.StarDist2D
        Loaded model (e.g. from :func:`antibodies.models.load_stardist_model`).
    image : numpy.ndarray
        (M, N) nuclei channel (e.g. DAPI), raw camera counts.
    prob_thresh, nms_thresh : float, optional
        Detection thresholds; ``None`` uses the model's optimised thresholds
        (``thresholds.json`` in the model folder).
    normalizer : callable
        Maps the raw (M, N) image to the float image the model was trained
        on; defaults to :func:`normalize_percentile` (1, 99.8).
    n_tiles : tuple of int, optional
        Tiling for very large images, passed to ``predict_instances``.
    min_contrast : float or None
        Images whose :func:`contrast_to_noise` is below this value (empty
        wells: camera noise only) get no nuclei, because percentile
        normalisation would otherwise stretch the noise into fake nuclei.
        ``None`` disables the check.
    binning : int, optional
        Run the model on the image binned ``binning`` x ``binning``
        (:func:`binned_mean`) and draw its polygons back on the (M, N) image;
        ``None`` takes the model's own ``input_binning`` (1 if it has none).
    border : int
        Candidates within ``border`` cells of the model's output grid from
        the image edge are dropped (StarDist's ``b``). The default 0 keeps
        nuclei cut by the image edge; StarDist's own 2 loses those whose
        visible part is narrower than a band of 8 px with a 4 x 4 grid or a
        2 x 2 grid on a binned image (docs/performance.md, "Nuclei at the
        image border").

    Returns
    -------
    numpy.ndarray
        (M, N) int32 label image, 0 background, nuclei 1..K: StarDist's
        labels, drawn by :func:`~antibodies.analysis.polygons.render_polygons`
        (the same image, 3x faster than StarDist's loop over the nuclei).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"segment_nuclei expects an (M, N) image, got shape {image.shape}")
    if min_contrast is not None and contrast_to_noise(image) < min_contrast:
        logger.info("image contrast below %.1f x noise: treated as empty (no nuclei)", min_contrast)
        return np.zeros(image.shape, np.int32)
    factor = binning or getattr(model, "input_binning", 1)
    model_input = binned_mean(image, factor) if factor > 1 else image
    normalized = normalizer(model_input) if normalizer is not None else model_input.astype(np.float32)
    _, details = model.predict_instances(normalized, axes="YX", prob_thresh=prob_thresh,
                                         nms_thresh=nms_thresh, n_tiles=n_tiles, return_labels=False,
                                         show_tile_progress=False, verbose=False, predict_kwargs={"b": border})
    logger.debug("segmented %d nuclei in an image of shape %s", len(details["points"]), image.shape)
    coord = details["coord"] * factor + (factor - 1) / 2 if factor > 1 else details["coord"]
    return render_polygons(coord, details["prob"], image.shape)
