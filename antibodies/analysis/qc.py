"""Quality-control rules for cells, images and wells.

Each rule is a small frozen dataclass with one ``flag`` method returning, per
row of a table, a readable outlier type such as ``"too few cells (7 < 10)"``
or ``""`` when the row passes.  Two kinds exist:

table rules, ``flag(table) -> Series``
    `CellSizeQC` (cell tables, column ``sizes``), `CellCountQC` (image tables,
    column ``n_cells``), `ControlCellCountQC` (well tables, ``n_control``),
    `ManualOutlierQC` (image tables, ``image_name``), `OutOfFocusQC` (image tables,
    ``nucleus_edge_sharpness``).
serum rules, ``flag(table, serum, background) -> Series``
    `MinInfectedIntensityQC` and `FixedMinInfectedIntensityQC`, reading
    ``<serum>_median_infected`` (background-subtracted); `ClippedCellsQC`,
    reading ``<serum>_clipped_cells``.

`NoQC` is the no-op rule of either kind.  Rules are picked by config name from
``QC_RULES`` (see `make_qc_rule`); the types of several rules are joined with
``"; "`` (`combine_outlier_types`).  All comparisons are strict: a value equal
to a limit passes.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "PASSED",
    "CellSizeQC",
    "CellCountQC",
    "ControlCellCountQC",
    "ManualOutlierQC",
    "MinInfectedIntensityQC",
    "FixedMinInfectedIntensityQC",
    "ClippedCellsQC",
    "OutOfFocusQC",
    "NoQC",
    "QC_RULES",
    "BATCHLIB_INFECTED_INTENSITY_MINIMA",
    "DEFAULT_CELL_RULES",
    "CELL_SIZE_COLUMNS",
    "DEFAULT_IMAGE_RULES",
    "DEFAULT_WELL_RULES",
    "DEFAULT_SERUM_RULES",
    "make_qc_rule",
    "manual_outlier_names",
    "combine_outlier_types",
    "outlier_types",
    "serum_outlier_types",
    "flag_table",
    "flag_cells",
    "flag_images",
    "well_mate_warnings",
    "plate_warnings",
]

logger = logging.getLogger(__name__)

PASSED = ""
"""Outlier type of a row that passes every rule."""


def _text(value):
    return f"{value:g}"


def _flag_range(values, minimum, maximum, low, high, unit=""):
    """Outlier types for values outside ``[minimum, maximum]`` (None = unbounded).

    Examples
    --------
    >>> _flag_range(pd.Series([5, 20, 50]), 10, 40, "too few", "too many").tolist()
    ['too few (5 < 10)', '', 'too many (50 > 40)']
    """
    def describe(value):
        if minimum is not None and value < minimum:
            return f"{low} ({_text(value)} < {_text(minimum)}{unit})"
        if maximum is not None and value > maximum:
            return f"{high} ({_text(value)} > {_text(maximum)}{unit})"
        return PASSED
    return pd.Series([describe(v) for v in values], index=values.index, dtype=str)


def _passed(table):
    return pd.Series(PASSED, index=table.index, dtype=str)


@dataclass(frozen=True)
class CellSizeQC:
    """Cells with ``sizes`` outside ``[min_size, max_size]`` pixels are outliers.

    Examples
    --------
    >>> CellSizeQC().flag(pd.DataFrame({"sizes": [249, 250, 12501]})).tolist()
    ['too small (249 < 250 px)', '', 'too large (12501 > 12500 px)']
    """

    min_size: float = 250
    max_size: float = 12500

    def flag(self, table):
        """Return per-row outlier types of a cell table."""
        return _flag_range(table["sizes"], self.min_size, self.max_size,
                           "too small", "too large", " px")


@dataclass(frozen=True)
class CellCountQC:
    """Images with fewer than ``min_cells`` or more than ``max_cells`` cells are outliers.

    ``column`` holds the number of non-outlier cells.

    Examples
    --------
    >>> CellCountQC().flag(pd.DataFrame({"n_cells": [7, 10, 1001]})).tolist()
    ['too few cells (7 < 10)', '', 'too many cells (1001 > 1000)']
    """

    min_cells: int = 10
    max_cells: int = 1000
    column: str = "n_cells"

    def flag(self, table):
        """Return per-row outlier types of an image table."""
        return _flag_range(table[self.column], self.min_cells, self.max_cells,
                           "too few cells", "too many cells")


@dataclass(frozen=True)
class ControlCellCountQC:
    """Rows with fewer than ``min_control_cells`` control cells are outliers.

    The default of 20 is a floor for a median and its asymptotic interval
    (`antibodies.analysis.scores.call_positive` widens the interval of a
    well with few cells instead of dropping its score); batchlib used 100.

    Examples
    --------
    >>> ControlCellCountQC().flag(pd.DataFrame({"n_control": [19, 20]})).tolist()
    ['too few control cells (19 < 20)', '']
    """

    min_control_cells: int = 20
    column: str = "n_control"

    def flag(self, table):
        """Return per-row outlier types of a well (or image) table."""
        return _flag_range(table[self.column], self.min_control_cells, None,
                           "too few control cells", "")


def _stem(name):
    return os.path.splitext(os.path.basename(str(name)))[0]


def manual_outlier_names(table):
    """Image names marked as outliers in a manual outlier table.

    Parameters
    ----------
    table : pandas.DataFrame
        Columns ``filename, label``; ``label == 1`` marks an outlier (any
        other label, e.g. 0 or -1, does not).

    Returns
    -------
    frozenset of str
        Each outlier filename as given and without directory and extension.

    Examples
    --------
    >>> sorted(manual_outlier_names(pd.DataFrame({"filename": ["a.h5", "b.h5"], "label": [1, 0]})))
    ['a', 'a.h5']
    """
    names = table.loc[table["label"] == 1, "filename"].astype(str)
    return frozenset(names) | frozenset(_stem(name) for name in names)


@dataclass(frozen=True)
class ManualOutlierQC:
    """Images listed as manual outliers (see `manual_outlier_names`).

    An image matches when its ``image_name`` or its name without extension
    is in ``names``.

    Examples
    --------
    >>> rule = ManualOutlierQC(frozenset({"a", "a.tif"}))
    >>> rule.flag(pd.DataFrame({"image_name": ["a", "b"]})).tolist()
    ['manual outlier', '']
    """

    names: frozenset = frozenset()

    def __post_init__(self):
        object.__setattr__(self, "names", frozenset(self.names))

    def flag(self, table):
        """Return per-row outlier types of an image table."""
        names = self.names
        return pd.Series(["manual outlier" if (n in names or _stem(n) in names) else PASSED
                          for n in table["image_name"].astype(str)],
                         index=table.index, dtype=str)


def _infected_column(serum):
    return f"{serum}_median_infected"


def _flag_below(values, limit, describe_limit):
    def describe(value):
        if value < limit:
            return f"median infected intensity too low ({_text(value)} < {describe_limit})"
        return PASSED
    return pd.Series([describe(v) for v in values], index=values.index, dtype=str)


@dataclass(frozen=True)
class MinInfectedIntensityQC:
    """Rows whose median infected serum intensity is below ``factor`` x background MAD.

    The intensity is background-subtracted (column ``<serum>_median_infected``).
    A NaN MAD or NaN intensity flags nothing.

    Examples
    --------
    >>> from antibodies.analysis.background import BackgroundStats
    >>> table = pd.DataFrame({"serum_IgG_median_infected": [29.0, 30.0]})
    >>> MinInfectedIntensityQC().flag(table, "serum_IgG", BackgroundStats(100.0, 10.0)).tolist()
    ['median infected intensity too low (29 < 30 = 3 x background MAD 10)', '']
    """

    factor: float = 3.0

    def flag(self, table, serum, background):
        """Return per-row outlier types for one serum."""
        limit = self.factor * background.mad
        text = f"{_text(limit)} = {_text(self.factor)} x background MAD {_text(background.mad)}"
        return _flag_below(table[_infected_column(serum)], limit, text)


BATCHLIB_INFECTED_INTENSITY_MINIMA = {"serum_IgG": 301.23, "serum_IgA": 392.76}
"""The original batchlib microscope's minima of the median infected intensity (opt-in: instrument constants)."""


@dataclass(frozen=True)
class FixedMinInfectedIntensityQC:
    """Rows whose median infected serum intensity is below a fixed per-serum minimum.

    Sera without a minimum pass; by default none has one (absolute
    intensities depend on the instrument, so minima are opt-in).

    Examples
    --------
    >>> table = pd.DataFrame({"serum_IgG_median_infected": [301.0, 301.23]})
    >>> FixedMinInfectedIntensityQC(BATCHLIB_INFECTED_INTENSITY_MINIMA).flag(table, "serum_IgG", None).tolist()
    ['median infected intensity too low (301 < 301.23)', '']
    >>> FixedMinInfectedIntensityQC().flag(table, "serum_IgG", None).tolist()
    ['', '']
    """

    minima: Mapping = field(default_factory=dict)

    def flag(self, table, serum, background=None):
        """Return per-row outlier types for one serum."""
        if serum not in self.minima:
            return _passed(table)
        minimum = self.minima[serum]
        return _flag_below(table[_infected_column(serum)], minimum, _text(minimum))


@dataclass(frozen=True)
class ClippedCellsQC:
    """Rows where more than ``max_fraction`` of the infected or of the control cells are clipped.

    A clipped cell has pixels at the camera ceiling (saturated,
    `antibodies.analysis.features.camera_ceiling`), so its mean reads too low.
    A median stays right while the clipped cells of its group are its
    brightest and fewer than half; the default of a quarter keeps a margin.
    Column ``<serum>_clipped_cells``: the larger of the two groups' fractions
    (NaN flags nothing).

    Examples
    --------
    >>> table = pd.DataFrame({"serum_IgG_clipped_cells": [0.9, 0.25, float("nan")]})
    >>> ClippedCellsQC().flag(table, "serum_IgG").tolist()
    ['serum_IgG clipped at the camera ceiling in 90 % of the cells of a group (> 25 %)', '', '']
    """

    max_fraction: float = 0.25

    def flag(self, table, serum, background=None):
        """Return per-row outlier types for one serum."""
        def describe(fraction):
            if fraction > self.max_fraction:
                return (f"{serum} clipped at the camera ceiling in {100 * fraction:.0f} % of the cells of a group "
                        f"(> {100 * self.max_fraction:.0f} %)")
            return PASSED
        return pd.Series([describe(f) for f in table[f"{serum}_clipped_cells"]], index=table.index, dtype=str)


@dataclass(frozen=True)
class OutOfFocusQC:
    """Images whose nuclei's edges are less sharp than ``min_ratio`` x the plate's reference are out of focus.

    Column ``nucleus_edge_sharpness`` (`antibodies.analysis.focus.nucleus_edge_sharpness`); the reference is
    the ``reference_quantile`` of the table's rows, the plate's images, so a plate imaged a little softer
    throughout passes. NaN (no nucleus) passes; ``min_ratio = 0`` flags nothing. A quantile above the median
    lets the sharper images define focus, so a plate soft over more than half of its images (a tilted plate, an
    autofocus that failed on a run of wells) is still caught. On ten tune plates every image was within
    0.87-1.32 of its plate's median; a site blurred by a Gaussian of 6 px read 0.46-0.48.

    A plate out of focus throughout passes any rule relative to itself: ``min_sharpness`` (1/px; 0 = off) is an
    absolute floor for an instrument whose focused images are known, an opt-in instrument constant.

    Examples
    --------
    >>> table = pd.DataFrame({"nucleus_edge_sharpness": [0.25, 0.24, 0.26, 0.09, float("nan")]})
    >>> OutOfFocusQC(reference_quantile=0.5).flag(table).tolist()[2:4]
    ['', 'out of focus (nuclei edges 0.37 as sharp as the plate median < 0.6)']
    >>> OutOfFocusQC(min_sharpness=0.245).flag(table).tolist()[:2]
    ['', 'out of focus (nuclei edges 0.24/px < 0.245/px, [qc] image_min_absolute_sharpness)']
    """

    min_ratio: float = 0.6
    reference_quantile: float = 0.75
    min_sharpness: float = 0.0
    column: str = "nucleus_edge_sharpness"

    def reference_name(self):
        """How the messages name the reference."""
        if self.reference_quantile == 0.5:
            return "the plate median"
        return f"the plate's {100 * self.reference_quantile:g}th percentile"

    def flag(self, table):
        """Return per-row outlier types of an image table."""
        values = table[self.column].astype(float)
        relative = values / values.quantile(self.reference_quantile)

        def describe(value, ratio):
            if ratio < self.min_ratio:
                reference = self.reference_name()
                return f"out of focus (nuclei edges {ratio:.2g} as sharp as {reference} < {self.min_ratio:g})"
            if value < self.min_sharpness:
                return (f"out of focus (nuclei edges {value:.2g}/px < {self.min_sharpness:g}/px, "
                        "[qc] image_min_absolute_sharpness)")
            return PASSED
        return pd.Series([describe(v, r) for v, r in zip(values, relative)], index=table.index, dtype=str)


@dataclass(frozen=True)
class NoQC:
    """No-op rule of either kind: every row passes."""

    def flag(self, table, *args):
        """Return ``""`` for every row."""
        return _passed(table)


QC_RULES = {
    "cell_size": CellSizeQC,
    "cell_count": CellCountQC,
    "control_cells": ControlCellCountQC,
    "manual": ManualOutlierQC,
    "infected_intensity": MinInfectedIntensityQC,
    "fixed_infected_intensity": FixedMinInfectedIntensityQC,
    "clipped_cells": ClippedCellsQC,
    "out_of_focus": OutOfFocusQC,
    "none": NoQC,
}
"""QC rules keyed by their config name."""

DEFAULT_CELL_RULES = (CellSizeQC(),)
CELL_SIZE_COLUMNS = ("label_id", "sizes")
"""The only columns of a cell table `flag_cells` reads with `CellSizeQC` (a reader may skip the others)."""
DEFAULT_IMAGE_RULES = (CellCountQC(),)
DEFAULT_WELL_RULES = (ControlCellCountQC(),)
DEFAULT_SERUM_RULES = (MinInfectedIntensityQC(),)


def make_qc_rule(name, **options):
    """Build a QC rule from its config name.

    Parameters
    ----------
    name : str
        A key of ``QC_RULES``.
    **options
        Passed to the rule, e.g. ``min_cells=20`` or ``names=...`` for
        ``"manual"`` (any iterable of image names).

    Examples
    --------
    >>> make_qc_rule("cell_count", min_cells=20)
    CellCountQC(min_cells=20, max_cells=1000, column='n_cells')
    """
    try:
        cls = QC_RULES[name]
    except KeyError:
        raise ValueError(f"unknown QC rule {name!r}; choose from {sorted(QC_RULES)}") from None
    return cls(**options)


def combine_outlier_types(*types):
    """Join per-row outlier types, skipping passes, with ``"; "``.

    Parameters
    ----------
    *types : pandas.Series of str
        Same index each.

    Returns
    -------
    pandas.Series of str

    Examples
    --------
    >>> a, b = pd.Series(["x", "", ""]), pd.Series(["y", "z", ""])
    >>> combine_outlier_types(a, b).tolist()
    ['x; y', 'z', '']
    """
    if not types:
        raise ValueError("combine_outlier_types needs at least one series")
    rows = zip(*(t.tolist() for t in types))
    joined = ["; ".join(t for t in row if t) for row in rows]
    return pd.Series(joined, index=types[0].index, dtype=str)


def outlier_types(table, rules):
    """Combined outlier types of table rules (``""`` for every row when no rule)."""
    return combine_outlier_types(_passed(table), *(rule.flag(table) for rule in rules))


def serum_outlier_types(table, serum, background, rules):
    """Combined outlier types of serum rules for one serum."""
    return combine_outlier_types(_passed(table),
                                 *(rule.flag(table, serum, background) for rule in rules))


def flag_table(table, rules, keys=()):
    """Apply table rules and return key columns with the outcome.

    Parameters
    ----------
    table : pandas.DataFrame
    rules : sequence of table rules
    keys : sequence of str
        Columns of ``table`` copied to the result.

    Returns
    -------
    pandas.DataFrame
        ``keys`` then ``is_outlier`` (bool) and ``outlier_type`` (str).
    """
    types = outlier_types(table, rules)
    result = table.loc[:, list(keys)].copy()
    result["is_outlier"] = (types != PASSED).to_numpy(dtype=bool)
    result["outlier_type"] = types
    return result


def flag_cells(cell_table, rules=DEFAULT_CELL_RULES):
    """Flag outlier cells.

    Parameters
    ----------
    cell_table : pandas.DataFrame
        Per-cell features with ``label_id`` and ``sizes``.
    rules : sequence of table rules

    Returns
    -------
    pandas.DataFrame
        Columns ``label_id, is_outlier, outlier_type``.

    Examples
    --------
    >>> cells = pd.DataFrame({"label_id": [1, 2], "sizes": [100, 300]})
    >>> flag_cells(cells).is_outlier.tolist()
    [True, False]
    """
    return flag_table(cell_table, rules, ("label_id",))


def flag_images(image_table, rules=DEFAULT_IMAGE_RULES):
    """Flag outlier images.

    Parameters
    ----------
    image_table : pandas.DataFrame
        One row per image with ``image_name`` and ``n_cells`` (non-outlier
        cells), plus what other rules read.
    rules : sequence of table rules
        E.g. ``(CellCountQC(), ManualOutlierQC(names))``.

    Returns
    -------
    pandas.DataFrame
        Columns ``image_name, is_outlier, outlier_type``.

    Examples
    --------
    >>> images = pd.DataFrame({"image_name": ["a", "b"], "n_cells": [7, 50]})
    >>> flag_images(images).outlier_type.tolist()
    ['too few cells (7 < 10)', '']
    """
    return flag_table(image_table, rules, ("image_name",))


def _well_median(table, column):
    """Per row, the median of ``column`` over the images of its well (NaN for a well of one image)."""
    medians = table.groupby("well_name")[column].transform("median").astype(float)
    alone = table.groupby("well_name")[column].transform("size") < 2
    return medians.mask(alone)


def well_mate_warnings(images, fraction_limit=0.2, background_ratio=1.5, channels=(), noise_units=5.0,
                       sera=(), score_ratio=1.25, score_units=3.0):
    """Warnings for images far from the other images of their well.

    A site whose infected fraction, background or score differs much from
    its well mates' usually has a problem of its own (focus, a bubble, a
    stain artefact) or shows a decision that did not hold on it.  The images
    are not excluded; the warnings are for a person to look at.

    Parameters
    ----------
    images : pandas.DataFrame
        ``image_name, well_name, fraction_infected`` and, per channel in
        ``channels``, ``<channel>_median`` and optionally ``<channel>_mad``.
    fraction_limit : float
        Largest accepted difference of the infected fraction from the median
        over the well's images.  (With two images per well both are flagged
        when they differ by more than twice this.)
    background_ratio : float
        Largest accepted ratio (either way) of a channel's background median
        to the median over the well's images.
    channels : sequence of str
        Channels whose backgrounds are compared.
    noise_units : float
        A background is far only if it also differs from the well's by more
        than this many of the image's background MADs (so a noise-level
        background, e.g. of a top-hat, is not flagged for small changes).
    sera : sequence of str
        Sera whose image scores are compared (columns ``<serum>_score`` and
        ``<serum>_score_log_se``).
    score_ratio : float
        Largest accepted ratio (either way) of an image's score to the
        geometric median over its well's images.
    score_units : float
        A score is far only if its log also differs from the well's by more
        than this many of its own log standard errors (a site of a few cells
        scatters).

    Returns
    -------
    pandas.DataFrame
        ``image_name, well_name, channel, reason``, one row per warning.

    Examples
    --------
    >>> images = pd.DataFrame({"image_name": ["a", "b", "c"], "well_name": ["A01"] * 3,
    ...                        "fraction_infected": [0.3, 0.32, 0.9], "ch_median": [100.0, 110.0, 400.0]})
    >>> well_mate_warnings(images, channels=["ch"])["reason"].tolist()
    ['infected fraction 0.9 vs 0.32 in its well', 'background 400 vs 110 in its well']
    >>> images["ch_mad"] = 100.0   # 290 counts are less than 5 MADs: not far
    >>> well_mate_warnings(images, channels=["ch"])["reason"].tolist()
    ['infected fraction 0.9 vs 0.32 in its well']
    >>> images = images.assign(S_score=[2.0, 2.1, 1.0], S_score_log_se=[0.05, 0.05, 0.05], fraction_infected=0.3)
    >>> well_mate_warnings(images, sera=["S"])["reason"].tolist()
    ['S score 1 vs 2 in its well']
    """
    rows = []
    mates = _well_median(images, "fraction_infected")
    for index, record in images.iterrows():
        if abs(record["fraction_infected"] - mates[index]) > fraction_limit:
            rows.append((record["image_name"], record["well_name"], "all",
                         f"infected fraction {record['fraction_infected']:.2g} vs {mates[index]:.2g} in its well"))
    for channel in channels:
        column = f"{channel}_median"
        mates = _well_median(images, column)
        ratio = images[column].astype(float) / mates
        noise = images.get(f"{channel}_mad", pd.Series(0.0, index=images.index)).astype(float)
        far = ((ratio > background_ratio) | (ratio < 1 / background_ratio)) & \
            ((images[column].astype(float) - mates).abs() > noise_units * noise)
        for index in images.index[far.to_numpy()]:
            rows.append((images.at[index, "image_name"], images.at[index, "well_name"], channel,
                         f"background {images.at[index, column]:.3g} vs {mates[index]:.3g} in its well"))
    for serum in sera:
        log_scores = np.log(images[f"{serum}_score"].astype(float))
        mates = _well_median(images.assign(log_score=log_scores), "log_score")
        distance = (log_scores - mates).abs()
        noise = score_units * images[f"{serum}_score_log_se"].astype(float)
        far = (distance > np.log(score_ratio)) & (distance > noise)
        for index in images.index[far.to_numpy()]:
            rows.append((images.at[index, "image_name"], images.at[index, "well_name"], serum,
                         f"{serum} score {np.exp(log_scores[index]):.3g} vs {np.exp(mates[index]):.3g} in its well"))
    return pd.DataFrame(rows, columns=["image_name", "well_name", "channel", "reason"])


def plate_warnings(wells, sera):
    """Warnings for a plate whose wells got no score for a serum, or have no infected cell at all.

    A complete run can still say nothing (wrong channel mapping, a dark marker
    channel, intensities on another scale): the plate's log should say so.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well table: ``n_infected`` and, per serum, ``<serum>_score`` and ``<serum>_outlier_type``.
    sera : sequence of str

    Returns
    -------
    list of str

    Examples
    --------
    >>> wells = pd.DataFrame({"n_infected": [0, 0], "serum_IgG_score": [float("nan")] * 2,
    ...                       "serum_IgG_outlier_type": ["too few infected cells", "too few infected cells"]})
    >>> for line in plate_warnings(wells, ["serum_IgG"]): print(line)
    no infected cell on the whole plate: check the marker channel and its role in channel_mapping.json
    serum_IgG: none of the 2 wells has a score (2 x too few infected cells)
    """
    if wells.empty:
        return []
    lines = []
    if not wells["n_infected"].fillna(0).any():
        lines.append("no infected cell on the whole plate: "
                     "check the marker channel and its role in channel_mapping.json")
    for serum in sera:
        if wells[f"{serum}_score"].isna().all():
            reasons = wells[f"{serum}_outlier_type"].replace(PASSED, "no reason given").value_counts()
            listed = ", ".join(f"{count} x {reason}" for reason, count in reasons.items())
            lines.append(f"{serum}: none of the {len(wells)} wells has a score ({listed})")
    return lines
