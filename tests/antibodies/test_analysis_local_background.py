import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.background import BackgroundStats
from antibodies.analysis.features import background_pixels, cell_features
from antibodies.analysis.local_background import (
    SURFACE_EXCLUSION, background_surface, cell_local_backgrounds)
from antibodies.analysis.scores import ImageCells, score_images


def hazy_field(ratio=2.0):
    """(96, 192) field whose background rises from 100 (left) to 500 (right).

    Eight 20 x 20 cells; the four on the right are infected with ``ratio`` x the control signal (100).
    Returns the serum image, the cell labels and the infection table.
    """
    background = np.tile(np.linspace(100.0, 500.0, 192), (96, 1))
    labels = np.zeros((96, 192), dtype=np.int32)
    signal = np.zeros((96, 192))
    label = 0
    for r in (14, 60):
        for c in (10, 50, 120, 160):
            label += 1
            labels[r:r + 20, c:c + 20] = label
            signal[r:r + 20, c:c + 20] = 100.0 * (ratio if c >= 96 else 1.0)
    infected = [c >= 96 for _ in (14, 60) for c in (10, 50, 120, 160)]
    table = pd.DataFrame({"label_id": np.arange(1, 9), "is_infected": infected,
                          "is_control": [not i for i in infected]})
    return background + signal, labels, table


def test_surface_of_a_constant_background_is_that_constant():
    image = np.full((64, 64), 250.0)
    mask = np.ones((64, 64), bool)
    mask[10:40, 10:40] = False
    np.testing.assert_allclose(background_surface(image, mask, block=8), 250.0)


def test_surface_without_background_pixels_is_the_image_mean():
    image = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(background_surface(image, np.zeros((4, 4), bool)), image.mean())


def test_surface_follows_a_ramp_under_cells():
    image, labels, _ = hazy_field()
    surface = background_surface(image, background_pixels(labels, SURFACE_EXCLUSION), block=8, sigma=1.0)
    truth = np.tile(np.linspace(100.0, 500.0, 192), (96, 1))
    under = labels > 0
    assert np.abs(surface - truth)[under].max() < 15.0      # a single median is off by up to 200


def test_local_backgrounds_are_aligned_with_the_given_ids():
    labels = np.array([[0, 1, 1, 3]])
    values = cell_local_backgrounds(labels, np.array([[9.0, 1.0, 3.0, 5.0]]), [3, 1])
    np.testing.assert_allclose(values, [5.0, 2.0])


@pytest.mark.parametrize("per_cell, expected", [(True, 2.0), (False, None)])
def test_per_cell_background_recovers_the_ratio_under_a_haze_gradient(per_cell, expected):
    image, labels, infection = hazy_field(ratio=2.0)
    table = cell_features(labels, image)
    surface = background_surface(image, background_pixels(labels, SURFACE_EXCLUSION), block=8, sigma=1.0)
    table["local_background"] = cell_local_backgrounds(labels, surface, table["label_id"])
    image_background = {"serum_IgG": BackgroundStats(float(np.median(image[labels == 0])), 1.0)}
    record = ImageCells("a", "A01-0000", "A01", {"serum_IgG": table}, infection, image_background, per_cell)
    score = score_images([record], image_background, ["serum_IgG"])["serum_IgG_score"].iloc[0]
    if expected is None:      # one number per image: controls (dark side) lose most of their signal
        assert abs(score - 2.0) > 1.0
    else:
        assert score == pytest.approx(expected, rel=0.05)


def test_per_cell_background_needs_the_column():
    image, labels, infection = hazy_field()
    table = cell_features(labels, image)
    record = ImageCells("a", "A01-0000", "A01", {"serum_IgG": table}, infection,
                        {"serum_IgG": BackgroundStats(300.0, 1.0)}, per_cell_background=True)
    with pytest.raises(ValueError, match="force-recompute"):
        score_images([record], record.backgrounds, ["serum_IgG"])
