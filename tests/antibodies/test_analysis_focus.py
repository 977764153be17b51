import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from antibodies.analysis.focus import nucleus_edge_sharpness
from antibodies.analysis.qc import OutOfFocusQC, flag_images


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


def test_only_the_image_far_softer_than_the_plate_is_out_of_focus():
    images = pd.DataFrame({"image_name": list("abcde"), "n_cells": [50] * 5,
                           "nucleus_edge_sharpness": [0.25, 0.22, 0.28, 0.12, np.nan]})
    flags = flag_images(images, (OutOfFocusQC(),))
    assert flags["is_outlier"].tolist() == [False, False, False, True, False]
    assert flags["outlier_type"][3] == "out of focus (nuclei edges 0.47 as sharp as the plate's 75th percentile < 0.6)"
    assert not flag_images(images, (OutOfFocusQC(min_ratio=0.4),))["is_outlier"].any()
    assert not flag_images(images, (OutOfFocusQC(min_ratio=0.0),))["is_outlier"].any()


def blurred_plate(*sigmas):
    """Image table of nine disks imaged once per ``sigma`` (Gaussian blur, px): its `nucleus_edge_sharpness`."""
    labels = disks(9)
    return pd.DataFrame({"nucleus_edge_sharpness": [
        nucleus_edge_sharpness(ndi.gaussian_filter(500.0 * (labels > 0) + 100.0, sigma), labels) for sigma in sigmas]})


def test_a_plate_soft_throughout_passes_and_one_soft_site_on_a_sharp_plate_does_not():
    assert (OutOfFocusQC().flag(blurred_plate(3.0, 3.2, 2.8, 3.0, 4.0)) == "").all()
    assert OutOfFocusQC().flag(blurred_plate(1.0, 1.2, 0.8, 1.0, 4.0)).tolist()[4].startswith("out of focus")


def test_a_plate_soft_over_more_than_half_is_caught_against_its_sharper_images():
    sharp, soft = [0.25, 0.24, 0.26, 0.25], [0.11, 0.12, 0.10, 0.11, 0.12, 0.11]
    table = pd.DataFrame({"nucleus_edge_sharpness": sharp + soft})
    assert (OutOfFocusQC(reference_quantile=0.5).flag(table) == "").all()  # the median is soft itself
    flags = OutOfFocusQC(reference_quantile=0.75).flag(table)
    assert (flags[:4] == "").all() and flags[4:].str.startswith("out of focus").all()
    assert flags[4] == "out of focus (nuclei edges 0.44 as sharp as the plate's 75th percentile < 0.6)"


def test_a_plate_soft_throughout_is_caught_only_by_an_absolute_floor():
    soft = blurred_plate(4.0, 4.5, 5.0, 4.0)
    sharp = blurred_plate(1.0)["nucleus_edge_sharpness"].iloc[0]
    floor = 0.6 * sharp  # what this instrument's focused images read, with a margin
    assert (OutOfFocusQC().flag(soft) == "").all()
    flags = OutOfFocusQC(min_sharpness=floor).flag(soft)
    assert flags.str.endswith("/px, [qc] image_min_absolute_sharpness)").all(), flags.tolist()
    focused = pd.DataFrame({"nucleus_edge_sharpness": [sharp, np.nan]})
    assert (OutOfFocusQC(min_sharpness=floor).flag(focused) == "").all()
