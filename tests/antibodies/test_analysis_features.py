import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.features import (
    CAMERA_CEILINGS, camera_ceiling, cell_clipped_fractions, cell_features, label_sizes)

COLUMNS = [
    "label_id", "sums", "means", "medians", "mads", "sizes",
    "top10", "top30", "top50", "quantile0.95",
]


def two_cells():
    """6x6: cell 1 = left half (values 1..18), cell 5 = 6 pixels top right."""
    labels = np.zeros((6, 6), dtype=np.int32)
    labels[:, :3] = 1
    labels[:2, 3:] = 5
    image = np.zeros((6, 6), dtype=np.uint16)
    image[:, :3] = np.arange(1, 19).reshape(6, 3)
    image[:2, 3:] = [[4, 0, 8], [2, 2, 10]]
    image[2:, 3:] = 1000  # background, never measured
    return labels, image


def test_cell_features_hand_computed():
    labels, image = two_cells()
    table = cell_features(labels, image)
    assert list(table.columns) == COLUMNS
    assert table["label_id"].tolist() == [1, 5]
    assert table["sizes"].tolist() == [18, 6]
    assert table["sums"].tolist() == [171.0, 26.0]
    assert table["means"].tolist() == [9.5, 26 / 6]
    assert table["medians"].tolist() == [9.5, 3.0]
    # deviations of cell 5 from 3: 1, 3, 5, 1, 1, 7 -> median (1 + 3) / 2
    assert table["mads"].tolist() == [4.5, 2.0]
    assert table["top10"].tolist() == [13.5, 26 / 6]
    assert table["top30"].tolist() == [9.5, 26 / 6]
    assert table["top50"].tolist() == [9.5, 26 / 6]
    # linear quantile: cell 1 at position 17 * 0.95 = 16.15 -> 17.15;
    # cell 5 at 5 * 0.95 = 4.75 between 8 and 10 -> 9.5
    assert table["quantile0.95"].tolist() == pytest.approx([17.15, 9.5])


def test_cell_features_dtypes():
    labels, image = two_cells()
    table = cell_features(labels, image)
    assert table["label_id"].dtype == np.int64
    assert table["sizes"].dtype == np.int64
    assert table["means"].dtype == np.float64


def test_cell_features_exclude_nuclei_leaves_nucleus_pixels_out():
    labels, image = two_cells()
    nuclei = np.zeros_like(labels)
    nuclei[:5, :3] = 1  # all of cell 1 but its last row (16, 17, 18)
    table = cell_features(labels, image, nuclei, exclude_nuclei=True)
    assert table["sizes"].tolist() == [3, 6]
    assert table["sums"].tolist() == [51.0, 26.0]
    assert table["medians"].tolist() == [17.0, 3.0]
    assert table["mads"].tolist() == [1.0, 2.0]


def test_cell_features_without_pixels_left_gives_nan_and_size_zero():
    labels, image = two_cells()
    nuclei = (labels == 5).astype(np.int32) * 7
    table = cell_features(labels, image, nuclei, exclude_nuclei=True)
    assert table["label_id"].tolist() == [1, 5]
    row = table.set_index("label_id").loc[5]
    assert row["sizes"] == 0
    assert row.drop("sizes").isna().all()
    assert table.set_index("label_id").loc[1, "sums"] == 171.0


def test_cell_features_nuclei_are_ignored_unless_excluded():
    labels, image = two_cells()
    nuclei = labels.copy()
    pd.testing.assert_frame_equal(
        cell_features(labels, image, nuclei), cell_features(labels, image)
    )


def test_cell_features_quantile_columns():
    labels, image = two_cells()
    table = cell_features(labels, image, quantiles=(0.5, 0.0, 1.0))
    assert list(table.columns[-3:]) == ["quantile0.5", "quantile0.0", "quantile1.0"]
    assert table["quantile0.5"].tolist() == table["medians"].tolist()
    assert table["quantile0.0"].tolist() == [1.0, 0.0]
    assert table["quantile1.0"].tolist() == [18.0, 10.0]


def test_cell_features_without_cells_is_empty_table():
    table = cell_features(np.zeros((4, 4), dtype=int), np.ones((4, 4)))
    assert list(table.columns) == COLUMNS
    assert len(table) == 0


def test_cell_features_match_per_label_numpy():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 9, size=(40, 50))
    labels[labels == 4] = 300
    image = rng.random((40, 50)).astype(np.float32) * 100
    nuclei = labels * rng.integers(0, 2, size=labels.shape)
    table = cell_features(labels, image, nuclei, exclude_nuclei=True, quantiles=(0.95, 0.3))
    for row in table.to_dict("records"):
        values = image[(labels == row["label_id"]) & (nuclei == 0)].astype(np.float64)
        median = np.median(values)
        assert row["sizes"] == values.size
        assert row["sums"] == pytest.approx(values.sum(), rel=1e-12)
        assert row["medians"] == median
        assert row["mads"] == np.median(np.abs(values - median))
        assert row["top10"] == pytest.approx(np.sort(values)[-10:].mean(), rel=1e-12)
        assert row["top50"] == pytest.approx(np.sort(values)[-50:].mean(), rel=1e-12)
        assert row["quantile0.95"] == np.quantile(values, 0.95)
        assert row["quantile0.3"] == np.quantile(values, 0.3)


def test_cell_features_errors():
    labels, image = two_cells()
    with pytest.raises(ValueError, match="shape"):
        cell_features(labels, image[:5])
    with pytest.raises(ValueError, match="nuclei"):
        cell_features(labels, image, exclude_nuclei=True)
    with pytest.raises(ValueError, match="integer"):
        cell_features(labels.astype(float), image)


def test_label_sizes():
    labels, _ = two_cells()
    table = label_sizes(labels)
    assert list(table.columns) == ["label_id", "sizes"]
    assert table.values.tolist() == [[1, 18], [5, 6]]


def test_exclude_mask_leaves_pixels_out_of_every_cell():
    from antibodies.analysis.features import cell_border_band

    labels = np.array([[1, 1, 1, 2, 2, 2]] * 3)
    image = np.arange(18).reshape(3, 6)
    band = cell_border_band(labels, 1)
    assert band.astype(int).tolist() == [[0, 0, 1, 1, 0, 0]] * 3  # the shared border, not the image edge
    table = cell_features(labels, image, exclude=band)
    assert table["sizes"].tolist() == [6, 6] and table["means"].tolist() == [6.5, 10.5]


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_cell_mads_equal_numpy_with_ties_and_odd_even_sizes(dtype):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 30, size=(33, 47))
    image = rng.integers(0, 6, size=labels.shape).astype(dtype)  # many ties
    image[labels == 3] = 9  # a constant cell: MAD 0
    table = cell_features(labels, image)
    for row in table.to_dict("records"):
        values = image[labels == row["label_id"]].astype(np.float64)
        assert row["mads"] == np.median(np.abs(values - np.median(values)))


def test_cell_border_band_equals_distance_transform():
    from scipy import ndimage

    from antibodies.analysis.features import cell_border_band

    rng = np.random.default_rng(5)
    labels = np.kron(rng.integers(0, 4, size=(6, 7)), np.ones((9, 11), int))
    for width in (1, 3, 8):
        edges = np.zeros(labels.shape, bool)
        edges[:, 1:] |= np.diff(labels, axis=1) != 0
        edges[:, :-1] |= np.diff(labels, axis=1) != 0
        edges[1:] |= np.diff(labels, axis=0) != 0
        edges[:-1] |= np.diff(labels, axis=0) != 0
        expected = (labels > 0) & (ndimage.distance_transform_edt(~edges) < width)
        np.testing.assert_array_equal(cell_border_band(labels, width), expected)


@pytest.mark.parametrize("ceiling", CAMERA_CEILINGS)
def test_only_a_camera_ceiling_counts_as_clipping(ceiling):
    image = np.array([[3, ceiling, ceiling - 1]])
    assert camera_ceiling(image) == ceiling and camera_ceiling(image[:, ::2]) is None
    assert camera_ceiling(image.astype(np.float32)) == ceiling  # a normalised float image read as counts


def test_clipped_fractions_per_cell_in_the_order_asked():
    labels = np.array([[1, 1, 1, 1, 2, 2, 0]])
    image = np.array([[4095, 10, 10, 10, 4095, 4095, 4095]])
    np.testing.assert_array_equal(cell_clipped_fractions(labels, image, [2, 1, 3], 4095), [1.0, 0.25, np.nan])
    np.testing.assert_array_equal(cell_clipped_fractions(labels, image, [1, 2], None), [0.0, 0.0])


def test_clipping_is_read_from_the_uncorrected_copy_of_a_flat_field_corrected_channel(tmp_path):
    from antibodies.keys import raw_key
    from antibodies.tasks.features import CellFeatures
    from luigi_tasks.io import open_file, write_image

    raw = np.array([[100, 65535], [65535, 200]], np.uint16)
    with open_file(tmp_path / "image.h5", "a") as container:
        write_image(container, "serum_IgG", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
        assert CellFeatures.camera_counts(container, "serum_IgG", "as stored") == "as stored"
        write_image(container, raw_key("serum_IgG"), raw)
        np.testing.assert_array_equal(CellFeatures.camera_counts(container, "serum_IgG", "as stored"), raw)
