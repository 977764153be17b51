"""StarDist's polygons drawn into a label image, vectorised (the pixels skimage.draw.polygon draws).

StarDist renders its nuclei one polygon at a time with ``skimage.draw.polygon``
(a Python loop over the nuclei, each testing every pixel of its bounding box
against every edge).  :func:`render_polygons` gives the same label image from
a few array operations over all polygons: for each polygon and scanned row it
finds, per edge, the first column where skimage's crossing test changes
(evaluating skimage's own float64 expression at the two columns around it, so
rounding decides exactly as there), and paints the column intervals with an
odd number of crossings, plus vertices that fall on a pixel.  Later polygons
overwrite earlier ones, as in ``stardist.geometry.polygons_to_label``.
"""

import numpy as np

__all__ = ["render_polygons"]

_VERTEX_EPS = 1e-12
"""skimage counts a pixel within this distance (per axis) of a vertex as the vertex."""


def _scan_bounds(values, size):
    """First and last pixel scanned per polygon along one axis (skimage: ``int(max(0, min))`` .. ``ceil(max)``)."""
    first = np.maximum(values.min(axis=1), 0).astype(np.int64)
    last = np.minimum(np.ceil(values.max(axis=1)).astype(np.int64), size - 1)
    return first, last


def _scan_rows(first, last):
    """``(polygon, row)`` of every row scanned."""
    counts = np.maximum(last - first + 1, 0)
    polygon = np.repeat(np.arange(first.size), counts)
    starts = np.cumsum(counts) - counts
    return polygon, first[polygon] + np.arange(polygon.size) - starts[polygon]


def _crossing(x0, y0, x1, y1, x):
    """skimage's crossing value of edge (1 -> 0) for pixel column ``x``: its float64 operations, in its order."""
    relative0, relative1 = x0 - x, x1 - x
    return (relative0 * y1 - relative1 * y0) / (y1 - y0)


def _switch_column(x0, y0, x1, y1, right):
    """Per edge, the first column where it stops counting (right: crossing > 0) or starts (left: crossing < 0)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        estimate = (x0 * y1 - x1 * y0) / (y1 - y0)
        column = np.ceil(estimate) if right else np.floor(estimate) + 1
        column = np.where(np.isfinite(column), column, 0.0)
        if right:
            column = np.where(~(_crossing(x0, y0, x1, y1, column - 1) > 0), column - 1, column)
            column = np.where(_crossing(x0, y0, x1, y1, column) > 0, column + 1, column)
        else:
            column = np.where(_crossing(x0, y0, x1, y1, column - 1) < 0, column - 1, column)
            column = np.where(~(_crossing(x0, y0, x1, y1, column) < 0), column + 1, column)
    return column


def _odd_intervals(row_index, columns):
    """Column intervals ``[c1, c2), [c3, c4), ...`` of the sorted switch columns of each row.

    A row has an even number of counted edges (a closed polygon changes side
    an even number of times), so pairing the columns sorted by row and value
    pairs them within each row.
    """
    order = np.lexsort((columns, row_index))
    row_index, columns = row_index[order], columns[order]
    return row_index[0::2], columns[0::2], columns[1::2]


def _edge_spans(coord, polygon, row):
    """Per kind of crossing (right, left): ``(scanned row index, start, end)`` of the intervals it counts odd."""
    r, c = coord[:, 0], coord[:, 1]
    y = row.astype(np.float64)[:, np.newaxis]
    y0 = r[polygon] - y                                   # vertex i, rows relative to the scanned row
    y1 = np.roll(r, 1, axis=1)[polygon] - y               # vertex i - 1
    spans = []
    for right, counted in ((True, (y0 > 0) != (y1 > 0)), (False, (y0 < 0) != (y1 < 0))):
        scanned, edge = np.nonzero(counted)
        vertex_poly = polygon[scanned]
        x0, x1 = c[vertex_poly, edge], c[vertex_poly, edge - 1]
        columns = _switch_column(x0, y0[scanned, edge], x1, y1[scanned, edge], right)
        spans.append(_odd_intervals(scanned, columns))
    return spans


def _vertex_pixels(coord, row_bounds, column_bounds):
    """``(polygon, row, column)`` of vertices on a scanned pixel."""
    rows, columns = np.round(coord[:, 0]), np.round(coord[:, 1])
    on_pixel = (np.abs(coord[:, 0] - rows) < _VERTEX_EPS) & (np.abs(coord[:, 1] - columns) < _VERTEX_EPS)
    for values, (first, last) in ((rows, row_bounds), (columns, column_bounds)):
        on_pixel &= (values >= first[:, np.newaxis]) & (values <= last[:, np.newaxis])
    polygon = np.broadcast_to(np.arange(len(coord))[:, np.newaxis], on_pixel.shape)[on_pixel]
    return polygon, rows[on_pixel].astype(np.int64), columns[on_pixel].astype(np.int64)


def _spans(coord, shape):
    """``(polygon, row, first, last)`` column runs of every polygon, inclusive."""
    row_bounds, column_bounds = _scan_bounds(coord[:, 0], shape[0]), _scan_bounds(coord[:, 1], shape[1])
    polygon, row = _scan_rows(*row_bounds)
    pieces = []
    for scanned, starts, ends in _edge_spans(coord, polygon, row):
        span_polygon = polygon[scanned]
        first = np.maximum(starts, column_bounds[0][span_polygon]).astype(np.int64)
        last = np.minimum(ends - 1, column_bounds[1][span_polygon]).astype(np.int64)
        keep = last >= first
        pieces.append((span_polygon[keep], row[scanned][keep], first[keep], last[keep]))
    vertex_polygon, vertex_row, vertex_column = _vertex_pixels(coord, row_bounds, column_bounds)
    pieces.append((vertex_polygon, vertex_row, vertex_column, vertex_column))
    return [np.concatenate(part) for part in zip(*pieces)]


def render_polygons(coord, prob, shape):
    """Label image of StarDist polygons, the one ``stardist.geometry.polygons_to_label`` draws.

    Parameters
    ----------
    coord : (K, 2, R) array
        Vertex rows and columns of each polygon (``details["coord"]`` of
        ``predict_instances``).
    prob : (K,) array
        Object probabilities: polygons are drawn in increasing order (stable),
        a later one over an earlier one.
    shape : tuple of int
        ``(M, N)`` of the image.

    Returns
    -------
    (M, N) int32 array
        Polygon ``k`` has label ``k + 1``; 0 is background.  (Polygons with a
        NaN probability are left out and the later ones numbered on, as
        stardist does.)

    Examples
    --------
    >>> square = np.array([[[1, 1, 3, 3], [1, 3, 3, 1]]], dtype=np.float32)
    >>> render_polygons(square, np.array([0.9]), (5, 5))[1:4, 1:4].tolist()
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
    """
    coord = np.asarray(coord, dtype=np.float64)
    labels = np.zeros(shape, np.int32)
    if len(coord) == 0:
        return labels
    kept = np.asarray(prob) > -np.inf                  # as stardist: a NaN probability draws nothing
    coord, prob = coord[kept], np.asarray(prob)[kept]
    if len(coord) == 0:
        return labels
    order = np.argsort(prob, kind="stable")
    polygon, row, first, last = _spans(coord[order], shape)
    drawn = np.argsort(polygon, kind="stable")          # spans in drawing order
    polygon, row, first, last = polygon[drawn], row[drawn], first[drawn], last[drawn]
    lengths = last - first + 1
    span = np.repeat(np.arange(lengths.size), lengths)
    pixels = row[span] * shape[1] + first[span] + np.arange(span.size) - (np.cumsum(lengths) - lengths)[span]
    if pixels.size == 0:
        return labels
    by_pixel = np.argsort(pixels, kind="stable")         # a pixel's writes stay in drawing order
    pixels, polygon = pixels[by_pixel], polygon[span[by_pixel]]
    last_write = np.append(pixels[1:] != pixels[:-1], True)
    labels.ravel()[pixels[last_write]] = (order[polygon[last_write]] + 1).astype(np.int32)
    return labels
