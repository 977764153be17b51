import numpy as np
import pytest

from antibodies.analysis.preprocess import NORMALISED_SCALE, as_counts, correct_flatfield, split_channels


def test_split_channels_maps_names_to_roles_in_page_order():
    stack = np.arange(3 * 2 * 2).reshape(3, 2, 2)
    images = split_channels(
        stack, ["dapi", "gfp", "igg"], {"dapi": "nuclei", "gfp": "virus", "igg": "serum_IgG"}
    )
    assert list(images) == ["nuclei", "virus", "serum_IgG"]
    np.testing.assert_array_equal(images["virus"], [[4, 5], [6, 7]])
    np.testing.assert_array_equal(images["serum_IgG"], [[8, 9], [10, 11]])


def test_split_channels_without_roles_uses_names_and_keeps_unmapped_names():
    stack = np.zeros((2, 3, 4))
    assert list(split_channels(stack, ["a", "b"])) == ["a", "b"]
    assert list(split_channels(stack, ["a", "b"], {"a": "nuclei", "zzz": "virus"})) == [
        "nuclei",
        "b",
    ]


def test_split_channels_reads_a_single_page_as_one_channel():
    page = np.ones((3, 4))
    images = split_channels(page, ["dapi"], {"dapi": "nuclei"})
    assert images["nuclei"].shape == (3, 4)


def test_split_channels_rejects_count_mismatch():
    with pytest.raises(ValueError, match="3 pages but 2 channel names"):
        split_channels(np.zeros((3, 4, 4)), ["a", "b"])


def test_split_channels_rejects_duplicate_roles():
    with pytest.raises(ValueError, match="role 'serum'"):
        split_channels(np.zeros((2, 4, 4)), ["a", "b"], {"a": "serum", "b": "serum"})


def test_correct_flatfield_hand_computed():
    image = np.array([[110, 60], [30, 10]], dtype=np.uint16)
    divisor = np.array([[1.0, 0.5], [0.25, 1.0]])
    result = correct_flatfield(image, 10, divisor)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, [[110, 110], [90, 10]])


def test_correct_flatfield_with_offset_image():
    image = np.array([[12.0, 24.0]])
    offset = np.array([[2.0, 4.0]])
    result = correct_flatfield(image, offset, np.array([[2.0, 4.0]]))
    np.testing.assert_array_equal(result, [[7.0, 9.0]])


def test_correct_flatfield_does_not_modify_input():
    image = np.array([[12.0, 24.0]], dtype=np.float32)
    correct_flatfield(image, 2.0, np.array([[2.0, 4.0]]))
    np.testing.assert_array_equal(image, [[12.0, 24.0]])


def test_correct_flatfield_shape_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"divisor shape \(3, 3\).*image shape \(2, 2\)"):
        correct_flatfield(np.zeros((2, 2)), 0, np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"offset shape \(1, 2\).*image shape \(2, 2\)"):
        correct_flatfield(np.zeros((2, 2)), np.zeros((1, 2)), np.ones((2, 2)))


def test_correct_flatfield_rejects_non_positive_divisor():
    with pytest.raises(ValueError, match="positive"):
        correct_flatfield(np.zeros((1, 2)), 0, np.array([[1.0, 0.0]]))


def test_as_counts_scales_only_float_images_within_zero_one():
    counts = np.array([[0, 1000], [65535, 7]], np.uint16)
    assert as_counts(counts)[0] is counts
    normalised = counts / np.float32(65535)  # skimage.img_as_float of 16-bit data
    scaled, factor = as_counts(normalised)
    assert factor == NORMALISED_SCALE and scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, counts)  # the counts come back exactly
    for already_counts in (counts.astype(np.float32), np.array([[-0.1, 0.5]]), np.full((2, 2), np.nan)):
        assert as_counts(already_counts)[1] == 1.0
    with_nan = normalised.copy()
    with_nan[0, 0] = np.nan
    assert as_counts(with_nan)[1] == NORMALISED_SCALE
