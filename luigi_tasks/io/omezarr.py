"""OME-Zarr 0.4 high-content-screening plates (zarr v2 format).

Layout written by :func:`create_plate`, :func:`write_field` and :func:`write_well`::

    <plate>.ome.zarr/              plate metadata (rows, columns, wells, field_count)
      A/1/                         well metadata (its fields)
        0/                         field (image): multiscales + omero channels, arrays 0, 1, ... (c, y, x)
          labels/                  labels metadata
            cell_segmentation/     image-label: multiscales, arrays 0, 1, ... (y, x)

Arrays use ``/`` as chunk separator and Blosc-zstd compression, as
``ome-zarr-py`` writes them. zarr is imported only when a plate is written.
"""
from typing import NamedTuple

import numpy as np

__all__ = ["NGFF_VERSION", "ChannelPyramid", "HEX_COLORS", "create_plate", "write_field", "write_well", "well_path"]

NGFF_VERSION = "0.4"
HEX_COLORS = {"Gray": "FFFFFF", "Red": "FF0000", "Green": "00FF00", "Blue": "0000FF", "Glasbey": "FFFFFF"}
"""Viewer colour names (see :data:`luigi_tasks.io.images.VIEWER_COLORS`) as omero hex colours."""

_CHUNK = 256


class ChannelPyramid(NamedTuple):
    """One channel of a field: its name, pyramid levels (``s0, s1, ...``), colour and display window."""

    name: str
    levels: list
    color: str
    window: tuple


def well_path(well):
    """Return the ``row/column`` path of a well such as ``C05``.

    Examples
    --------
    >>> well_path("C05")
    'C/5'
    """
    return f"{well[0]}/{int(well[1:])}"


def _compressor():
    import numcodecs

    return numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


def _write_array(group, name, data):
    chunks = (1,) * (data.ndim - 2) + tuple(min(_CHUNK, s) for s in data.shape[-2:])
    group.create_array(name, data=data, chunks=chunks, compressors=_compressor(),
                       chunk_key_encoding={"name": "v2", "separator": "/"})


def _multiscales(name, n_levels, axes, factors=2):
    leading = [1.0] * (len(axes) - 2)
    datasets = [{"path": str(level), "coordinateTransformations": [
        {"type": "scale", "scale": leading + [float(factors**level)] * 2}]} for level in range(n_levels)]
    axis_types = {"c": "channel", "y": "space", "x": "space"}
    return [{"version": NGFF_VERSION, "name": name, "axes": [{"name": a, "type": axis_types[a]} for a in axes],
             "datasets": datasets}]


def create_plate(path, name, rows, columns, wells, field_count):
    """Create the plate group at ``path`` (replacing it) and return it.

    Parameters
    ----------
    path : str or Path
        The ``.ome.zarr`` folder.
    name : str
        Plate name.
    rows, columns : sequence of str
        Row letters and column numbers of the plate grid (e.g. ``A``-``H``, ``1``-``12``).
    wells : sequence of str
        Wells with images, e.g. ``["A01", "B02"]``.
    field_count : int
        Most fields (sites) in a well.
    """
    import zarr

    plate = zarr.open_group(str(path), mode="w", zarr_format=2)
    columns = [str(int(c)) for c in columns]
    plate.attrs["plate"] = {
        "version": NGFF_VERSION, "name": name, "field_count": int(field_count),
        "rows": [{"name": r} for r in rows], "columns": [{"name": c} for c in columns],
        "wells": [{"path": well_path(w), "rowIndex": list(rows).index(w[0]),
                   "columnIndex": columns.index(str(int(w[1:])))} for w in wells],
    }
    return plate


def write_well(plate, well, n_fields):
    """Write the metadata of a well with fields ``0 .. n_fields - 1``."""
    group = plate.require_group(well_path(well))
    group.attrs["well"] = {"version": NGFF_VERSION, "images": [{"path": str(i)} for i in range(n_fields)]}
    return group


def write_field(plate, well, field, channels, labels=None, name=None):
    """Write one field (image) of a well with its channels and label images.

    Parameters
    ----------
    plate : zarr.Group
        From :func:`create_plate`.
    well : str
    field : int
        Index of the field in the well.
    channels : sequence of ChannelPyramid
        Same number of levels and shapes; stacked as ``(c, y, x)`` with their common dtype.
    labels : Mapping[str, list of ndarray], optional
        Label name -> pyramid levels ``(y, x)`` matching the channels' shapes.
    name : str, optional
        Image name (e.g. the raw file stem).
    """
    group = plate.require_group(well_path(well)).create_group(str(field))
    dtype = np.result_type(*(c.levels[0].dtype for c in channels))
    n_levels = len(channels[0].levels)
    for level in range(n_levels):
        _write_array(group, str(level), np.stack([np.asarray(c.levels[level], dtype=dtype) for c in channels]))
    group.attrs["multiscales"] = _multiscales(name or str(field), n_levels, ("c", "y", "x"))
    group.attrs["omero"] = {"name": name or str(field), "version": NGFF_VERSION, "rdefs": {"model": "color"},
                            "channels": [_omero_channel(c, dtype) for c in channels]}
    if labels:
        _write_labels(group, labels)
    return group


def _omero_channel(channel, dtype):
    data = channel.levels[-1]
    if np.issubdtype(dtype, np.integer):
        low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
    else:
        low, high = float(np.min(data)), float(np.max(data))
    start, end = (float(v) for v in channel.window)
    return {"label": channel.name, "color": HEX_COLORS.get(channel.color, channel.color), "active": True,
            "window": {"min": float(low), "max": float(high), "start": start, "end": end}}


def _write_labels(image_group, labels):
    group = image_group.create_group("labels")
    group.attrs["labels"] = list(labels)
    for name, levels in labels.items():
        label = group.create_group(name)
        for level, data in enumerate(levels):
            _write_array(label, str(level), np.asarray(data))
        label.attrs["multiscales"] = _multiscales(name, len(levels), ("y", "x"))
        label.attrs["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}}
