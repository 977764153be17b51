"""Background intensities from integer intensity histograms.

Every image contributes, per channel, two ``(65536,)`` int64 histograms over
integer intensity bins (value ``v`` is counted in bin
``floor(clip(v, 0, 65535))``): one of its background pixels
(``cell_segmentation == 0``) and one of all its pixels.  Medians and MADs of
summed histograms are exact for integer data, so plate and well backgrounds
are computed by streaming over the images, never holding a plate's pixels.

The flow is::

    histograms = accumulate_histograms(records, outlier_images, strategy.total_wells)
    summary = strategy.compute(histograms)       # channel -> BackgroundStats (plate summary)
    per_image = strategy.per_image(histograms)   # image -> channel -> BackgroundStats (subtracted)

``strategy`` is picked by name from ``BACKGROUND_STRATEGIES`` (see
``make_background_strategy``):

``"local"``
    each cell the background under it (``local_background`` of the serum
    cell tables, `antibodies.analysis.local_background`); the per-image
    values recorded (and used for the marker and for QC) are ``"image"``'s.
``"image"``
    each image's own background pixels (its well's, then the plate's, when
    an image has too few); the summary is the median over images.
``"well"``
    each well's background pixels, pooled over its non-outlier images.
``"plate"`` (also ``"default"``, its batchlib name)
    median / MAD of the background pixels of all non-outlier images.
``"empty_wells"``
    median / MAD of *all* pixels of the given (cell-free) wells.
``"min"``
    the valid well with the lowest background median, per channel.
``"fixed"``
    numbers given per channel (MAD given or NaN).

The last four give every image the same value.

MAD is always the unscaled median absolute deviation,
``median(|x - median(x)|)``.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "N_BINS",
    "BackgroundStats",
    "HistogramSpan",
    "ImageHistograms",
    "PlateHistograms",
    "intensity_histogram",
    "histogram_median",
    "histogram_mad",
    "histogram_stats",
    "accumulate_histograms",
    "plate_background_counts",
    "image_background_table",
    "well_background_table",
    "backgrounds_table",
    "image_backgrounds_table",
    "PlateMedianBackground",
    "ImageBackground",
    "LocalBackground",
    "WellBackground",
    "EmptyWellsBackground",
    "MinWellBackground",
    "FixedBackground",
    "BACKGROUND_STRATEGIES",
    "make_background_strategy",
]

logger = logging.getLogger(__name__)

N_BINS = 65536
"""Number of integer intensity bins (16-bit range)."""


@dataclass(frozen=True)
class BackgroundStats:
    """Median and unscaled MAD of a channel's background intensities.

    Attributes
    ----------
    median : float
        Median intensity (NaN when no pixel was counted).
    mad : float
        Unscaled median absolute deviation ``median(|x - median|)``
        (NaN when unknown).
    """

    median: float
    mad: float = float("nan")


@dataclass(frozen=True)
class HistogramSpan:
    """Histogram counts over the contiguous bins ``start .. start + len(counts) - 1``.

    A compact form of a ``(65536,)`` histogram that stores only the range
    between its first and last non-empty bin, so per-well sums stay small.

    Attributes
    ----------
    start : int
        Intensity of ``counts[0]``.
    counts : (K,) int64 ndarray
        Pixel counts; ``K == 0`` for an empty histogram.
    """

    start: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def dense(self):
        """Return the full ``(65536,)`` int64 histogram."""
        out = np.zeros(N_BINS, dtype=np.int64)
        out[self.start:self.start + self.counts.size] = self.counts
        return out

    def stats(self):
        """Return the `BackgroundStats` of the counted intensities."""
        return BackgroundStats(_median(self.start, self.counts), _mad(self.start, self.counts))


@dataclass(frozen=True)
class ImageHistograms:
    """Per-channel histograms of one image: the input record of the accumulation.

    Attributes
    ----------
    image_name : str
        E.g. ``"WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC_Seq0123"``.
    well_name : str
        E.g. ``"C05"``.
    background : Mapping[str, (65536,) int64 ndarray]
        Channel -> histogram of the background pixels (``cell_segmentation == 0``).
    total : Mapping[str, (65536,) int64 ndarray]
        Channel -> histogram of all pixels; only read for wells listed in
        ``total_wells`` of `accumulate_histograms`.
    """

    image_name: str
    well_name: str
    background: Mapping[str, np.ndarray]
    total: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class PlateHistograms:
    """Result of `accumulate_histograms`: per-image stats and per-well sums.

    Attributes
    ----------
    channels : tuple of str
        Channels, in the order of the first record.
    image_wells : Mapping[str, str]
        Image name -> well name, for every image (outliers included).
    image_stats : Mapping[str, Mapping[str, BackgroundStats]]
        Image name -> channel -> background stats of that image alone, for
        every image (outliers included).
    well_background : Mapping[str, Mapping[str, HistogramSpan]]
        Well -> channel -> summed background histogram of the well's
        non-outlier images (empty span when all its images are outliers).
    well_total : Mapping[str, Mapping[str, HistogramSpan]]
        Well -> channel -> summed all-pixel histogram of all images of the
        well, only for the requested ``total_wells``.
    outlier_images : frozenset of str
        Images left out of ``well_background``.
    """

    channels: tuple
    image_wells: Mapping[str, str]
    image_stats: Mapping[str, Mapping[str, BackgroundStats]]
    well_background: Mapping[str, Mapping[str, HistogramSpan]]
    well_total: Mapping[str, Mapping[str, HistogramSpan]]
    outlier_images: frozenset = frozenset()
    image_pixels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Image name -> channel -> number of background pixels counted."""


# --------------------------------------------------------------------------
# histograms and their exact statistics
# --------------------------------------------------------------------------

def intensity_histogram(image, mask=None):
    """Count the pixels of an image per integer intensity bin.

    Parameters
    ----------
    image : (M, N) array_like
        Intensities (integer or float).
    mask : (M, N) bool array_like, optional
        Pixels to count; all pixels when None.

    Returns
    -------
    counts : (65536,) int64 ndarray
        ``counts[b]`` is the number of (masked) pixels with
        ``floor(clip(v, 0, 65535)) == b``.  NaN pixels are not counted.

    Examples
    --------
    >>> counts = intensity_histogram(np.array([[0.5, 2.0], [2.9, 70000.0]]))
    >>> counts[[0, 2, 65535]].tolist()
    [1, 2, 1]
    >>> int(intensity_histogram(np.array([[1, 2]]), np.array([[True, False]]))[1])
    1
    """
    values = np.asarray(image)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {values.shape}")
        values = values[mask]
    values = values.ravel()
    if values.dtype.kind == "u" and np.iinfo(values.dtype).max < N_BINS:  # camera counts: every value is a bin
        return np.bincount(values, minlength=N_BINS).astype(np.int64)
    if values.dtype.kind == "f":
        values = np.floor(np.clip(values[~np.isnan(values)], 0, N_BINS - 1))
    bins = np.clip(values.astype(np.int64), 0, N_BINS - 1)
    return np.bincount(bins, minlength=N_BINS).astype(np.int64)


def _as_counts(counts):
    """Validate a 1D non-negative integer histogram."""
    counts = np.asarray(counts)
    if counts.ndim != 1:
        raise ValueError(f"expected a 1D histogram, got shape {counts.shape}")
    if counts.size and counts.min() < 0:
        raise ValueError("histogram counts must be non-negative")
    return counts.astype(np.int64, copy=False)


def _span(counts):
    """Trim a dense histogram to its non-empty range."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 0:
        return HistogramSpan()
    return HistogramSpan(int(nonzero[0]), counts[nonzero[0]:nonzero[-1] + 1].copy())


def _add_spans(a, b):
    """Sum of two spans."""
    if b.counts.size == 0:
        return a
    if a.counts.size == 0:
        return b
    start = min(a.start, b.start)
    stop = max(a.start + a.counts.size, b.start + b.counts.size)
    out = np.zeros(stop - start, dtype=np.int64)
    out[a.start - start:a.start - start + a.counts.size] += a.counts
    out[b.start - start:b.start - start + b.counts.size] += b.counts
    return HistogramSpan(start, out)


def _weighted_median(offset, counts):
    """Median of the values ``offset + i`` counted ``counts[i]`` times (NaN if none).

    For an even number of values this is the mean of the two middle ones.
    """
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    cumulative = np.cumsum(counts)
    lower = np.searchsorted(cumulative, (total - 1) // 2, side="right")
    upper = np.searchsorted(cumulative, total // 2, side="right")
    return offset + (lower + upper) / 2


def _median(start, counts):
    return float(_weighted_median(start, counts))


def _mad(start, counts):
    """Unscaled MAD of the values ``start + i`` counted ``counts[i]`` times."""
    center = _median(start, counts)
    if np.isnan(center):
        return float("nan")
    center -= start
    low, high = int(np.floor(center)), int(np.ceil(center))
    above = counts[high:]             # deviations (high - center) + 0, 1, ...
    below = counts[:low + 1][::-1]    # deviations (center - low) + 0, 1, ...
    deviations = np.zeros(max(above.size, below.size), dtype=np.int64)
    deviations[:above.size] += above
    deviations[:below.size] += below
    if low == high:  # the central bin was counted on both sides
        deviations[0] -= counts[low]
    return float(_weighted_median(high - center, deviations))


def histogram_median(counts):
    """Exact median of integer data given as a histogram.

    Parameters
    ----------
    counts : (K,) array_like of int
        ``counts[v]`` is how often the value ``v`` occurs.

    Returns
    -------
    float
        The median (mean of the two middle values for an even count), NaN
        for an empty histogram.

    Examples
    --------
    >>> histogram_median([0, 1, 1, 1, 1])   # values 1, 2, 3, 4
    2.5
    >>> histogram_median([0, 0])
    nan
    """
    counts = _as_counts(counts)
    return _median(0, counts)


def histogram_mad(counts):
    """Exact unscaled median absolute deviation of integer data given as a histogram.

    Parameters
    ----------
    counts : (K,) array_like of int
        ``counts[v]`` is how often the value ``v`` occurs.

    Returns
    -------
    float
        ``median(|x - median(x)|)``, NaN for an empty histogram.

    Examples
    --------
    >>> histogram_mad([0, 1, 1, 1, 1])       # |1, 2, 3, 4 - 2.5| -> 1.5, .5, .5, 1.5
    1.0
    >>> histogram_mad([0, 0, 0, 2, 0, 0, 0, 0, 0, 1])   # values 3, 3, 9
    0.0
    """
    counts = _as_counts(counts)
    span = _span(counts)
    return _mad(span.start, span.counts)


def histogram_stats(counts):
    """Median and MAD of a histogram.

    Parameters
    ----------
    counts : (K,) array_like of int
        Histogram of integer values.

    Returns
    -------
    BackgroundStats

    Examples
    --------
    >>> histogram_stats([0, 1, 1, 1, 1])
    BackgroundStats(median=2.5, mad=1.0)
    """
    return _span(_as_counts(counts)).stats()


# --------------------------------------------------------------------------
# streaming accumulation over a plate
# --------------------------------------------------------------------------

def _check_channels(record, channels):
    found = tuple(record.background)
    if channels is not None and set(found) != set(channels):
        raise ValueError(
            f"image {record.image_name!r} has channels {sorted(found)}, "
            f"expected {sorted(channels)}")
    return found if channels is None else channels


def _record_spans(record, histograms, channels):
    """Trimmed spans of one record's histograms, validated."""
    spans = {}
    for channel in channels:
        try:
            counts = _as_counts(histograms[channel])
        except KeyError:
            raise ValueError(
                f"image {record.image_name!r} has no histogram for {channel!r}") from None
        if counts.shape != (N_BINS,):
            raise ValueError(
                f"histogram of {record.image_name!r}/{channel!r} has shape {counts.shape}, "
                f"expected ({N_BINS},)")
        spans[channel] = _span(counts)
    return spans


def _add_to(sums, well, spans):
    current = sums.setdefault(well, {})
    for channel, span in spans.items():
        current[channel] = _add_spans(current.get(channel, HistogramSpan()), span)


def accumulate_histograms(records, outlier_images=(), total_wells=()):
    """Stream over per-image histograms and keep per-image stats and per-well sums.

    Memory grows with the number of wells times the intensity range actually
    used, never with the number of pixels or images.

    Parameters
    ----------
    records : Iterable[ImageHistograms]
        One record per image; consumed once.
    outlier_images : Collection of str, optional
        Image names whose background pixels are left out of the well (and so
        plate) sums.  Their per-image stats are still reported.
    total_wells : Collection of str, optional
        Wells whose all-pixel histograms are summed (needed by
        `EmptyWellsBackground`).  These sums include *every* image of the
        well: cell-free wells fail the cell-count QC by design.  Drop images
        from ``records`` to leave them out.

    Returns
    -------
    PlateHistograms

    Examples
    --------
    >>> counts = np.zeros(N_BINS, np.int64); counts[[10, 20]] = 1
    >>> plate = accumulate_histograms([ImageHistograms("a", "A01", {"dapi": counts})])
    >>> plate.image_stats["a"]["dapi"]
    BackgroundStats(median=15.0, mad=5.0)
    """
    outlier_images = frozenset(outlier_images)
    total_wells = frozenset(total_wells)
    channels = None
    image_wells, image_stats, image_pixels, well_background, well_total = {}, {}, {}, {}, {}
    for record in records:
        if record.image_name in image_wells:
            raise ValueError(f"duplicate image {record.image_name!r}")
        channels = _check_channels(record, channels)
        spans = _record_spans(record, record.background, channels)
        image_wells[record.image_name] = record.well_name
        image_stats[record.image_name] = {ch: span.stats() for ch, span in spans.items()}
        image_pixels[record.image_name] = {ch: int(span.counts.sum()) for ch, span in spans.items()}
        if record.image_name in outlier_images:
            spans = {ch: HistogramSpan() for ch in channels}
        _add_to(well_background, record.well_name, spans)
        if record.well_name in total_wells:
            _add_to(well_total, record.well_name, _record_spans(record, record.total, channels))
    unknown = outlier_images - set(image_wells)
    if unknown:
        logger.warning("%d outlier image(s) not on the plate, e.g. %r", len(unknown), min(unknown))
    return PlateHistograms(tuple(channels or ()), image_wells, image_stats,
                           well_background, well_total, outlier_images, image_pixels)


def _sum_wells(sums, wells, channel):
    total = HistogramSpan()
    for well in wells:
        total = _add_spans(total, sums[well][channel])
    return total


def plate_background_counts(histograms, channel):
    """Summed background histogram of all non-outlier images of the plate.

    Parameters
    ----------
    histograms : PlateHistograms
    channel : str

    Returns
    -------
    (65536,) int64 ndarray
    """
    return _sum_wells(histograms.well_background, histograms.well_background, channel).dense()


def _stats_columns(stats_by_channel, channels):
    row = {}
    for channel in channels:
        stats = stats_by_channel[channel]
        row[f"{channel}_median"] = stats.median
        row[f"{channel}_mad"] = stats.mad
    return row


def _stats_frame(keys, rows, channels):
    columns = list(keys) + [f"{ch}_{stat}" for ch in channels for stat in ("median", "mad")]
    return pd.DataFrame(rows, columns=columns)


def image_background_table(histograms):
    """Per-image background table (all images, outliers included).

    Parameters
    ----------
    histograms : PlateHistograms

    Returns
    -------
    pandas.DataFrame
        Columns ``image_name, well_name`` then ``<channel>_median,
        <channel>_mad`` per channel, in record order.
    """
    channels = histograms.channels
    rows = [{"image_name": image, "well_name": histograms.image_wells[image],
             **_stats_columns(stats, channels)}
            for image, stats in histograms.image_stats.items()]
    return _stats_frame(("image_name", "well_name"), rows, channels)


def well_background_table(histograms):
    """Per-well background table over each well's non-outlier images.

    Parameters
    ----------
    histograms : PlateHistograms

    Returns
    -------
    pandas.DataFrame
        Columns ``well_name`` then ``<channel>_median, <channel>_mad`` per
        channel, sorted by well; NaN for wells whose images are all outliers.
    """
    channels = histograms.channels
    rows = [{"well_name": well,
             **_stats_columns({ch: spans[ch].stats() for ch in channels}, channels)}
            for well, spans in sorted(histograms.well_background.items())]
    return _stats_frame(("well_name",), rows, channels)


def image_backgrounds_table(per_image, image_wells):
    """Table of the backgrounds each image uses (``per_image`` of a strategy).

    Parameters
    ----------
    per_image : Mapping[str, Mapping[str, BackgroundStats]]
        Image name -> channel -> stats.
    image_wells : Mapping[str, str]
        Image name -> well name.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_name, well_name`` then ``<channel>_median,
        <channel>_mad`` per channel.

    Examples
    --------
    >>> table = image_backgrounds_table({"a": {"c": BackgroundStats(1.0, 2.0)}}, {"a": "A01"})
    >>> table.values.tolist()
    [['a', 'A01', 1.0, 2.0]]
    """
    channels = list(next(iter(per_image.values()), {}))
    rows = [{"image_name": image, "well_name": image_wells[image], **_stats_columns(stats, channels)}
            for image, stats in per_image.items()]
    return _stats_frame(("image_name", "well_name"), rows, channels)


def backgrounds_table(backgrounds):
    """One-row table of plate backgrounds.

    Parameters
    ----------
    backgrounds : Mapping[str, BackgroundStats]
        Channel -> stats, e.g. the result of a strategy's ``compute``.

    Returns
    -------
    pandas.DataFrame
        One row with ``<channel>_median, <channel>_mad`` per channel.

    Examples
    --------
    >>> backgrounds_table({"serum_IgG": BackgroundStats(100.0, 5.0)}).columns.tolist()
    ['serum_IgG_median', 'serum_IgG_mad']
    """
    return pd.DataFrame([_stats_columns(backgrounds, list(backgrounds))])


# --------------------------------------------------------------------------
# background strategies
# --------------------------------------------------------------------------

def _channels(histograms, channels):
    return tuple(histograms.channels if channels is None else channels)


class _OneForThePlate:
    """Mixin of the plate-level strategies: every image gets the plate background."""

    per_cell = False

    def per_image(self, histograms, channels=None):
        """Return image -> channel -> `BackgroundStats`, the same for every image."""
        plate = self.compute(histograms, channels)
        return {image: plate for image in histograms.image_wells}


def _typical_image(per_image, channels):
    """Median over images of the per-image medians and MADs, per channel."""
    summary = {}
    for channel in channels:
        stats = [by_channel[channel] for by_channel in per_image.values()]
        medians = [s.median for s in stats if not np.isnan(s.median)]
        mads = [s.mad for s in stats if not np.isnan(s.mad)]
        summary[channel] = BackgroundStats(float(np.median(medians)) if medians else float("nan"),
                                           float(np.median(mads)) if mads else float("nan"))
    return summary


@dataclass(frozen=True)
class PlateMedianBackground(_OneForThePlate):
    """Median / MAD of the background pixels of all non-outlier images."""

    total_wells = frozenset()

    def compute(self, histograms, channels=None):
        """Return channel -> `BackgroundStats` for a `PlateHistograms`."""
        wells = histograms.well_background
        return {ch: _sum_wells(wells, wells, ch).stats() for ch in _channels(histograms, channels)}


def _plate_and_well_stats(histograms, channels, min_pixels):
    """Plate stats per channel, and per well its own stats or, below ``min_pixels`` pixels, the plate's."""
    plate = PlateMedianBackground().compute(histograms, channels)
    by_well = {well: {ch: spans[ch].stats() if spans[ch].counts.sum() >= min_pixels else plate[ch]
                      for ch in channels} for well, spans in histograms.well_background.items()}
    return plate, by_well


@dataclass(frozen=True)
class ImageBackground:
    """Each image's own background pixels (``cell_segmentation == 0``).

    Camera offset, haze, medium and autofluorescence differ from image to
    image (by hundreds of counts on real plates), so each image subtracts its
    own median.  An image with fewer than ``min_pixels`` background pixels
    in a channel (a confluent field) takes its well's background, or the
    plate's when the well has too few as well.

    Attributes
    ----------
    min_pixels : int
        Fewest background pixels an image (or well) needs for its own value.

    Examples
    --------
    >>> low, high = np.zeros(N_BINS, np.int64), np.zeros(N_BINS, np.int64)
    >>> low[[100, 102]] = 5000; high[[300, 304]] = 5000
    >>> plate = accumulate_histograms([ImageHistograms("a", "A01", {"c": low}),
    ...                                ImageHistograms("b", "A02", {"c": high})])
    >>> {name: s["c"].median for name, s in ImageBackground().per_image(plate).items()}
    {'a': 101.0, 'b': 302.0}
    """

    min_pixels: int = 2000
    total_wells = frozenset()
    per_cell = False

    def per_image(self, histograms, channels=None):
        """Return image -> channel -> `BackgroundStats` (own, else well, else plate)."""
        channels = _channels(histograms, channels)
        plate, well_stats = _plate_and_well_stats(histograms, channels, self.min_pixels)
        result = {}
        for image, own in histograms.image_stats.items():
            pixels = histograms.image_pixels.get(image, {})
            fallback = well_stats.get(histograms.image_wells[image], plate)
            result[image] = {ch: own[ch] if pixels.get(ch, 0) >= self.min_pixels else fallback[ch]
                             for ch in channels}
        return result

    def compute(self, histograms, channels=None):
        """Return channel -> the typical image background (median of the per-image values)."""
        channels = _channels(histograms, channels)
        valid = {image: stats for image, stats in self.per_image(histograms, channels).items()
                 if image not in histograms.outlier_images}
        return _typical_image(valid, channels)


@dataclass(frozen=True)
class LocalBackground(ImageBackground):
    """Each cell subtracts the background under it; images record `ImageBackground`'s values.

    Haze and uneven illumination make the background vary across a field;
    the scores subtract each cell's ``local_background`` (serum cell tables),
    the mean under the cell of a smooth surface through the image's
    background pixels (`antibodies.analysis.local_background`).  The
    per-image values (own background pixels) still serve the marker, the QC
    rules and the report.
    """

    per_cell = True


@dataclass(frozen=True)
class WellBackground:
    """Each well's background pixels (its non-outlier images pooled).

    Images of a well share the well's value; a well whose images are all
    outliers takes the plate background.
    """

    total_wells = frozenset()
    per_cell = False

    def per_image(self, histograms, channels=None):
        """Return image -> channel -> `BackgroundStats` of the image's well."""
        plate, by_well = _plate_and_well_stats(histograms, _channels(histograms, channels), min_pixels=1)
        return {image: by_well.get(well, plate) for image, well in histograms.image_wells.items()}

    def compute(self, histograms, channels=None):
        """Return channel -> the typical well background (median of the per-well values)."""
        channels = _channels(histograms, channels)
        wells = histograms.well_background
        valid = {well: {ch: spans[ch].stats() for ch in channels}
                 for well, spans in wells.items() if all(spans[ch].counts.size for ch in channels)}
        return _typical_image(valid, channels)


@dataclass(frozen=True)
class EmptyWellsBackground(_OneForThePlate):
    """Median / MAD of all pixels of cell-free background wells.

    Attributes
    ----------
    wells : tuple of str
        E.g. ``("H01", "G01")``; their all-pixel histograms must have been
        accumulated (``total_wells=strategy.total_wells``).
    """

    wells: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "wells", tuple(self.wells))

    @property
    def total_wells(self):
        """Wells whose all-pixel histograms this strategy needs."""
        return frozenset(self.wells)

    def compute(self, histograms, channels=None):
        """Return channel -> `BackgroundStats`; raises if no listed well was accumulated."""
        present = [well for well in self.wells if well in histograms.well_total]
        missing = sorted(set(self.wells) - set(present))
        if not present:
            raise ValueError(f"none of the background wells {list(self.wells)} were accumulated")
        if missing:
            logger.warning("background wells %s missing; using %s", missing, present)
        totals = histograms.well_total
        return {ch: _sum_wells(totals, present, ch).stats()
                for ch in _channels(histograms, channels)}


@dataclass(frozen=True)
class MinWellBackground(_OneForThePlate):
    """Per channel, the background of the valid well with the lowest median.

    A well is valid when it has at least one non-outlier image; ties go to
    the first well in sorted order.
    """

    total_wells = frozenset()

    def compute(self, histograms, channels=None):
        """Return channel -> `BackgroundStats` of the selected well."""
        result = {}
        for channel in _channels(histograms, channels):
            stats = {well: spans[channel].stats()
                     for well, spans in sorted(histograms.well_background.items())
                     if spans[channel].counts.size}
            if not stats:
                result[channel] = BackgroundStats(float("nan"), float("nan"))
                continue
            well = min(stats, key=lambda w: stats[w].median)
            logger.info("background of %s from well %s", channel, well)
            result[channel] = stats[well]
        return result


@dataclass(frozen=True)
class FixedBackground(_OneForThePlate):
    """Background values given per channel.

    Attributes
    ----------
    medians : Mapping[str, float]
        Channel -> background median.
    mads : Mapping[str, float]
        Channel -> background MAD; NaN for channels not listed.
    """

    medians: Mapping = field(default_factory=dict)
    mads: Mapping = field(default_factory=dict)
    total_wells = frozenset()

    def compute(self, histograms=None, channels=None):
        """Return channel -> `BackgroundStats`.

        ``channels`` defaults to the channels of ``histograms``, or to those
        of ``medians`` when ``histograms`` is None; a channel without a
        median raises ``ValueError``.
        """
        if channels is None:
            channels = self.medians if histograms is None else histograms.channels
        channels = tuple(channels)
        missing = [ch for ch in channels if ch not in self.medians]
        if missing:
            raise ValueError(f"no fixed background for channel(s) {missing}")
        return {ch: BackgroundStats(float(self.medians[ch]), float(self.mads.get(ch, float("nan"))))
                for ch in channels}


BACKGROUND_STRATEGIES = {
    "local": LocalBackground,
    "image": ImageBackground,
    "well": WellBackground,
    "plate": PlateMedianBackground,
    "default": PlateMedianBackground,
    "empty_wells": EmptyWellsBackground,
    "min": MinWellBackground,
    "fixed": FixedBackground,
}
"""Background strategies keyed by their config name (``default`` is the old name of ``plate``)."""


def make_background_strategy(name, **options):
    """Build a plate background strategy from its config name.

    Parameters
    ----------
    name : {"local", "image", "well", "plate", "default", "empty_wells", "min", "fixed"}
    **options
        Passed to the strategy, e.g. ``wells=("H01", "G01")`` for
        ``"empty_wells"``, ``medians=..., mads=...`` for ``"fixed"``.

    Returns
    -------
    strategy
        Has ``total_wells``, ``per_cell`` (cells subtract their own
        ``local_background``), ``compute(histograms, channels=None)`` (the
        plate summary) and ``per_image(histograms, channels=None)`` (what
        each image subtracts).

    Examples
    --------
    >>> make_background_strategy("empty_wells", wells=("H01", "G01")).total_wells == {"H01", "G01"}
    True
    """
    try:
        cls = BACKGROUND_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown background strategy {name!r}; "
                         f"choose from {sorted(BACKGROUND_STRATEGIES)}") from None
    return cls(**options)
