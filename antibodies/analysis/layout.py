"""Plate layout: wells on a 96- or 384-well grid."""
import numpy as np

__all__ = ["plate_shape", "well_grid"]

ROWS = "ABCDEFGHIJKLMNOP"


def plate_shape(wells):
    """Return ``(rows, columns)`` of the smallest standard plate holding ``wells``.

    Examples
    --------
    >>> plate_shape(["A01", "H12"]), plate_shape(["P24"])
    ((8, 12), (16, 24))
    """
    big = any(ROWS.index(well[0]) >= 8 or int(well[1:]) > 12 for well in wells)
    return (16, 24) if big else (8, 12)


def well_grid(values):
    """Place per-well values on the plate grid.

    Parameters
    ----------
    values : mapping of str to float
        Well name -> value.

    Returns
    -------
    grid : (R, C) float ndarray
        NaN where a well has no value.

    Examples
    --------
    >>> well_grid({"A01": 1.0, "B03": 2.0})[:2, :3]
    array([[ 1., nan, nan],
           [nan, nan,  2.]])
    """
    grid = np.full(plate_shape(list(values) or ["A01"]), np.nan)
    for well, value in values.items():
        grid[ROWS.index(well[0]), int(well[1:]) - 1] = value
    return grid
