"""OME-Zarr 0.4 high-content-screening plates (zarr v2 format), written by ``ome-zarr``'s writers.

Layout written by :func:`create_plate`, :func:`write_field` and :func:`write_well`::

    <plate>.ome.zarr/              plate metadata (rows, columns, wells, field_count)
      A/1/                         well metadata (its fields)
        0/                         field (image): multiscales + omero channels, arrays s0, s1, ... (c, y, x)
          labels/                  labels metadata
            cell_segmentation/     image-label: multiscales, arrays s0, s1, ... (y, x)

``ome_zarr.writer`` (the pinned ``ome-zarr``) writes the arrays and the plate, well, multiscales, omero and
image-label metadata; this module only maps the containers' pyramids, colours and display windows onto it.
The scale of level ``l`` is ``2**l``, as the h5 pyramids are made (ome-zarr would otherwise derive it from
the level shapes, which differs for odd sizes). Arrays use ``/`` as chunk separator, 256 x 256 chunks per
plane and Blosc-zstd compression. zarr and ome-zarr are imported only when a plate is written.
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


def _format():
    from ome_zarr.format import FormatV04

    return FormatV04()


def _storage_options(ndim):
    import numcodecs

    chunks = (1,) * (ndim - 2) + (_CHUNK, _CHUNK)
    return {"chunks": chunks, "compressor": numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)}


def _scales(n_levels, ndim):
    """Per level ``[{"type": "scale", "scale": [1, .., 2**l, 2**l]}]``: the h5 pyramids' factor 2."""
    return [[{"type": "scale", "scale": [1.0] * (ndim - 2) + [float(2**level)] * 2}] for level in range(n_levels)]


def _write_pyramid(writer, levels, group, axes, **kwargs):
    """Call an ``ome_zarr.writer`` pyramid writer with this module's format, chunks, compression and scales."""
    chunks = [tuple(min(c, s) for c, s in zip(_storage_options(len(axes))["chunks"], level.shape)) for level in levels]
    storage = [dict(_storage_options(len(axes)), chunks=chunk) for chunk in chunks]
    writer(levels, group, fmt=_format(), axes=list(axes), coordinate_transformations=_scales(len(levels), len(axes)),
           storage_options=storage, **kwargs)


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
    from ome_zarr.writer import write_plate_metadata

    plate = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_plate_metadata(plate, list(rows), [str(int(c)) for c in columns], [well_path(w) for w in wells],
                         fmt=_format(), field_count=int(field_count), name=name)
    return plate


def write_well(plate, well, n_fields):
    """Write the metadata of a well with fields ``0 .. n_fields - 1``."""
    from ome_zarr.writer import write_well_metadata

    group = plate.require_group(well_path(well))
    write_well_metadata(group, [str(i) for i in range(n_fields)], fmt=_format())
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
    from ome_zarr.writer import write_multiscale, write_multiscale_labels

    group = plate.require_group(well_path(well)).create_group(str(field))
    dtype = np.result_type(*(c.levels[0].dtype for c in channels))
    levels = [np.stack([np.asarray(c.levels[level], dtype=dtype) for c in channels])
              for level in range(len(channels[0].levels))]
    omero = {"name": name or str(field), "version": NGFF_VERSION, "rdefs": {"model": "color"},
             "channels": [_omero_channel(c, dtype) for c in channels]}
    _write_pyramid(write_multiscale, levels, group, ("c", "y", "x"), name=name or str(field),
                   metadata={"omero": omero})
    for label, label_levels in (labels or {}).items():
        _write_pyramid(write_multiscale_labels, [np.asarray(level) for level in label_levels], group, ("y", "x"),
                       name=label, label_metadata={"source": {"image": "../../"}})
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
