import logging

import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.background import (
    BACKGROUND_STRATEGIES, N_BINS, BackgroundStats, EmptyWellsBackground, FixedBackground,
    ImageBackground, ImageHistograms, MinWellBackground, WellBackground, image_backgrounds_table, PlateMedianBackground, accumulate_histograms,
    backgrounds_table, histogram_mad, histogram_median, histogram_stats, image_background_table,
    intensity_histogram, make_background_strategy, plate_background_counts, well_background_table)

NAN = float("nan")


def hist(*values):
    """Dense (65536,) histogram of the given integer values."""
    return np.bincount(np.asarray(values, dtype=np.int64), minlength=N_BINS).astype(np.int64)


def record(name, well, background, total=None):
    """One-channel ('ch') image record."""
    return ImageHistograms(name, well, {"ch": hist(*background)},
                           {"ch": hist(*(total if total is not None else background))})


# -- intensity_histogram ------------------------------------------------------

def test_histogram_floors_clips_and_skips_nan():
    image = np.array([[-3.0, 0.99, 1.0], [65535.5, 1e9, np.nan]])
    counts = intensity_histogram(image)
    assert counts.dtype == np.int64 and counts.shape == (N_BINS,)
    assert counts[0] == 2 and counts[1] == 1 and counts[65535] == 2
    assert counts.sum() == 5


def test_histogram_integer_image_and_mask():
    image = np.array([[7, 7], [9, 70000]], dtype=np.int64)
    mask = np.array([[True, False], [True, True]])
    counts = intensity_histogram(image, mask)
    assert counts[7] == 1 and counts[9] == 1 and counts[65535] == 1 and counts.sum() == 3


def test_histogram_uint16():
    counts = intensity_histogram(np.array([[0, 65535]], dtype=np.uint16))
    assert counts[0] == 1 and counts[65535] == 1


def test_histogram_mask_shape_mismatch():
    with pytest.raises(ValueError, match="mask shape"):
        intensity_histogram(np.zeros((2, 2)), np.zeros((2, 3), bool))


# -- exact median / MAD -------------------------------------------------------

@pytest.mark.parametrize("values, median, mad", [
    ([1, 2, 3, 4], 2.5, 1.0),
    ([5], 5.0, 0.0),
    ([3, 3, 9], 3.0, 0.0),
    ([0, 10], 5.0, 5.0),
    ([1, 1, 2, 2, 4, 6, 9], 2.0, 1.0),
    ([0, 65535, 65535], 65535.0, 0.0),
    ([10, 11, 12, 20, 30, 31], 16.0, 5.5),
])
def test_histogram_median_and_mad_exact(values, median, mad):
    counts = hist(*values)
    assert histogram_median(counts) == median == np.median(values)
    assert histogram_mad(counts) == mad == np.median(np.abs(np.array(values) - median))
    assert histogram_stats(counts) == BackgroundStats(median, mad)


def test_histogram_stats_short_histogram():
    assert histogram_stats([0, 1, 1, 1, 1]) == BackgroundStats(2.5, 1.0)


def test_empty_histogram_is_nan():
    assert np.isnan(histogram_median(np.zeros(N_BINS, np.int64)))
    assert np.isnan(histogram_mad(np.zeros(N_BINS, np.int64)))


def test_negative_counts_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        histogram_median([1, -1])


# -- accumulation and per image / well / plate tables -------------------------

@pytest.fixture
def plate():
    records = [
        record("a1", "A01", [10, 12]),
        record("a2", "A01", [14, 1000]),          # outlier image
        record("b1", "B01", [20, 22, 24]),
        record("c1", "C01", [1, 1]),             # outlier image, C01 has no valid image
    ]
    return accumulate_histograms(iter(records), outlier_images={"a2", "c1"})


def test_image_background_table(plate):
    table = image_background_table(plate)
    expected = pd.DataFrame({
        "image_name": ["a1", "a2", "b1", "c1"],
        "well_name": ["A01", "A01", "B01", "C01"],
        "ch_median": [11.0, 507.0, 22.0, 1.0],
        "ch_mad": [1.0, 493.0, 2.0, 0.0],
    })
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_well_background_table_skips_outlier_images(plate):
    table = well_background_table(plate)
    expected = pd.DataFrame({
        "well_name": ["A01", "B01", "C01"],
        "ch_median": [11.0, 22.0, NAN],
        "ch_mad": [1.0, 2.0, NAN],
    })
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)


def test_default_plate_background(plate):
    # non-outlier background pixels: 10, 12, 20, 22, 24
    assert PlateMedianBackground().compute(plate) == {"ch": BackgroundStats(20.0, 4.0)}
    counts = plate_background_counts(plate, "ch")
    assert counts.sum() == 5 and counts[[10, 12, 20, 22, 24]].tolist() == [1] * 5


def test_records_with_several_channels_sum_per_channel():
    records = [
        ImageHistograms("a", "A01", {"x": hist(1), "y": hist(100)}),
        ImageHistograms("b", "B01", {"y": hist(300), "x": hist(3)}),
    ]
    stats = PlateMedianBackground().compute(accumulate_histograms(records))
    assert stats == {"x": BackgroundStats(2.0, 1.0), "y": BackgroundStats(200.0, 100.0)}


def test_channel_mismatch_rejected():
    records = [ImageHistograms("a", "A01", {"x": hist(1)}),
               ImageHistograms("b", "A01", {"y": hist(1)})]
    with pytest.raises(ValueError, match="channels"):
        accumulate_histograms(records)


def test_duplicate_image_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        accumulate_histograms([record("a", "A01", [1]), record("a", "A01", [2])])


def test_wrong_histogram_length_rejected():
    with pytest.raises(ValueError, match="shape"):
        accumulate_histograms([ImageHistograms("a", "A01", {"ch": np.ones(10, np.int64)})])


# -- strategies ---------------------------------------------------------------

def test_empty_wells_use_all_pixels_of_those_wells_only():
    records = [
        record("h1", "H01", background=[], total=[100, 101, 102]),
        record("h2", "H01", background=[], total=[103]),
        record("g1", "G01", background=[], total=[104, 200]),
        record("a1", "A01", background=[1, 2], total=[1, 2, 5000]),
    ]
    strategy = EmptyWellsBackground(("H01", "G01"))
    # images of empty wells are cell-count outliers: their totals still count
    histograms = accumulate_histograms(records, outlier_images={"h1", "h2", "g1"},
                                       total_wells=strategy.total_wells)
    assert set(histograms.well_total) == {"H01", "G01"}
    # all pixels: 100, 101, 102, 103, 104, 200 -> median 102.5, deviations
    # 2.5, 1.5, .5, .5, 1.5, 97.5 -> MAD 1.5
    assert strategy.compute(histograms) == {"ch": BackgroundStats(102.5, 1.5)}


def test_empty_wells_missing_one_well_warns(caplog):
    records = [record("h1", "H01", background=[], total=[7])]
    strategy = EmptyWellsBackground(("H01", "G01"))
    histograms = accumulate_histograms(records, total_wells=strategy.total_wells)
    with caplog.at_level(logging.WARNING):
        assert strategy.compute(histograms) == {"ch": BackgroundStats(7.0, 0.0)}
    assert "G01" in caplog.text


def test_empty_wells_none_present_raises():
    histograms = accumulate_histograms([record("a1", "A01", [1])], total_wells={"H01"})
    with pytest.raises(ValueError, match="background wells"):
        EmptyWellsBackground(("H01",)).compute(histograms)


def test_min_well_picks_lowest_valid_median_per_channel():
    records = [
        ImageHistograms("a1", "A01", {"x": hist(50, 52), "y": hist(5, 9)}),
        ImageHistograms("b1", "B01", {"x": hist(30, 34), "y": hist(8, 8)}),
        ImageHistograms("c1", "C01", {"x": hist(1, 1), "y": hist(1, 1)}),   # outlier image
    ]
    histograms = accumulate_histograms(records, outlier_images={"c1"})
    assert MinWellBackground().compute(histograms) == {
        "x": BackgroundStats(32.0, 2.0),   # B01
        "y": BackgroundStats(7.0, 2.0),    # A01
    }


def test_min_well_tie_goes_to_first_sorted_well():
    records = [ImageHistograms("b1", "B01", {"x": hist(10, 14)}),
               ImageHistograms("a1", "A01", {"x": hist(12)})]
    assert MinWellBackground().compute(accumulate_histograms(records)) == {
        "x": BackgroundStats(12.0, 0.0)}


def test_min_well_without_valid_well_is_nan():
    histograms = accumulate_histograms([record("a1", "A01", [3])], outlier_images={"a1"})
    stats = MinWellBackground().compute(histograms)["ch"]
    assert np.isnan(stats.median) and np.isnan(stats.mad)


def test_fixed_background_with_and_without_mad():
    strategy = FixedBackground({"serum_IgG": 100, "marker_tophat": 5}, {"marker_tophat": 2})
    stats = strategy.compute(None, ["serum_IgG", "marker_tophat"])
    assert stats["marker_tophat"] == BackgroundStats(5.0, 2.0)
    assert stats["serum_IgG"].median == 100.0 and np.isnan(stats["serum_IgG"].mad)


def test_fixed_background_missing_channel_raises():
    histograms = accumulate_histograms([record("a1", "A01", [3])])
    with pytest.raises(ValueError, match="ch"):
        FixedBackground({"other": 1.0}).compute(histograms)


def test_registry_names_and_factory():
    assert set(BACKGROUND_STRATEGIES) == {"local", "image", "well", "plate", "default", "empty_wells", "min", "fixed"}
    assert [name for name, cls in BACKGROUND_STRATEGIES.items() if cls.per_cell] == ["local"]
    assert make_background_strategy("default") == PlateMedianBackground() == make_background_strategy("plate")
    assert make_background_strategy("image", min_pixels=5) == ImageBackground(5)
    assert make_background_strategy("min") == MinWellBackground()
    assert make_background_strategy("empty_wells", wells=["H01", "G01"]) == \
        EmptyWellsBackground(("H01", "G01"))
    assert make_background_strategy("fixed", medians={"ch": 3}).compute()["ch"].median == 3.0
    assert PlateMedianBackground().total_wells == frozenset()
    with pytest.raises(ValueError, match="unknown background strategy"):
        make_background_strategy("mean")


def test_backgrounds_table():
    table = backgrounds_table({"a": BackgroundStats(1.0, 2.0), "b": BackgroundStats(3.0, 4.0)})
    expected = pd.DataFrame({"a_median": [1.0], "a_mad": [2.0], "b_median": [3.0], "b_mad": [4.0]})
    pd.testing.assert_frame_equal(table, expected)


# -- per-image and per-well strategies ------------------------------------------

def three_images():
    """Two images of A01 (offsets 100 and 300, the second with 3 background pixels) and one of A02."""
    return accumulate_histograms([record("a1", "A01", [99, 100, 101, 100, 102]),
                                  record("a2", "A01", [300, 310, 320]),
                                  record("b1", "A02", [50, 52, 54, 56, 58])])


def test_image_background_uses_each_image_own_pixels():
    per_image = ImageBackground(min_pixels=3).per_image(three_images())
    assert per_image["a1"]["ch"] == BackgroundStats(100.0, 1.0)
    assert per_image["a2"]["ch"] == BackgroundStats(310.0, 10.0)
    assert per_image["b1"]["ch"] == BackgroundStats(54.0, 2.0)


def test_image_background_falls_back_to_well_then_plate():
    histograms = three_images()
    per_image = ImageBackground(min_pixels=4).per_image(histograms)
    well_a01 = histograms.well_background["A01"]["ch"].stats()   # 8 pixels pooled
    assert per_image["a2"]["ch"] == well_a01 and per_image["a1"]["ch"] == BackgroundStats(100.0, 1.0)
    per_image = ImageBackground(min_pixels=100).per_image(histograms)
    plate = PlateMedianBackground().compute(histograms)["ch"]
    assert all(stats["ch"] == plate for stats in per_image.values())


def test_image_background_summary_is_median_over_valid_images():
    histograms = accumulate_histograms(three_images_records(), outlier_images={"b1"})
    summary = ImageBackground(min_pixels=1).compute(histograms)["ch"]
    assert summary == BackgroundStats(205.0, 5.5)   # median of 100 and 310; of MADs 1 and 10


def three_images_records():
    return [record("a1", "A01", [99, 100, 101, 100, 102]), record("a2", "A01", [300, 310, 320]),
            record("b1", "A02", [50, 52, 54, 56, 58])]


def test_well_background_pools_the_well():
    histograms = three_images()
    per_image = WellBackground().per_image(histograms)
    assert per_image["a1"] == per_image["a2"] == {"ch": histograms.well_background["A01"]["ch"].stats()}
    assert per_image["b1"]["ch"] == BackgroundStats(54.0, 2.0)
    assert WellBackground().compute(histograms)["ch"].median == pytest.approx((101.5 + 54.0) / 2)


def test_plate_strategies_give_every_image_the_plate_value():
    histograms = three_images()
    plate = PlateMedianBackground().compute(histograms)
    assert PlateMedianBackground().per_image(histograms) == {name: plate for name in ("a1", "a2", "b1")}
    fixed = FixedBackground({"ch": 7.0}).per_image(histograms)
    assert fixed["b1"]["ch"].median == 7.0


def test_image_backgrounds_table():
    histograms = three_images()
    table = image_backgrounds_table(ImageBackground(1).per_image(histograms), histograms.image_wells)
    assert table.columns.tolist() == ["image_name", "well_name", "ch_median", "ch_mad"]
    assert table["ch_median"].tolist() == [100.0, 310.0, 54.0]
