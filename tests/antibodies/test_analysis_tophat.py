import numpy as np
import pytest
from skimage import morphology

from antibodies.analysis.tophat import dilate_disk, erode_disk, open_disk, white_tophat


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_white_tophat_equals_skimage_disk_tophat(radius, dtype):
    rng = np.random.default_rng(radius)
    image = (rng.random((41, 37)) * 1000).astype(dtype)
    expected = morphology.white_tophat(image, morphology.disk(radius))
    result = white_tophat(image, radius)
    assert result.dtype == (np.uint16 if dtype == np.uint16 else np.float32)
    np.testing.assert_array_equal(result, expected.astype(result.dtype))


def test_white_tophat_radius_20_equals_skimage_ignore_border_mode():
    rng = np.random.default_rng(0)
    image = (rng.random((30, 45)) * 4000).astype(np.uint16)
    expected = morphology.white_tophat(image, morphology.disk(20), mode="ignore")
    np.testing.assert_array_equal(white_tophat(image, 20), expected.astype(np.float32))


@pytest.mark.parametrize("radius", [1, 4, 9])
def test_erode_and_dilate_equal_skimage(radius):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 50, size=(23, 29)).astype(np.int32)
    footprint = morphology.disk(radius)
    np.testing.assert_array_equal(erode_disk(image, radius), morphology.erosion(image, footprint))
    np.testing.assert_array_equal(dilate_disk(image, radius), morphology.dilation(image, footprint))
    np.testing.assert_array_equal(open_disk(image, radius), morphology.opening(image, footprint))


def test_white_tophat_keeps_small_spot_and_removes_flat_background():
    image = np.full((15, 15), 100, dtype=np.uint16)
    image[6:9, 6:9] = 130
    result = white_tophat(image, radius=3)
    expected = np.zeros((15, 15), dtype=np.float32)
    expected[6:9, 6:9] = 30
    np.testing.assert_array_equal(result, expected)


def test_white_tophat_radius_zero_is_zero():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(white_tophat(image, 0), np.zeros((3, 4), np.float32))


def test_white_tophat_does_not_modify_input():
    image = np.arange(20, dtype=np.float32).reshape(4, 5)
    copy = image.copy()
    white_tophat(image, 2)
    np.testing.assert_array_equal(image, copy)


def test_white_tophat_rejects_non_2d_and_negative_radius():
    with pytest.raises(ValueError, match="2-D"):
        white_tophat(np.zeros((2, 3, 4)), 1)
    with pytest.raises(ValueError, match="radius"):
        white_tophat(np.zeros((3, 4)), -1)


@pytest.mark.parametrize("distance", [0, 1, 2, 5, 8, 13])
def test_near_mask_equals_distance_transform(distance):
    from scipy import ndimage

    from antibodies.analysis.tophat import near_mask

    rng = np.random.default_rng(distance)
    mask = rng.random((37, 52)) < 0.01
    mask[0, 51] = mask[36, 0] = True  # corners: pixels outside the image must not count
    expected = ndimage.distance_transform_edt(~mask) < distance
    np.testing.assert_array_equal(near_mask(mask, distance), expected)
