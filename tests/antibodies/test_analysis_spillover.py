import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from antibodies.analysis.background import BackgroundStats
from antibodies.analysis.features import cell_features
from antibodies.analysis.scores import ImageCells, score_images
from antibodies.analysis.spillover import (
    EXCHANGE_REACH, border_exchange_sums, cell_contacts, compensate_spillover, count_exchange_width, exchange_width,
    neighbour_contrast)

SIGMA = 1.25
WIDTH = SIGMA / np.sqrt(2 * np.pi)  # what a Gaussian PSF carries across a straight border


def test_contacts_skip_background_and_count_pixel_pairs_once():
    labels = np.array([[1, 1, 0, 2],
                       [1, 1, 2, 2],
                       [3, 3, 3, 0]])
    pairs, counts = cell_contacts(labels)
    assert pairs.tolist() == [[1, 2], [1, 3], [2, 3]]
    assert counts.tolist() == [1, 2, 1]


def test_contacts_of_a_label_image_without_touching_cells_are_empty():
    pairs, counts = cell_contacts(np.array([[1, 0, 2]]))
    assert pairs.shape == (0, 2) and counts.shape == (0,)


def test_contrast_conserves_the_signal_and_skips_unmeasured_neighbours():
    rng = np.random.default_rng(0)
    labels = ndi.zoom(rng.integers(1, 9, size=(6, 6)), 8, order=0)
    ids = np.arange(1, 9)
    means = rng.uniform(50, 500, size=8)
    areas = np.bincount(labels.ravel())[ids]
    assert np.sum(areas * neighbour_contrast(labels, ids, means)) == pytest.approx(0.0, abs=1e-6)
    # without cell 8 in the table, its borders do not count
    only = neighbour_contrast(labels, ids[:-1], means[:-1])
    np.testing.assert_allclose(only, neighbour_contrast(np.where(labels == 8, 0, labels), ids[:-1], means[:-1]))


def test_compensation_undoes_the_blur_across_a_straight_border():
    labels = np.repeat(np.repeat([[1, 2]], 20, axis=0), 40, axis=1)      # two 20 x 40 cells side by side
    truth = np.where(labels == 1, 100.0, 300.0)
    blurred = ndi.gaussian_filter(truth, SIGMA, mode="nearest")
    table = cell_features(labels, blurred)
    contrast = neighbour_contrast(labels, table["label_id"], table["means"])
    raw = table["means"].to_numpy()
    compensated = compensate_spillover(raw, contrast, WIDTH)
    assert np.abs(raw / [100.0, 300.0] - 1).max() > 0.02
    np.testing.assert_allclose(compensated, [100.0, 300.0], rtol=0.002)


def mosaic(ratio):
    """(160, 160) field of 16 x 16 square cells, every fifth infected (``ratio`` x the controls' 100), blurred."""
    labels = np.arange(1, 101).reshape(10, 10).repeat(16, axis=0).repeat(16, axis=1)
    infected = np.arange(1, 101) % 5 == 0
    level = np.where(infected, 100.0 * ratio, 100.0)
    image = ndi.gaussian_filter(np.concatenate([[0.0], level])[labels], SIGMA, mode="nearest")
    infection = pd.DataFrame({"label_id": np.arange(1, 101), "is_infected": infected, "is_control": ~infected})
    return image, labels, infection


@pytest.mark.parametrize("width, tolerance", [(0.0, None), (WIDTH, 0.01)])
def test_a_minority_of_infected_cells_scores_its_ratio_only_when_compensated(width, tolerance):
    image, labels, infection = mosaic(ratio=2.5)
    table = cell_features(labels, image)
    table["neighbour_contrast"] = neighbour_contrast(labels, table["label_id"], table["means"])
    none = {"serum_IgG": BackgroundStats(0.0, 1.0)}
    record = ImageCells("a", "A01-0000", "A01", {"serum_IgG": table}, infection, spillover_width=width)
    score = score_images([record], none, ["serum_IgG"])["serum_IgG_score"].iloc[0]
    if tolerance is None:   # infected cells touch controls only: their signal leaks out
        assert score < 2.5 * 0.98
    else:
        assert score == pytest.approx(2.5, rel=tolerance)


def test_compensation_needs_the_column():
    image, labels, infection = mosaic(ratio=2.0)
    record = ImageCells("a", "A01-0000", "A01", {"serum_IgG": cell_features(labels, image)}, infection,
                        spillover_width=0.5)
    with pytest.raises(ValueError, match="spillover_width = 0"):
        score_images([record], {"serum_IgG": BackgroundStats(0.0, 1.0)}, ["serum_IgG"])


def _stripes(sigma, infected_every=3, width=25, n=16):
    """Vertical stripe cells, every ``infected_every``-th three times as bright, blurred by ``sigma`` over 10 counts."""
    from scipy import ndimage as ndi

    labels = np.repeat(np.arange(1, n + 1), width)[None, :].repeat(200, axis=0)
    ids = np.arange(1, n + 1)
    infected = ids % infected_every == 0
    truth = np.where(infected, 300.0, 100.0)[labels - 1]
    image = (ndi.gaussian_filter(truth, sigma) if sigma else truth) + 10.0
    means = np.array([image[labels == i].mean() for i in ids])
    return labels, image, ids, means, infected


ESTIMATORS = [exchange_width, count_exchange_width]


@pytest.mark.parametrize("estimate", ESTIMATORS)
@pytest.mark.parametrize("sigma", [1.25, 2.0])
def test_the_exchange_width_of_a_gaussian_blur_is_its_sigma_over_root_two_pi(sigma, estimate):
    labels, image, ids, means, infected = _stripes(sigma)
    sums = border_exchange_sums(labels, image, ids, means, np.full(ids.size, 10.0), infected, ~infected)
    assert list(sums.index) == list(range(EXCHANGE_REACH + 1))
    assert estimate(sums, min_support=10) == pytest.approx(sigma / np.sqrt(2 * np.pi), rel=0.1)


@pytest.mark.parametrize("estimate", ESTIMATORS)
def test_sharp_borders_exchange_nothing_and_a_plate_without_infected_cells_has_no_width(estimate):
    labels, image, ids, means, infected = _stripes(0.0)
    sums = border_exchange_sums(labels, image, ids, means, np.full(ids.size, 10.0), infected, ~infected)
    assert abs(estimate(sums, min_support=10)) < 1e-9
    none = np.zeros(ids.size, bool)
    assert estimate(border_exchange_sums(labels, image, ids, means, np.full(ids.size, 10.0), none, ~none)) is None


def test_dim_control_cells_next_to_infected_ones_bias_the_relative_fit_and_not_the_count_fit():
    labels, _, ids, _, infected = _stripes(0.0)
    level = np.where(infected, 300.0, 100.0)
    level[[1, 10]] = 4.0  # two control cells beside infected ones, barely over the background
    image = ndi.gaussian_filter(level[labels - 1], SIGMA) + 10.0
    means = np.array([image[labels == i].mean() for i in ids])
    sums = border_exchange_sums(labels, image, ids, means, np.full(ids.size, 10.0), infected, ~infected)
    assert count_exchange_width(sums, min_support=10) == pytest.approx(WIDTH, rel=0.1)
    assert exchange_width(sums, min_support=10) < 0.8 * WIDTH


def test_the_sera_of_one_image_share_their_distance_maps_and_get_the_same_sums():
    labels, image, ids, means, infected = _stripes(1.25)
    backgrounds = np.full(ids.size, 10.0)
    cache = {}
    for scale in (1.0, 3.0):  # two sera: the same cells, other levels
        args = (labels, image * scale, ids, means * scale, backgrounds * scale, infected, ~infected)
        pd.testing.assert_frame_equal(border_exchange_sums(*args, cache=cache), border_exchange_sums(*args))
    assert len(cache) == 1
