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
                             "is_control": [True, True, False, False]})
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
                                      "is_infected": np.dtype(bool), "is_control": np.dtype(bool)}


def test_empty_table():
    table = classify_infected(marker([]), BackgroundStats(0.0, 1.0))
    assert table.columns.tolist() == ["label_id", "is_infected", "is_control"] and len(table) == 0
