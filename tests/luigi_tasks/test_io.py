import numpy as np
import pandas as pd
import pytest

from luigi_tasks.io import (
    downscale,
    has_image,
    has_table,
    image_levels,
    list_tables,
    open_file,
    parse_image_name,
    pyramid_levels,
    read_image,
    read_table,
    write_image,
    write_table,
)


@pytest.fixture(params=["h5", "n5"])
def container_path(request, tmp_path):
    return tmp_path / f"image.{request.param}"


def test_image_roundtrip_all_levels_and_attributes(container_path):
    image = np.arange(256 * 200, dtype="uint16").reshape(256, 200)
    with open_file(container_path, "a") as f:
        write_image(f, "nuclei", image, color="Blue", min_size=32)
    with open_file(container_path) as f:
        assert image_levels(f, "nuclei") == ["s0", "s1", "s2"]
        np.testing.assert_array_equal(read_image(f, "nuclei"), image)
        expected = pyramid_levels(image, min_size=32)
        for level, data in enumerate(expected):
            np.testing.assert_array_equal(read_image(f, "nuclei", level), data)
        attrs = f["nuclei"].attrs
        assert attrs["Color"] == "Blue" and bool(attrs["Visible"]) and not bool(attrs["Skip"])
        assert list(attrs["ContrastLimits"]) == pytest.approx(list(np.percentile(image, (1, 99))))
        assert [list(s) for s in attrs["ScaleFactors"]] == [[1, 1], [2, 2], [4, 4]]
        assert has_image(f, "nuclei") and not has_image(f, "marker")


def test_label_pyramid_keeps_ids_and_uses_glasbey(container_path):
    labels = np.zeros((128, 128), "uint32")
    labels[:64, :64], labels[64:, 64:] = 3, 7
    with open_file(container_path, "a") as f:
        write_image(f, "cells", labels, is_label=True, min_size=32)
    with open_file(container_path) as f:
        assert f["cells"].attrs["Color"] == "Glasbey"
        assert "ContrastLimits" not in f["cells"].attrs
        assert set(np.unique(read_image(f, "cells", 2))) == {0, 3, 7}


def test_write_image_replaces_existing(container_path):
    with open_file(container_path, "a") as f:
        write_image(f, "x", np.zeros((70, 70)))
        write_image(f, "x", np.ones((80, 80)))
    with open_file(container_path) as f:
        assert read_image(f, "x").shape == (80, 80) and read_image(f, "x").min() == 1


def test_table_roundtrip_types(container_path):
    table = pd.DataFrame(
        {"label_id": [1, 2, 3], "means": [1.5, np.nan, 3.0], "is_infected": [True, False, True], "name": ["a", "b", "c"]}
    )
    with open_file(container_path, "a") as f:
        write_table(f, "cell_segmentation/serum_IgG", table, visible=[True, True, False, True])
    with open_file(container_path) as f:
        assert has_table(f, "cell_segmentation/serum_IgG")
        assert list_tables(f) == ["cell_segmentation/serum_IgG"]
        back = read_table(f, "cell_segmentation/serum_IgG")
    pd.testing.assert_frame_equal(back, table, check_dtype=False)
    assert back["label_id"].dtype.kind == "i" and back["is_infected"].dtype == bool


def test_h5_table_layout_is_plateviewer_layout(tmp_path):
    path = tmp_path / "t.h5"
    with open_file(path, "a") as f:
        write_table(f, "images/default", pd.DataFrame({"image_name": ["x"], "n_cells": [4]}))
    with open_file(path) as f:
        group = f["tables/images/default"]
        assert group["cells"].shape == (1, 2) and group["cells"].dtype.kind == "O"
        assert [c.decode() for c in group["columns"][:]] == ["image_name", "n_cells"]
        assert group["visible"][:].tolist() == [True, True]


def test_downscale_mean_and_nearest():
    image = np.array([[0, 2, 4, 6], [2, 4, 6, 8]], dtype="float32")
    np.testing.assert_array_equal(downscale(image, 2), [[2, 6]])
    np.testing.assert_array_equal(downscale(image.astype(int), 2, is_label=True), [[0, 4]])


@pytest.mark.parametrize("well", ["A01", "H12", "P24"])
def test_naming_rows_a_to_p(well):
    name = parse_image_name(f"Well{well}_Point{well}_0002_ChannelDAPI,WF_GFP,TRITC,WF_Cy5,DIA_Seq0042")
    assert name.well == well and name.site_name == f"{well}-0002" and name.seq == 42
    assert name.channels == ("DAPI", "WF_GFP", "TRITC", "WF_Cy5", "DIA")


@pytest.mark.parametrize("stem", ["WellQ01_PointQ01_0001_ChannelDAPI_Seq0001", "image_001", "WellA1_PointA1_1_ChannelDAPI_Seq1"])
def test_naming_rejects_with_the_scheme_in_the_message(stem):
    with pytest.raises(ValueError, match="naming scheme"):
        parse_image_name(stem)


def test_unknown_extension_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown container extension"):
        open_file(tmp_path / "x.tif")
