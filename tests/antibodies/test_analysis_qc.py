import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.background import BackgroundStats
from antibodies.analysis.qc import (
    BATCHLIB_INFECTED_INTENSITY_MINIMA, DEFAULT_SERUM_RULES, QC_RULES, CellCountQC, CellSizeQC, ControlCellCountQC,
    FixedMinInfectedIntensityQC, ManualOutlierQC, MinInfectedIntensityQC, NoQC,
    combine_outlier_types, flag_cells, flag_images, flag_table, make_qc_rule,
    manual_outlier_names, outlier_types, plate_warnings, serum_outlier_types)


def test_cell_size_edges():
    cells = pd.DataFrame({"label_id": [1, 2, 3, 4], "sizes": [249, 250, 12500, 12501]})
    flags = flag_cells(cells)
    expected = pd.DataFrame({
        "label_id": [1, 2, 3, 4],
        "is_outlier": [True, False, False, True],
        "outlier_type": ["too small (249 < 250 px)", "", "", "too large (12501 > 12500 px)"],
    })
    pd.testing.assert_frame_equal(flags, expected, check_dtype=False)


def test_cell_size_custom_bounds():
    assert CellSizeQC(10, 20).flag(pd.DataFrame({"sizes": [9.5, 15.0]})).tolist() == [
        "too small (9.5 < 10 px)", ""]


def test_cell_count_edges():
    images = pd.DataFrame({"image_name": list("abcd"), "n_cells": [9, 10, 1000, 1001]})
    flags = flag_images(images)
    assert flags.columns.tolist() == ["image_name", "is_outlier", "outlier_type"]
    assert flags.is_outlier.tolist() == [True, False, False, True]
    assert flags.outlier_type.tolist() == [
        "too few cells (9 < 10)", "", "", "too many cells (1001 > 1000)"]


def test_control_cell_count():
    wells = pd.DataFrame({"n_control": [19, 20, 0]})
    assert ControlCellCountQC().flag(wells).tolist() == [
        "too few control cells (19 < 20)", "", "too few control cells (0 < 20)"]
    assert ControlCellCountQC(min_control_cells=100).flag(wells).tolist()[1] == "too few control cells (20 < 100)"


def test_manual_outlier_names_from_table():
    table = pd.DataFrame({"filename": ["WellA01_x.h5", "dir/WellB01_y.tiff", "WellC01_z",
                                       "WellD01_w.h5"],
                          "label": [1, 1, 1, 0]})
    names = manual_outlier_names(table)
    assert names == {"WellA01_x.h5", "WellA01_x", "dir/WellB01_y.tiff", "WellB01_y", "WellC01_z"}


def test_manual_outliers_match_with_or_without_extension():
    rule = ManualOutlierQC(manual_outlier_names(pd.DataFrame(
        {"filename": ["WellA01_x.h5", "WellB01_y"], "label": [1, 1]})))
    images = pd.DataFrame(
        {"image_name": ["WellA01_x", "WellA01_x.h5", "WellB01_y.h5", "WellC01_z"]})
    assert rule.flag(images).tolist() == ["manual outlier", "manual outlier", "manual outlier", ""]


def test_manual_outliers_ignore_other_labels():
    names = manual_outlier_names(pd.DataFrame({"filename": ["a", "b"], "label": [0, -1]}))
    assert names == frozenset()


def test_min_infected_intensity_edges():
    table = pd.DataFrame({"serum_IgG_median_infected": [29.5, 30.0, np.nan]})
    types = MinInfectedIntensityQC().flag(table, "serum_IgG", BackgroundStats(100.0, 10.0))
    assert types.tolist() == [
        "median infected intensity too low (29.5 < 30 = 3 x background MAD 10)", "", ""]


def test_min_infected_intensity_nan_mad_flags_nothing():
    table = pd.DataFrame({"serum_IgG_median_infected": [-5.0]})
    assert MinInfectedIntensityQC().flag(table, "serum_IgG", BackgroundStats(1.0)).tolist() == [""]


def test_fixed_minima_per_serum():
    table = pd.DataFrame({"serum_IgG_median_infected": [301.22, 301.23],
                          "serum_IgA_median_infected": [392.75, 392.76],
                          "serum_IgM_median_infected": [0.0, 0.0]})
    assert FixedMinInfectedIntensityQC().flag(table, "serum_IgG").tolist() == ["", ""]  # no minimum by default
    rule = FixedMinInfectedIntensityQC(BATCHLIB_INFECTED_INTENSITY_MINIMA)
    assert rule.flag(table, "serum_IgG").tolist() == [
        "median infected intensity too low (301.22 < 301.23)", ""]
    assert rule.flag(table, "serum_IgA").tolist() == [
        "median infected intensity too low (392.75 < 392.76)", ""]
    assert rule.flag(table, "serum_IgM").tolist() == ["", ""]
    assert FixedMinInfectedIntensityQC({"serum_IgM": 1.0}).flag(table, "serum_IgM").tolist() == [
        "median infected intensity too low (0 < 1)"] * 2


def test_serum_rules_combined():
    table = pd.DataFrame({"serum_IgG_median_infected": [10.0, 400.0]})
    rules = DEFAULT_SERUM_RULES + (FixedMinInfectedIntensityQC(BATCHLIB_INFECTED_INTENSITY_MINIMA),)
    types = serum_outlier_types(table, "serum_IgG", BackgroundStats(0.0, 5.0), rules)
    assert types.tolist() == [
        "median infected intensity too low (10 < 15 = 3 x background MAD 5); "
        "median infected intensity too low (10 < 301.23)", ""]
    assert serum_outlier_types(table, "serum_IgG", BackgroundStats(0.0, 5.0), DEFAULT_SERUM_RULES).tolist() == [
        "median infected intensity too low (10 < 15 = 3 x background MAD 5)", ""]


def test_combine_outlier_types():
    a = pd.Series(["x", "", "", "u"])
    b = pd.Series(["y", "z", "", ""])
    assert combine_outlier_types(a, b).tolist() == ["x; y", "z", "", "u"]


def test_image_rules_combined_and_joined():
    images = pd.DataFrame({"image_name": ["a", "b", "c"], "n_cells": [7, 50, 2000]})
    rules = (CellCountQC(), ManualOutlierQC(frozenset({"a", "b"})))
    flags = flag_images(images, rules)
    assert flags.outlier_type.tolist() == [
        "too few cells (7 < 10); manual outlier", "manual outlier", "too many cells (2000 > 1000)"]
    assert flags.is_outlier.tolist() == [True, True, True]


def test_no_rules_and_noqc_pass_everything():
    table = pd.DataFrame({"image_name": ["a"], "n_cells": [0]})
    assert outlier_types(table, ()).tolist() == [""]
    assert outlier_types(table, (NoQC(),)).tolist() == [""]
    assert serum_outlier_types(table, "serum_IgG", None, (NoQC(),)).tolist() == [""]
    assert flag_table(table, (NoQC(),), ("image_name",)).is_outlier.tolist() == [False]


def test_registry_and_factory():
    assert set(QC_RULES) == {"cell_size", "cell_count", "control_cells", "manual",
                             "infected_intensity", "fixed_infected_intensity", "clipped_cells", "out_of_focus", "none"}
    assert make_qc_rule("cell_size", min_size=100) == CellSizeQC(100, 12500)
    assert make_qc_rule("manual", names=["a"]) == ManualOutlierQC(frozenset({"a"}))
    assert make_qc_rule("none") == NoQC()
    with pytest.raises(ValueError, match="unknown QC rule"):
        make_qc_rule("sharpness")


def test_well_mate_warnings_flag_the_odd_site_only():
    from antibodies.analysis.qc import well_mate_warnings

    images = pd.DataFrame({"image_name": list("abcde"), "well_name": ["A01"] * 3 + ["A02"] * 2,
                           "fraction_infected": [0.30, 0.31, 0.95, 0.0, 0.05],
                           "ch_median": [100.0, 104.0, 98.0, 400.0, 120.0], "ch_mad": [5.0] * 5})
    warnings = well_mate_warnings(images, channels=["ch"])
    assert warnings[["image_name", "channel"]].values.tolist() == [["c", "all"], ["d", "ch"], ["e", "ch"]]
    alone = well_mate_warnings(images.iloc[:1], channels=["ch"])
    assert alone.empty  # a well of one image has no mates


def test_well_mate_warnings_flag_a_site_whose_score_is_far_beyond_its_noise():
    from antibodies.analysis.qc import well_mate_warnings

    images = pd.DataFrame({"image_name": list("abcdefg"), "well_name": ["A01"] * 3 + ["A02"] * 2 + ["A03"] * 2,
                           "fraction_infected": 0.3, "S_score": [2.0, 2.1, 1.2, 1.0, 1.8, 3.0, np.nan],
                           "S_score_log_se": [0.05, 0.05, 0.05, 0.2, 0.2, 0.05, np.nan]})
    warnings = well_mate_warnings(images, sera=["S"])
    # c: 1.2 against 2.0; A02: each 1.34 times the well's, within 3 of its standard errors; g: no score
    assert warnings[["image_name", "channel", "reason"]].values.tolist() == [["c", "S", "S score 1.2 vs 2 in its well"]]
    assert well_mate_warnings(images.assign(S_score_log_se=0.01), sera=["S"])["image_name"].tolist() == ["c", "d", "e"]


def test_plate_warnings_only_when_a_serum_has_no_score_or_the_plate_no_infected_cell():
    wells = pd.DataFrame({"n_infected": [0, 40], "serum_IgG_score": [float("nan"), 1.8],
                          "serum_IgA_score": [float("nan")] * 2,
                          "serum_IgA_outlier_type": ["too few control cells", ""],
                          "serum_IgG_outlier_type": ["too few infected cells", ""]})
    assert plate_warnings(wells, ["serum_IgG"]) == []
    assert plate_warnings(wells, ["serum_IgG", "serum_IgA"]) == [
        "serum_IgA: none of the 2 wells has a score (1 x too few control cells, 1 x no reason given)"]
    assert plate_warnings(wells.assign(n_infected=0), ["serum_IgG"])[0].startswith("no infected cell on the whole plate")
    assert plate_warnings(wells.iloc[:0], ["serum_IgG"]) == []
