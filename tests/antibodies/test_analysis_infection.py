import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.background import BackgroundStats
from antibodies.analysis.infection import classify_infected, infection_threshold, quantile_column


def marker(values, column="quantile0.95", labels=None):
    labels = list(range(1, len(values) + 1)) if labels is None else labels
    return pd.DataFrame({"label_id": labels, column: values})


def test_quantile_column():
    assert quantile_column(0.95) == "quantile0.95"
    assert quantile_column(0.5) == "quantile0.5"


def test_threshold_default_factor():
    assert infection_threshold(BackgroundStats(10.0, 2.5)) == 10.0 + 4.8 * 2.5


def test_threshold_is_strict():
    # threshold 10 + 4 * 2.5 = 20 exactly
    table = classify_infected(marker([19.0, 20.0, 20.5, 100.0]), BackgroundStats(10.0, 2.5),
                              threshold_factor=4.0)
    expected = pd.DataFrame({"label_id": [1, 2, 3, 4],
                             "is_infected": [False, False, True, True],
                             "is_control": [True, True, False, False],
                             "is_clear_call": [True] * 4})
    pd.testing.assert_frame_equal(table, expected)


def test_default_factor_edge():
    background = BackgroundStats(100.0, 10.0)  # threshold 148
    table = classify_infected(marker([148.0, 148.5]), background)
    assert table.is_infected.tolist() == [False, True]


def test_quantile_selects_column():
    table = pd.DataFrame({"label_id": [1, 2], "quantile0.5": [50.0, 0.0],
                          "quantile0.95": [0.0, 50.0]})
    result = classify_infected(table, BackgroundStats(0.0, 1.0), quantile=0.5)
    assert result.is_infected.tolist() == [True, False]


def test_outlier_cells_are_neither_infected_nor_control():
    cell_outliers = pd.DataFrame({"label_id": [3, 1, 2], "is_outlier": [False, True, False],
                                  "outlier_type": ["", "too small (5 < 250 px)", ""]})
    table = classify_infected(marker([100.0, 100.0, 0.0]), BackgroundStats(0.0, 1.0),
                              cell_outliers=cell_outliers)
    assert table.is_infected.tolist() == [False, True, False]
    assert table.is_control.tolist() == [False, False, True]


def test_cell_outliers_must_cover_all_labels():
    cell_outliers = pd.DataFrame({"label_id": [1], "is_outlier": [False]})
    with pytest.raises(ValueError, match="label_id"):
        classify_infected(marker([1.0, 2.0]), BackgroundStats(0.0, 1.0),
                          cell_outliers=cell_outliers)


def test_nan_marker_value_is_neither():
    table = classify_infected(marker([np.nan, 5.0]), BackgroundStats(0.0, 1.0))
    assert table.is_infected.tolist() == [False, True]
    assert table.is_control.tolist() == [False, False]


def test_nan_threshold_makes_every_cell_control(caplog):
    table = classify_infected(marker([1e6, 0.0]), BackgroundStats(10.0, float("nan")))
    assert table.is_infected.tolist() == [False, False]
    assert table.is_control.tolist() == [True, True]
    assert "NaN" in caplog.text


def test_row_order_and_labels_kept():
    table = classify_infected(marker([0.0, 9.0], labels=[7, 3]), BackgroundStats(0.0, 1.0))
    assert table.label_id.tolist() == [7, 3]
    assert table.dtypes.to_dict() == {"label_id": np.dtype("int64"),
                                      "is_infected": np.dtype(bool), "is_control": np.dtype(bool),
                                      "is_clear_call": np.dtype(bool)}


def test_empty_table():
    table = classify_infected(marker([]), BackgroundStats(0.0, 1.0))
    assert table.columns.tolist() == ["label_id", "is_infected", "is_control", "is_clear_call"] and len(table) == 0


# -- marker scores and the plate's cut ------------------------------------------

from antibodies.analysis.infection import (  # noqa: E402
    MIN_MAD, FixedFactor, LogMidpointFactor, LogMixtureFactor, LogOtsuFactor, LogValleyFactor, make_infection_method,
    marker_scores, score_histogram)


def two_populations(rng, n_control, n_infected, noise=(4.0, 1.0), infected_median=150.0, spread=0.6):
    control = rng.normal(*noise, n_control)
    infected = np.exp(rng.normal(np.log(infected_median), spread, n_infected))
    return np.concatenate([control, infected]), np.r_[np.zeros(n_control, bool), np.ones(n_infected, bool)]


def test_marker_scores_use_the_image_background_and_a_minimum_noise_unit():
    assert marker_scores([30.0], BackgroundStats(10.0, 4.0)).tolist() == [5.0]
    assert marker_scores([12.0], BackgroundStats(10.0, 0.0)).tolist() == [2.0 / MIN_MAD]


@pytest.mark.parametrize("method", [LogMixtureFactor, LogMidpointFactor, LogValleyFactor])
@pytest.mark.parametrize("fraction", [0.9, 0.5, 0.2, 0.05, 0.01])
def test_mixture_cut_separates_infected_cells_whatever_their_share(method, fraction):
    rng = np.random.default_rng(1)
    n_infected = int(2000 * fraction)
    scores, truth = two_populations(rng, 2000 - n_infected, n_infected)
    cut = method().fit(scores)
    assert 8.0 <= cut < 60.0
    assert ((scores > cut) == truth).mean() >= 0.99


def test_cut_of_a_plate_without_infected_cells_is_the_floor():
    noise = np.random.default_rng(2).normal(4.0, 1.0, 3000)
    for method in (LogMixtureFactor(min_factor=9.0), LogOtsuFactor(min_factor=9.0), LogValleyFactor(min_factor=9.0)):
        assert method.fit(noise) == 9.0
        assert (noise > method.fit(noise)).mean() < 0.001


def test_cut_stays_within_bounds_and_handles_degenerate_input():
    assert LogMixtureFactor(min_factor=8.0).fit([]) == 8.0
    assert LogMixtureFactor(min_factor=8.0).fit([np.nan, 5.0]) == 8.0
    high = np.r_[np.full(500, 1000.0), np.full(500, 1e5)]
    assert LogMixtureFactor(max_factor=200.0).fit(high) == 200.0


def test_a_noisier_hazier_image_keeps_its_calls_when_scored_against_its_own_background():
    # same cells seen on a clean image and on one with +100 counts of background and 3x the noise
    rng = np.random.default_rng(3)
    clean_bg, hazy_bg = BackgroundStats(20.0, 5.0), BackgroundStats(120.0, 15.0)
    controls, infected = rng.normal(4, 1, 300), np.exp(rng.normal(np.log(150), 0.5, 100))
    clean = clean_bg.median + clean_bg.mad * np.r_[controls, infected]
    hazy = hazy_bg.median + hazy_bg.mad * np.r_[controls, infected / 3]   # infected signal unchanged in counts
    truth = np.r_[np.zeros(300, bool), np.ones(100, bool)]
    cut = LogMixtureFactor().fit(np.r_[marker_scores(clean, clean_bg), marker_scores(hazy, hazy_bg)])
    for values, background in ((clean, clean_bg), (hazy, hazy_bg)):
        calls = classify_infected(marker(list(values)), background, cut).is_infected.to_numpy()
        assert (calls == truth).mean() >= 0.98
    # the plate background (batchlib) calls most cells of the hazy image infected
    plate = classify_infected(marker(list(hazy)), clean_bg, 4.8).is_infected.to_numpy()
    assert plate[~truth].mean() > 0.9


def test_fixed_factor_and_registry():
    assert FixedFactor().fit([1.0, 1e6]) == 4.8
    assert make_infection_method("otsu", min_factor=3.0) == LogOtsuFactor(min_factor=3.0)
    with pytest.raises(ValueError, match="unknown infection method"):
        make_infection_method("kmeans")


def test_score_histogram_counts_every_cell():
    histogram = score_histogram(np.r_[np.full(10, 0.01), np.full(5, 50.0), np.nan])
    assert histogram["n_cells"].sum() == 15 and histogram["n_cells"].iloc[0] == 10


def test_midpoint_cut_is_not_pulled_down_by_a_tail_of_non_infected_cells():
    # 3 % of non-infected cells take in a little of an infected neighbour (scores 20-150)
    rng = np.random.default_rng(4)
    scores, truth = two_populations(rng, 1400, 600, infected_median=800.0, spread=0.5)
    scores[:42] = np.exp(rng.uniform(np.log(20), np.log(150), 42))
    midpoint, mixture = LogMidpointFactor().fit(scores), LogMixtureFactor().fit(scores)
    assert midpoint > mixture
    assert ((scores > midpoint) == truth).mean() > ((scores > mixture) == truth).mean()
    assert LogMidpointFactor(min_factor=9.0).fit(rng.normal(4, 1, 2000)) == 9.0


def test_clear_calls_leave_out_cells_within_the_margin_of_the_cut():
    """Cut at 10 + 4 x 2.5 = 20; margin 2: infected clearly above 10 + 8 x 2.5 = 30, control at or below 15."""
    values = [5.0, 15.0, 16.0, 20.0, 25.0, 30.0, 30.5, 100.0]
    table = classify_infected(marker(values), BackgroundStats(10.0, 2.5), threshold_factor=4.0, margin=2.0)
    assert table.is_infected.tolist() == [False] * 4 + [True] * 4  # the calls do not change
    assert table.is_clear_call.tolist() == [True, True, False, False, False, False, True, True]
    assert classify_infected(marker(values), BackgroundStats(10.0, 2.5), 4.0).is_clear_call.all()  # margin 1


def test_clear_calls_without_a_threshold_or_for_outlier_cells():
    no_mad = classify_infected(marker([5.0, 50.0]), BackgroundStats(10.0, float("nan")), margin=3.0)
    assert no_mad.is_clear_call.tolist() == [True, True]  # no threshold: every valid cell is a clear control
    outliers = pd.DataFrame({"label_id": [1, 2], "is_outlier": [True, False]})
    table = classify_infected(marker([5.0, 500.0]), BackgroundStats(10.0, 2.5), cell_outliers=outliers, margin=3.0)
    assert table.is_clear_call.tolist() == [False, True]


def dim_tail_plate(rng, n_control=3000, n_infected=1500):
    """Non-infected cells at a few noise units; infected ones spread over two decades, from barely above them."""
    return two_populations(rng, n_control, n_infected, noise=(3.0, 0.6), infected_median=40.0, spread=1.0)


def test_valley_cut_follows_dim_infected_cells_down():
    scores, truth = dim_tail_plate(np.random.default_rng(5))
    valley, midpoint = LogValleyFactor().fit(scores), LogMidpointFactor().fit(scores)
    assert 5.0 <= valley < midpoint
    assert ((scores > valley) == truth).mean() > ((scores > midpoint) == truth).mean() + 0.01


def test_groups_far_apart_get_the_midpoint_and_overlapping_ones_the_valley():
    rng = np.random.default_rng(6)
    for n_infected in (1000, 30):
        scores, truth = two_populations(rng, 3000, n_infected)
        cut = LogValleyFactor().fit(scores)
        assert cut == LogMidpointFactor().fit(scores) and ((scores > cut) == truth).mean() > 0.999
        assert ((scores > LogValleyFactor(overlap=0.0).fit(scores)) == truth).all()   # the valley alone
    scores, _ = dim_tail_plate(rng)
    assert LogValleyFactor().fit(scores) == LogValleyFactor(overlap=0.0).fit(scores) < LogMidpointFactor().fit(scores)


def test_valley_cut_needs_a_dip_and_never_falls_below_its_floor():
    rng = np.random.default_rng(7)
    two_noise_levels = np.r_[rng.normal(2.0, 0.3, 2000), rng.normal(4.0, 0.5, 2000)]  # two hazy halves, no virus
    assert LogValleyFactor().fit(two_noise_levels) >= 5.0
    shoulder = np.r_[rng.normal(3.0, 0.6, 3000), rng.normal(4.5, 0.8, 1500)]  # no valley between the groups
    assert LogValleyFactor(min_factor=8.0).fit(shoulder) == 8.0
    assert LogValleyFactor().fit([]) == 8.0
    assert LogValleyFactor().fit(np.r_[np.full(50, 3.0), np.full(50, 3.01)]) == 8.0  # groups within one bin
