"""Figures of a plate: heatmaps of well values (matplotlib, no display needed)."""
import numpy as np

from .analysis.layout import ROWS, well_grid

__all__ = ["plate_heatmap", "pyplot"]


def pyplot():
    """Return ``matplotlib.pyplot`` with the Agg backend, imported on first use.

    Importing it costs ~1.5 s, which every ``luigi --module antibodies`` command
    would otherwise pay at start-up, though only the plate exports and the
    report draw figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _norm(grid, cutoff):
    """A colour scale centred on ``cutoff`` that holds every finite value."""
    finite = grid[np.isfinite(grid)]
    low = min(finite.min(), cutoff) if finite.size else cutoff
    high = max(finite.max(), cutoff) if finite.size else cutoff
    span = max(high - low, 1e-6)
    from matplotlib.colors import TwoSlopeNorm

    return TwoSlopeNorm(vcenter=cutoff, vmin=min(low, cutoff - span / 20), vmax=max(high, cutoff + span / 20))


def plate_heatmap(values, title, path, outliers=(), cutoff=None, cmap="viridis", center=False, label=None):
    """Save a plate heatmap of ``{well: value}``; outlier wells are crossed out.

    Parameters
    ----------
    values : mapping of str to float
    title : str
    path : str or Path
        PNG file to write.
    outliers : iterable of str
        Wells drawn with a cross.
    cutoff : float, optional
        Wells above it get a white frame (positive call); the colour bar marks it with a line.
    cmap : str
        Matplotlib colour map.
    center : bool
        Centre a diverging ``cmap`` on ``cutoff`` (negatives on one side, positives on the other).
    label : str, optional
        Colour bar label.

    Returns
    -------
    path
        ``path`` as given (a file name or a binary file object).
    """
    grid = well_grid(values)
    n_rows, n_cols = grid.shape
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * n_cols, 1.0 + 0.45 * n_rows))
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=_norm(grid, cutoff) if center else None)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label=label)
    if cutoff is not None:
        bar.ax.axhline(cutoff, color="black", lw=2)
    ax.set_xticks(range(n_cols), [str(c + 1) for c in range(n_cols)])
    ax.set_yticks(range(n_rows), list(ROWS[:n_rows]))
    for well in outliers:
        row, col = ROWS.index(well[0]), int(well[1:]) - 1
        ax.plot([col - 0.4, col + 0.4], [row - 0.4, row + 0.4], color="red", lw=1.5)
        ax.plot([col - 0.4, col + 0.4], [row + 0.4, row - 0.4], color="red", lw=1.5)
    if cutoff is not None:
        for (row, col), value in np.ndenumerate(grid):
            if value > cutoff:
                ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="white", lw=2))
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
