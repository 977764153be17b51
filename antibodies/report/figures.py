"""Figures of the plate report as PNG bytes (matplotlib, no display needed)."""
import io

import numpy as np

from ..analysis.layout import ROWS
from ..plots import plate_heatmap, pyplot
from .columns import readable_column, serum_label

__all__ = ["HeatmapSpec", "heatmap_specs", "intensity_boxplot_png", "score_histogram_png", "marker_score_png",
           "rgb_png"]

_DPI = 72
_INFECTED, _CONTROL = "#d62728", "#1f77b4"


class HeatmapSpec:
    """What one heatmap of a serum shows: a well-table column, its colours and cut-off.

    Parameters
    ----------
    column : str
        Column of the default well table.
    cutoff : float, optional
        Positive cut-off; the colours diverge around it.
    """

    def __init__(self, column, cutoff=None):
        self.column, self.cutoff = column, cutoff

    @property
    def title(self):
        """Readable title, with the cut-off when there is one."""
        name = readable_column(self.column)
        return name if self.cutoff is None else f"{name} (cut-off {self.cutoff:g})"

    def render(self, wells, outliers):
        """PNG bytes of the heatmap of ``wells`` (the default well table) with ``outliers`` crossed out."""
        values = dict(zip(wells["well_name"], wells[self.column].astype(float)))
        buffer = io.BytesIO()
        cmap = "coolwarm" if self.cutoff is not None else "viridis"
        plate_heatmap(values, self.title, buffer, outliers, cutoff=self.cutoff, cmap=cmap,
                      center=self.cutoff is not None, label=readable_column(self.column))
        return buffer.getvalue()


def heatmap_specs(serum, cutoff):
    """The four heatmaps of a serum: score (with cut-off), robust z-score, cells, fraction infected."""
    return (HeatmapSpec(f"{serum}_score", cutoff), HeatmapSpec(f"{serum}_robust_z_score"),
            HeatmapSpec("n_cells"), HeatmapSpec("fraction_infected"))


def _figure_png(fig):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    pyplot().close(fig)
    return buffer.getvalue()


def _well_boxes(ax, by_well, wells):
    """Boxes of the cells of ``wells`` (``by_well``: well -> its rows of the intensity frame, in frame order)."""
    positions, colors, data = [], [], []
    for index, well in enumerate(wells):
        cells = by_well[well]
        for offset, infected, color in ((-0.2, True, _INFECTED), (0.2, False, _CONTROL)):
            values = cells.loc[cells["infected"] == infected, "intensity"].to_numpy()
            if values.size:
                positions.append(index + offset)
                colors.append(color)
                data.append(values)
    if data:
        boxes = ax.boxplot(data, positions=positions, widths=0.35, showfliers=False, patch_artist=True)
        for patch, color in zip(boxes["boxes"], colors):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
    ax.set_xticks(range(len(wells)), wells, rotation=90 if len(wells) > 12 else 0)
    ax.set_xlim(-0.6, len(wells) - 0.4)
    ax.axhline(0, color="gray", lw=0.5)


def intensity_boxplot_png(intensities, serum):
    """Boxplots per well of infected vs control cell intensity, one panel per plate row.

    Parameters
    ----------
    intensities : pandas.DataFrame
        From :func:`antibodies.report.data.cell_intensities`.
    serum : str
    """
    frame = intensities[intensities["serum"] == serum]
    wells = sorted(frame["well_name"].unique(), key=lambda w: (w[0], int(w[1:])))
    rows = sorted({w[0] for w in wells}, key=ROWS.index) or ["A"]
    width = min(4.0 + 0.45 * max((sum(w[0] == r for w in wells) for r in rows), default=1), 14.0)
    fig, axes = pyplot().subplots(len(rows), 1, figsize=(width, 0.6 + 1.9 * len(rows)), squeeze=False)
    by_well = dict(iter(frame.groupby("well_name", sort=False)))
    for ax, row in zip(axes[:, 0], rows):
        _well_boxes(ax, by_well, [w for w in wells if w[0] == row])
        ax.set_ylabel("cell mean - bg")
    axes[0, 0].set_title(f"{serum_label(serum)}: infected (red) vs control (blue)", fontsize=9)
    fig.tight_layout()
    return _figure_png(fig)


def score_histogram_png(images, wells, serum, cutoff=None):
    """Histogram of the image and well scores of a serum, with the cut-off line."""
    column = f"{serum}_score"
    fig, ax = pyplot().subplots(figsize=(5.0, 3.0))
    image_scores = images[column].astype(float).replace([np.inf, -np.inf], np.nan).dropna()
    well_scores = wells[column].astype(float).replace([np.inf, -np.inf], np.nan).dropna()
    both = np.concatenate([image_scores.to_numpy(), well_scores.to_numpy()])
    bins = np.histogram_bin_edges(both, bins=min(30, max(5, both.size))) if both.size else 10
    ax.hist(image_scores, bins=bins, color="#999999", label=f"images ({image_scores.size})")
    ax.hist(well_scores, bins=bins, color="#2ca02c", alpha=0.7, label=f"wells ({well_scores.size})")
    if cutoff is not None:
        ax.axvline(cutoff, color="black", lw=2, label=f"cut-off {cutoff:g}")
    ax.set_xlabel(readable_column(column))
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)


def marker_score_png(histogram, factor, method):
    """Histogram of the plate's per-cell marker scores (log scale) with the infected-cell cut.

    Parameters
    ----------
    histogram : pandas.DataFrame
        ``log10_score_low, log10_score_high, n_cells``
        (:func:`antibodies.analysis.infection.score_histogram`).
    factor : float
        The cut (background MADs above the background median).
    method : str
        How the cut was chosen.
    """
    fig, ax = pyplot().subplots(figsize=(6.0, 3.0))
    low, high = histogram["log10_score_low"].to_numpy(), histogram["log10_score_high"].to_numpy()
    counts = histogram["n_cells"].to_numpy()
    infected = low >= np.log10(max(factor, 1e-3))
    ax.bar(10 ** low, counts, width=10 ** high - 10 ** low, align="edge",
           color=np.where(infected, _INFECTED, _CONTROL), alpha=0.8)
    ax.axvline(factor, color="black", lw=2, label=f"cut {factor:.3g} ({method})")
    ax.set_xscale("log")
    ax.set_xlabel("marker score: (cell q95 - image background) / background MAD")
    ax.set_ylabel("cells")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)


def rgb_png(rgb):
    """PNG bytes of an ``(M, N, 3)`` uint8 image."""
    buffer = io.BytesIO()
    pyplot().imsave(buffer, rgb, format="png")
    return buffer.getvalue()
