"""The outputs open in the plateViewer (Fiji): checked field by field against what it reads.

The plateViewer (embl-cba/plateviewer, batchlib HDF5 naming scheme) lists
``Well<W>_Point<W>_<site>_...h5`` files of a folder, shows
each ``<channel>/s<level>`` pyramid with the group attributes ``Color``,
``Visible``, ``ContrastLimits`` and ``ScaleFactors`` (label images ``Glasbey``),
and reads ``<plate>_tables.hdf5`` tables ``/tables/images/default`` and
``/tables/wells/default`` (``cells``, ``columns``, ``visible``) with the outlier
column ``is_outlier`` (and ``well_name``, ``site_name``). See docs/data_model.md.
"""
import math
import re

import h5py
import numpy as np
import pytest

from antibodies.keys import CHANNEL_COLORS

FILE_NAME = re.compile(r"^Well(?P<well>[A-P]\d{2})_Point(?P=well)_(?P<site>\d{4})_Channel[A-Za-z0-9_,]+_Seq\d{4}\.h5$")
PLATE_VIEWER_HDF5 = re.compile(r".*Well([A-Z]{1}[0-9]{2})_Point[A-Z]{1}[0-9]{2}_([0-9]{4})_.*h5$")  # its batchlib scheme
INTENSITY = ("nuclei", "marker", "serum_IgG", "marker_tophat")
LABELS = ("nucleus_segmentation", "cell_segmentation")
COLORS = {"Gray", "Red", "Green", "Blue", "Glasbey"}


@pytest.fixture(scope="module")
def containers(processed_plate):
    return sorted(processed_plate["output"].glob("*.h5"))


def _levels(group):
    names = sorted((k for k in group if re.fullmatch(r"s\d+", k)), key=lambda k: int(k[1:]))
    assert names == [f"s{i}" for i in range(len(names))], names
    return [group[name] for name in names]


def _string(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def test_image_files_are_named_for_the_plate_viewer(processed_plate, containers):
    assert len(containers) == 8
    names = [FILE_NAME.match(c.name) for c in containers]
    assert all(names), [c.name for c, m in zip(containers, names) if not m]
    assert all(PLATE_VIEWER_HDF5.fullmatch(c.name) for c in containers)
    assert {m["well"] for m in names} == {"A01", "A02", "B01", "B02"}
    assert (processed_plate["output"] / f"{processed_plate['name']}_tables.hdf5").is_file()


@pytest.mark.parametrize("key", INTENSITY + LABELS)
def test_image_groups_are_pyramids_with_viewer_attributes(containers, key):
    for path in containers:
        with h5py.File(path, "r") as f:
            group = f[key]
            assert isinstance(group, h5py.Group)
            levels = _levels(group)
            assert len(levels) >= 2
            for level, data in enumerate(levels):
                assert data.ndim == 2
                assert data.shape == tuple(math.ceil(s / 2**level) for s in levels[0].shape)
            attrs = group.attrs
            assert np.array_equal(attrs["ScaleFactors"], [[2**i, 2**i] for i in range(len(levels))])
            assert _string(attrs["Color"]) in COLORS
            assert isinstance(attrs["Visible"], (bool, np.bool_))
            if key in LABELS:
                assert _string(attrs["Color"]) == "Glasbey"
                assert np.issubdtype(levels[0].dtype, np.integer)
            else:
                assert _string(attrs["Color"]) == CHANNEL_COLORS.get(key, "Gray")
                low, high = (float(v) for v in attrs["ContrastLimits"])
                assert low <= high


def _table(f, name):
    group = f[f"tables/{name}"]
    cells, columns, visible = group["cells"], group["columns"], group["visible"]
    assert cells.ndim == 2 and columns.ndim == 1 and visible.ndim == 1
    assert h5py.check_string_dtype(cells.dtype) and h5py.check_string_dtype(columns.dtype)
    assert visible.dtype == bool and cells.shape[1] == columns.shape[0] == visible.shape[0]
    return [_string(c) for c in columns[:]], cells.shape[0]


def test_plate_tables_file_has_image_and_well_tables(processed_plate):
    with h5py.File(processed_plate["output"] / f"{processed_plate['name']}_tables.hdf5", "r") as f:
        columns, n_rows = _table(f, "images/default")
        assert columns[0] == "image_name" and "well_name" in columns and "is_outlier" in columns and n_rows == 8
        sites = [_string(v) for v in f["tables/images/default/cells"][:, columns.index("site_name")]]
        images = [_string(v) for v in f["tables/images/default/cells"][:, 0]]
        assert sites == [f"{FILE_NAME.match(i + '.h5')['well']}-{FILE_NAME.match(i + '.h5')['site']}" for i in images]
        columns, n_rows = _table(f, "wells/default")
        assert columns[0] == "well_name" and "is_outlier" in columns and "serum_IgG_score" in columns and n_rows == 4
        for name in ("images/serum_IgG", "wells/serum_IgG"):
            _table(f, name)


def test_cell_tables_are_keyed_by_label_id(containers):
    with h5py.File(containers[0], "r") as f:
        for name in ("cell_segmentation/serum_IgG", "cell_segmentation/infected_cells"):
            columns, n_rows = _table(f, name)
            assert columns[0] == "label_id" and n_rows > 0
