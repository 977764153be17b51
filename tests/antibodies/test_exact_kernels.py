"""Faster kernels give the values of the plain numpy/scipy formulas they replace, bit for bit."""
import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

from antibodies.analysis.cells import _distance_to_nuclei
from antibodies.analysis.nuclei import contrast_to_noise, counted_percentiles, normalize_percentile


def _plain_normalize(image, low=1.0, high=99.8, eps=1e-20):
    image = np.asarray(image, dtype=np.float32)
    low_value, high_value = np.percentile(image, (low, high))
    return ((image - low_value) / (high_value - low_value + eps)).astype(np.float32)


def _plain_contrast_to_noise(image, high=99.8):
    image = np.asarray(image, dtype=np.float32)
    differences = np.diff(image[::4], axis=1).ravel()
    sigma = 1.4826 * np.median(np.abs(differences - np.median(differences))) / np.sqrt(2.0)
    high_value, median = np.percentile(image, (high, 50.0))
    return float((high_value - median) / max(sigma, 1e-6))


def _images(dtype):
    rng = np.random.default_rng(7)
    top = np.iinfo(dtype).max
    for shape in [(1, 2), (2, 2), (5, 9), (64, 65), (200, 301), (7, 1)]:
        yield rng.integers(0, top, size=shape, endpoint=True).astype(dtype)
        yield rng.poisson(rng.uniform(1, 300), size=shape).clip(0, top).astype(dtype)
        yield np.full(shape, rng.integers(0, top), dtype)
        stepped = rng.normal(100, 20, size=shape).clip(0, top).astype(dtype)
        stepped[: shape[0] // 3] += 40
        yield stepped


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_counted_statistics_equal_numpy(dtype):
    for image in _images(dtype):
        for q in [(1.0, 99.8), (0, 100), (50, 50), (3.3, 97.1)]:
            np.testing.assert_array_equal(counted_percentiles(np.bincount(image.ravel()), q),
                                          np.percentile(image, q))
            ours, plain = normalize_percentile(image, *q), _plain_normalize(image, *q)
            assert ours.dtype == plain.dtype == np.float32
            np.testing.assert_array_equal(ours, plain)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a one-column image: the median of no difference
            np.testing.assert_equal(contrast_to_noise(image), _plain_contrast_to_noise(image))


def test_float_images_keep_the_plain_statistics():
    image = np.random.default_rng(1).normal(size=(40, 50)).astype(np.float32)
    np.testing.assert_array_equal(normalize_percentile(image), _plain_normalize(image))
    assert contrast_to_noise(image) == _plain_contrast_to_noise(image)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 3), (64, 80), (300, 257)])
@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.6])
def test_distance_to_nuclei_equals_scipy(shape, fraction):
    nuclei = (np.random.default_rng(2).random(shape) < fraction).astype(np.int32)
    nuclei[0, 0] = 1
    expected = ndi.distance_transform_edt(nuclei == 0).astype(np.float32)
    np.testing.assert_array_equal(_distance_to_nuclei(nuclei), expected)


def _random_polygons(rng, kind, shape):
    n, rays = rng.integers(1, 30), rng.choice([3, 5, 8, 32])
    centers = rng.uniform(-8, np.array(shape) + 8, size=(n, 2))
    phis = np.linspace(0, 2 * np.pi, rays, endpoint=False)
    dist = rng.uniform(0, 12, size=(n, rays))
    coord = (dist[:, None] * np.array([np.sin(phis), np.cos(phis)])).astype(np.float32) + centers[..., None]
    if kind == "half pixels":
        coord = np.round(coord * 2) / 2
    elif kind == "near zero":
        coord[rng.random(coord.shape) < 0.3] = rng.choice([0.0, 1e-13, -1e-13, 1e-7, -3e-8, 2.0000002])
    elif kind == "self-crossing":
        coord = rng.uniform(-3, max(shape) + 3, size=(n, 2, rays))
    elif kind == "integer":
        coord = np.round(coord)
    elif kind == "far from the origin":
        coord = coord + 600.0
    return coord.astype(np.float32), np.round(rng.random(n), 1)


@pytest.mark.parametrize(
    "kind", ["star", "half pixels", "near zero", "self-crossing", "integer", "far from the origin"])
def test_render_polygons_draws_what_stardist_draws(kind):
    from stardist.geometry.geom2d import polygons_to_label_coord

    from antibodies.analysis.polygons import render_polygons

    rng = np.random.default_rng(11)
    for _ in range(60):
        shape = tuple(int(s) + (640 if kind == "far from the origin" else 0) for s in rng.integers(1, 60, size=2))
        coord, prob = _random_polygons(rng, kind, shape)
        order = np.argsort(prob, kind="stable")
        expected = polygons_to_label_coord(coord[order], shape=shape, labels=order)
        np.testing.assert_array_equal(render_polygons(coord, prob, shape), expected)


def test_histogram_of_camera_counts_is_the_clipped_bincount():
    from antibodies.analysis.background import N_BINS, intensity_histogram

    image = np.random.default_rng(4).integers(0, 65536, size=(50, 60)).astype(np.uint16)
    mask = image > 30000
    for selection in (None, mask):
        values = image if selection is None else image[selection]
        expected = np.bincount(np.clip(values.ravel().astype(np.int64), 0, N_BINS - 1), minlength=N_BINS)
        np.testing.assert_array_equal(intensity_histogram(image, selection), expected)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "bool", "int16", "float32"])
@pytest.mark.parametrize("n_segments", [1, 7, 70000])
def test_sorting_by_segment_then_value_equals_two_stable_sorts(dtype, n_segments):
    from antibodies.analysis.features import _sort_by_segment_then_value

    rng = np.random.default_rng(5)
    segments = rng.integers(0, n_segments, size=5000)
    values = (rng.integers(0, 300, size=5000) if dtype != "float32" else rng.normal(size=5000)).astype(dtype)
    expected = values[np.lexsort((values, segments))]
    result = _sort_by_segment_then_value(segments, values, n_segments)
    assert result.dtype == values.dtype
    np.testing.assert_array_equal(result, expected)


def _block_reduce_surface(image, mask, block=16, sigma=3.0, min_fraction=0.05):
    """background_surface as it was written first: float64 block_reduce sums and ndimage.zoom."""
    from skimage.measure import block_reduce

    from antibodies.analysis.local_background import tile_levels

    image = np.asarray(image, dtype=np.float64)
    if not mask.any():
        return np.full(image.shape, image.mean(), dtype=np.float32)
    sums = block_reduce(np.where(mask, image, 0.0), block, np.sum)
    weights = block_reduce(mask.astype(np.float64), block, np.sum)
    tiles = tile_levels(sums, weights, sigma, min_fraction * block * block, image[mask].mean())
    zoomed = ndi.zoom(tiles, block, order=1, mode="nearest", grid_mode=True)
    return zoomed[:image.shape[0], :image.shape[1]].astype(np.float32)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_background_surface_equals_block_reduce_and_zoom(dtype):
    from antibodies.analysis.local_background import background_surface

    rng = np.random.default_rng(9)
    for _ in range(12):
        shape = tuple(rng.integers(1, 150, size=2))
        image = (rng.integers(0, 255, size=shape) * (1.37 if dtype == "float32" else 1)).astype(dtype)
        mask = rng.random(shape) < rng.choice([0.0, 0.01, 0.3, 0.9])
        for block, sigma in [(16, 3.0), (5, 1.0)]:
            expected = _block_reduce_surface(image, mask, block, sigma)
            result = background_surface(image, mask, block, sigma)
            assert result.dtype == expected.dtype
            np.testing.assert_array_equal(result, expected)


def test_render_polygons_leaves_out_nan_probabilities_as_stardist_does():
    from stardist.geometry.geom2d import dist_to_coord, polygons_to_label

    from antibodies.analysis.polygons import render_polygons

    rng = np.random.default_rng(12)
    points = rng.uniform(5, 45, size=(12, 2))
    dist = rng.uniform(1, 8, size=(12, 16))
    prob = rng.random(12)
    prob[[2, 7]] = np.nan
    coord = dist_to_coord(dist, points)
    expected = polygons_to_label(dist, points, (50, 50), prob=prob)
    np.testing.assert_array_equal(render_polygons(coord, prob, (50, 50)), expected)
    np.testing.assert_array_equal(render_polygons(coord[:0], prob[:0], (50, 50)), np.zeros((50, 50), np.int32))


@pytest.mark.parametrize("shape", [(1, 5), (6, 1), (40, 57)])
def test_label_edges_of_labelled_pixels_are_skimages_inner_boundaries(shape):
    from skimage.segmentation import find_boundaries

    from antibodies.analysis.features import label_edges

    rng = np.random.default_rng(3)
    for labels in (rng.integers(0, 4, size=shape), np.repeat(rng.integers(0, 3, size=(shape[0], 1)), shape[1], 1)):
        expected = find_boundaries(labels, mode="inner")
        assert np.array_equal(label_edges(labels) & (labels > 0), expected)
