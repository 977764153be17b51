import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from antibodies.analysis.focus import focus_warnings, nucleus_edge_sharpness


def disks(count, radius=7, size=96):
    """Labels of ``count`` disks on a grid."""
    labels = np.zeros((size, size), int)
    yy, xx = np.mgrid[:size, :size]
    for index in range(count):
        cy, cx = 16 + 32 * (index // 3), 16 + 32 * (index % 3)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = index + 1
    return labels


@pytest.mark.parametrize("level, count", [(50.0, 9), (2000.0, 9), (500.0, 2)])
def test_sharpness_falls_with_blur_whatever_the_brightness_or_number_of_nuclei(level, count):
    labels = disks(count)
    values = [nucleus_edge_sharpness(ndi.gaussian_filter(level * (labels > 0) + 100.0, sigma), labels)
              for sigma in (0.5, 1.5, 3.0, 6.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[0] == pytest.approx(1 / np.sqrt(2 * np.pi * 1.25), rel=0.1)


def test_sharpness_without_nuclei_is_nan():
    assert np.isnan(nucleus_edge_sharpness(np.ones((8, 8)), np.zeros((8, 8), int)))


def test_focus_warnings_name_only_the_soft_images():
    images = pd.DataFrame({"image_name": list("abcde"), "well_name": ["A01"] * 5,
                           "nucleus_edge_sharpness": [0.25, 0.22, 0.28, 0.12, np.nan]})
    warnings = focus_warnings(images)
    assert warnings["image_name"].tolist() == ["d"] and warnings["channel"].tolist() == ["nuclei"]
    assert focus_warnings(images, min_ratio=0.5).empty
