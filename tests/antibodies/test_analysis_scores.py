import math

import numpy as np
import pandas as pd
import pytest

from antibodies.analysis.background import BackgroundStats
from antibodies.analysis.qc import (
    ClippedCellsQC, ControlCellCountQC, FixedMinInfectedIntensityQC, MinInfectedIntensityQC, NoQC)
from antibodies.analysis.scores import (
    CELL_COLUMNS, MEDIAN_ESTIMATORS, HarrellDavisMedian, ImageCells, SampleMedian, call_positive, cell_frame,
    compare_intensities, score_images, score_plate, score_wells, sera_in, split_by_serum, summarize_cells)

NAN = float("nan")
INF = float("inf")
SERA = ("serum_IgG", "serum_IgA")
BACKGROUNDS = {"serum_IgG": BackgroundStats(10.0, 5.0), "serum_IgA": BackgroundStats(5.0, 2.0)}


def features(means, sizes):
    labels = list(range(1, len(means) + 1))
    return pd.DataFrame({"label_id": labels, "means": means, "sizes": sizes})


def infection(infected, control):
    labels = list(range(1, len(infected) + 1))
    return pd.DataFrame({"label_id": labels, "is_infected": infected, "is_control": control})


def image(name, site, well, igg, iga, sizes, infected, control):
    tables = {"serum_IgG": features(igg, sizes), "serum_IgA": features(iga, sizes),
              "marker_tophat": features([0.0] * len(sizes), sizes)}
    return ImageCells(name, site, well, tables, infection(infected, control))


def plate_records():
    return [
        # cells 1, 2 infected; 3, 4 control; 5 a QC outlier (neither)
        image("a1", "A01-0000", "A01", igg=[50, 70, 20, 40, 999], iga=[25, 25, 15, 15, 999],
              sizes=[300, 400, 500, 600, 100],
              infected=[True, True, False, False, False],
              control=[False, False, True, True, False]),
        image("a2", "A01-0001", "A01", igg=[1000], iga=[1000], sizes=[300],
              infected=[True], control=[False]),
        image("b1", "B01-0000", "B01", igg=[30, 20, 20], iga=[5, 15, 25], sizes=[250, 350, 450],
              infected=[True, False, False], control=[False, True, True]),
    ]


IMAGE_FLAGS = pd.DataFrame({"image_name": ["a2", "b1"], "is_outlier": [True, False],
                            "outlier_type": ["too few cells (1 < 10)", ""]})
WELL_RULES = (ControlCellCountQC(min_control_cells=2),)
SERUM_RULES = (MinInfectedIntensityQC(), FixedMinInfectedIntensityQC({"serum_IgA": 1.0}))
IGA_LOW = ("median infected intensity too low (0 < 6 = 3 x background MAD 2); "
           "median infected intensity too low (0 < 1)")


def serum_columns(serum):
    return [f"{serum}_{c}" for c in ("score", "score_log_se", "robust_z_score", "ratio_of_means",
                                     "median_infected", "median_control", "mad_control", "clipped_cells",
                                     "is_outlier", "outlier_type")]


# -- compare_intensities ------------------------------------------------------

def test_compare_intensities_exact():
    stats = compare_intensities([40.0, 60.0], [10.0, 30.0])
    se = stats.pop("score_log_se")
    assert stats == {
        "score": 2.5, "robust_z_score": 3.0, "ratio_of_means": 2.5,
        "median_infected": 50.0, "median_control": 20.0, "mad_control": 10.0}
    assert math.isnan(se)  # two cells per group: no interval
    # ten cells each: relative median errors 1.2533 * 1.4826 * MAD / (sqrt(n) * median)
    infected, control = np.arange(45.0, 55.0), np.arange(15.0, 25.0)  # medians 49.5 / 19.5, MAD 2.5
    se = compare_intensities(infected, control)["score_log_se"]
    assert se == pytest.approx(1.2533 * 1.4826 * math.hypot(2.5 / 49.5, 2.5 / 19.5) / math.sqrt(10), rel=1e-12)


def test_score_log_se_shrinks_with_cells_and_needs_min_interval_cells_per_group():
    rng = np.random.default_rng(0)
    few, many = (compare_intensities(rng.lognormal(np.log(200), 0.3, n), rng.lognormal(np.log(100), 0.3, n))
                 for n in (25, 2500))
    assert many["score_log_se"] < few["score_log_se"] / 5
    # the asymptotic error of the log median of a lognormal(0.3) sample: 1.2533 * 0.3 / sqrt(n), both groups
    assert many["score_log_se"] == pytest.approx(1.2533 * 0.3 * math.sqrt(2 / 2500), rel=0.15)
    ten, nine = np.arange(10.0) + 5, np.arange(9.0) + 5
    assert np.isfinite(compare_intensities(ten, ten / 2)["score_log_se"])
    assert math.isnan(compare_intensities(nine, ten / 2)["score_log_se"])
    assert math.isnan(compare_intensities(ten, nine / 2)["score_log_se"])
    assert math.isnan(compare_intensities(ten, -ten)["score_log_se"])  # a median <= 0


def test_compare_intensities_unscaled_mad_odd_count():
    stats = compare_intensities([13.0], [1.0, 2.0, 4.0, 8.0, 9.0])
    # median 4, |deviations| 3, 2, 0, 4, 5 -> MAD 3 (no 1.4826 factor)
    assert stats["mad_control"] == 3.0 and stats["robust_z_score"] == 3.0
    assert stats["score"] == 13.0 / 4.0 and stats["ratio_of_means"] == 13.0 / 4.8


def test_compare_intensities_empty_and_zero_denominators():
    empty = compare_intensities([], [1.0, 3.0])
    assert math.isnan(empty["score"]) and math.isnan(empty["median_infected"])
    assert empty["mad_control"] == 1.0
    no_control = compare_intensities([1.0], [])
    assert all(math.isnan(no_control[k]) for k in ("score", "robust_z_score", "mad_control"))
    flat = compare_intensities([20.0], [10.0, 10.0])
    assert flat["robust_z_score"] == INF
    zero = compare_intensities([5.0], [0.0])
    assert zero["score"] == INF and math.isnan(compare_intensities([0.0], [0.0])["score"])


# -- cell pools ---------------------------------------------------------------

def test_cell_frame_drops_outlier_cells_and_keeps_means():
    cells = cell_frame(plate_records()[0], SERA)
    assert cells.index.tolist() == [1, 2, 3, 4]
    assert cells.columns.tolist() == ["is_infected", "is_control", "is_clear_call", "sizes", *SERA]
    assert cells["serum_IgG"].tolist() == [50.0, 70.0, 20.0, 40.0]
    assert cells["sizes"].tolist() == [300.0, 400.0, 500.0, 600.0]


def test_cell_frame_matches_labels_in_any_order():
    record = plate_records()[2]
    shuffled = record.tables["serum_IgG"].iloc[::-1]
    record = ImageCells(record.image_name, record.site_name, record.well_name,
                        {**record.tables, "serum_IgG": shuffled}, record.infection)
    assert cell_frame(record, SERA)["serum_IgG"].tolist() == [30.0, 20.0, 20.0]


def _general_cell_frame(record, sera):
    """cell_frame by its indexed path: a reversed infection table is never aligned with the features."""
    flipped = ImageCells(record.image_name, record.site_name, record.well_name, record.tables,
                         record.infection.iloc[::-1], record.backgrounds, record.per_cell_background)
    return cell_frame(flipped, sera).sort_index()


@pytest.mark.parametrize("per_cell", [False, True])
def test_cell_frame_aligned_tables_give_the_general_frame(per_cell):
    rng = np.random.default_rng(1)
    n = 40
    labels = np.sort(rng.choice(np.arange(1, 200), n, replace=False))
    infected = rng.random(n) < 0.3
    control = ~infected & (rng.random(n) < 0.8)
    tables = {serum: pd.DataFrame({"label_id": labels, "sizes": rng.integers(100, 900, n),
                                   "means": rng.normal(50, 20, n), "local_background": rng.normal(10, 2, n)})
              for serum in SERA}
    table = pd.DataFrame({"label_id": labels, "is_infected": infected, "is_control": control})
    record = ImageCells("a", "A01-0000", "A01", tables, table, per_cell_background=per_cell)
    fast = cell_frame(record, SERA)
    pd.testing.assert_frame_equal(fast, _general_cell_frame(record, SERA), check_exact=True)
    assert len(fast) == (infected | control).sum()


def test_cell_frame_label_mismatch_raises():
    record = plate_records()[2]
    record = ImageCells(record.image_name, record.site_name, record.well_name,
                        {**record.tables, "serum_IgA": features([1.0], [300])}, record.infection)
    with pytest.raises(ValueError, match="serum_IgA"):
        cell_frame(record, SERA)


def test_summarize_cells_counts_and_sizes():
    row = summarize_cells(cell_frame(plate_records()[0], SERA), SERA, BACKGROUNDS)
    assert {k: row[k] for k in CELL_COLUMNS} == {
        "n_cells": 4, "n_infected": 2, "n_control": 2, "fraction_infected": 0.5,
        "cell_size_median": 450.0, "cell_size_mean": 450.0,
        "cell_size_min": 300.0, "cell_size_max": 600.0}
    # IgG: background 10 -> infected 40, 60; control 10, 30
    assert row["serum_IgG_score"] == 2.5 and row["serum_IgG_robust_z_score"] == 3.0


# -- image and well tables ----------------------------------------------------

def test_image_table_columns_and_values():
    images = score_plate(plate_records(), BACKGROUNDS, image_flags=IMAGE_FLAGS).images
    assert images.columns.tolist() == [
        "image_name", "site_name", "well_name", "is_outlier", "outlier_type", *CELL_COLUMNS,
        *serum_columns("serum_IgG"), *serum_columns("serum_IgA")]
    expected = pd.DataFrame({
        "image_name": ["a1", "a2", "b1"],
        "site_name": ["A01-0000", "A01-0001", "B01-0000"],
        "is_outlier": [False, True, False],
        "outlier_type": ["", "too few cells (1 < 10)", ""],
        "n_cells": [4, 1, 3],
        "n_control": [2, 0, 2],
        "serum_IgG_score": [2.5, NAN, 2.0],
        "serum_IgG_robust_z_score": [3.0, NAN, INF],
        "serum_IgG_ratio_of_means": [2.5, NAN, 2.0],
        "serum_IgG_median_infected": [50.0, 990.0, 20.0],   # kept for outliers
        "serum_IgG_is_outlier": [False, True, False],
        "serum_IgG_outlier_type": ["", "too few cells (1 < 10)", ""],
        "serum_IgA_score": [2.0, NAN, 0.0],
        "serum_IgA_robust_z_score": [INF, NAN, -3.0],
        "serum_IgA_mad_control": [0.0, NAN, 5.0],
    })
    pd.testing.assert_frame_equal(images[expected.columns], expected, check_dtype=False)


def test_well_table_pools_non_outlier_images():
    wells = score_plate(plate_records(), BACKGROUNDS, image_flags=IMAGE_FLAGS,
                        well_rules=WELL_RULES, well_serum_rules=SERUM_RULES).wells
    assert wells.columns.tolist()[:5] == [
        "well_name", "n_images", "n_outlier_images", "is_outlier", "outlier_type"]
    expected = pd.DataFrame({
        "well_name": ["A01", "B01"],
        "n_images": [2, 1],
        "n_outlier_images": [1, 0],
        "is_outlier": [False, False],
        "outlier_type": ["", ""],
        "n_cells": [4, 3],           # a2 left out
        "n_infected": [2, 1],
        "fraction_infected": [0.5, 1 / 3],
        "serum_IgG_score": [2.5, 2.0],
        "serum_IgG_is_outlier": [False, False],
        "serum_IgA_score": [2.0, NAN],
        "serum_IgA_robust_z_score": [INF, NAN],
        "serum_IgA_ratio_of_means": [2.0, NAN],
        "serum_IgA_median_infected": [20.0, 0.0],
        "serum_IgA_median_control": [10.0, 15.0],
        "serum_IgA_is_outlier": [False, True],
        "serum_IgA_outlier_type": ["", IGA_LOW],
    })
    pd.testing.assert_frame_equal(wells[expected.columns], expected, check_dtype=False)


def test_well_pooling_over_several_images():
    records = [
        image("x1", "A01-0000", "A01", igg=[30, 20], iga=[5, 5], sizes=[300, 300],
              infected=[True, False], control=[False, True]),
        image("x2", "A01-0001", "A01", igg=[50, 40], iga=[5, 5], sizes=[300, 300],
              infected=[True, False], control=[False, True]),
    ]
    wells = score_wells(records, BACKGROUNDS, well_rules=(), serum_rules=())
    # IgG minus 10: infected 20, 40; control 10, 30
    assert wells.loc[0, "n_images"] == 2 and wells.loc[0, "n_cells"] == 4
    assert wells.loc[0, "serum_IgG_score"] == 1.5
    assert wells.loc[0, "serum_IgG_robust_z_score"] == 1.0
    assert wells.loc[0, "serum_IgG_ratio_of_means"] == 1.5


def test_default_well_rules_flag_too_few_control_cells_for_every_serum():
    wells = score_wells(plate_records(), BACKGROUNDS, image_flags=IMAGE_FLAGS)
    assert wells.outlier_type.tolist() == ["too few control cells (2 < 20)"] * 2
    # no absolute (instrument) minimum by default; IgA: 3 x MAD 2
    assert wells.serum_IgG_outlier_type.tolist() == ["too few control cells (2 < 20)"] * 2
    assert wells.serum_IgA_outlier_type.tolist()[1] == (
        "too few control cells (2 < 20); "
        "median infected intensity too low (0 < 6 = 3 x background MAD 2)")
    assert wells.serum_IgG_score.isna().all() and wells.serum_IgA_score.isna().all()


def test_well_with_only_outlier_images():
    flags = pd.DataFrame({"image_name": ["b1"], "is_outlier": [True],
                          "outlier_type": ["manual outlier"]})
    wells = score_wells(plate_records()[2:], BACKGROUNDS, image_flags=flags,
                        well_rules=(NoQC(),), serum_rules=())
    row = wells.iloc[0]
    assert (row.n_images, row.n_outlier_images, row.n_cells, row.is_outlier) == (1, 1, 0, True)
    assert math.isnan(row.fraction_infected) and math.isnan(row.serum_IgG_score)
    assert row.outlier_type == row.serum_IgG_outlier_type == "every image an outlier (manual outlier)"
    flagged = score_wells(plate_records()[2:], BACKGROUNDS, image_flags=flags)
    assert flagged.outlier_type.tolist() == ["every image an outlier (manual outlier)"]


def test_image_serum_rules_are_opt_in():
    images = score_images(plate_records(), BACKGROUNDS, image_flags=IMAGE_FLAGS,
                          serum_rules=(FixedMinInfectedIntensityQC({"serum_IgA": 1.0}),))
    assert images.serum_IgA_outlier_type.tolist() == [
        "", "too few cells (1 < 10)", "median infected intensity too low (0 < 1)"]
    assert images.is_outlier.tolist() == [False, True, False]
    assert images.serum_IgG_is_outlier.tolist() == [False, True, False]


def clipped_image(name, site, igg, clipped):
    """Two infected, two control cells of well A01; ``clipped``: each cell's fraction of IgG pixels at the ceiling."""
    record = image(name, site, "A01", igg=igg, iga=[15, 15, 10, 10], sizes=[300] * 4,
                   infected=[True, True, False, False], control=[False, False, True, True])
    record.tables["serum_IgG"]["clipped"] = clipped
    return record


def test_an_image_clipped_in_many_cells_leaves_only_that_serums_well_pool():
    records = [clipped_image("a1", "A01-0000", [50, 70, 20, 40], [0.0, 0.005, 0.0, 0.0]),
               clipped_image("a2", "A01-0001", [4000, 4000, 3000, 4000], [0.5, 0.9, 0.0, 0.0])]
    scores = score_plate(records, BACKGROUNDS, SERA, image_serum_rules=(ClippedCellsQC(),), well_rules=(),
                         well_serum_rules=())
    images, wells = scores.images, scores.wells
    assert images.serum_IgG_clipped_cells.tolist() == [0.0, 1.0]  # the larger group: both infected cells of a2
    assert images.serum_IgG_outlier_type.tolist() == [
        "", "serum_IgG clipped at the camera ceiling in 100 % of the cells of a group (> 25 %)"]
    assert images.serum_IgA_outlier_type.tolist() == ["", ""] and images.outlier_type.tolist() == ["", ""]
    assert math.isnan(images.serum_IgG_score[1])
    # IgG from a1 alone (minus 10: infected 40, 60; control 10, 30); IgA pools both images; every cell counts
    assert wells.serum_IgG_score.tolist() == [2.5] and wells.serum_IgG_clipped_cells.tolist() == [0.0]
    assert wells.serum_IgA_score.tolist() == [2.0] and wells.n_cells.tolist() == [8]
    assert wells.serum_IgG_outlier_type.tolist() == [""]


def test_a_well_whose_every_image_is_clipped_says_so():
    records = [clipped_image("a2", "A01-0001", [4000, 4000, 3000, 4000], [0.5, 0.9, 0.0, 0.0])]
    wells = score_wells(records, BACKGROUNDS, SERA, well_rules=(), serum_rules=())
    assert wells.serum_IgG_score.tolist() == [pytest.approx(1.0 * 3990 / 3490)]  # no image rule: scored as is
    wells = score_plate(records, BACKGROUNDS, SERA, image_serum_rules=(ClippedCellsQC(),), well_rules=(),
                        well_serum_rules=()).wells
    assert wells.serum_IgG_outlier_type.tolist() == [
        "every image left out (serum_IgG clipped at the camera ceiling in 100 % of the cells of a group (> 25 %))"]
    assert math.isnan(wells.serum_IgG_score[0]) and wells.serum_IgA_outlier_type.tolist() == [""]


def test_score_images_and_wells_match_score_plate():
    both = score_plate(iter(plate_records()), BACKGROUNDS, image_flags=IMAGE_FLAGS)
    pd.testing.assert_frame_equal(
        score_images(iter(plate_records()), BACKGROUNDS, image_flags=IMAGE_FLAGS), both.images)
    pd.testing.assert_frame_equal(
        score_wells(iter(plate_records()), BACKGROUNDS, image_flags=IMAGE_FLAGS), both.wells)


def test_sera_detected_from_first_record_only_present_sera():
    records = [ImageCells("a1", "A01-0000", "A01",
                          {"marker_tophat": features([1.0], [300]),
                           "serum_IgG": features([20.0], [300])},
                          infection([True], [False]))]
    images = score_images((r for r in records), BACKGROUNDS)
    assert sera_in(images) == ["serum_IgG"]
    assert not any(c.startswith(("serum_IgA", "serum_IgM", "marker")) for c in images.columns)


def test_no_records_gives_empty_tables_with_columns():
    result = score_plate([], BACKGROUNDS, sera=SERA)
    assert len(result.images) == 0 and len(result.wells) == 0
    assert result.wells.columns.tolist()[-1] == "serum_IgA_outlier_type"


# -- positive call and per-serum tables ---------------------------------------

def test_call_positive_cutoffs_and_na():
    table = pd.DataFrame({
        "well_name": ["A01", "B01", "C01"],
        "serum_IgG_score": [1.3, 1.3001, NAN],
        "serum_IgG_score_log_se": [0.0, 0.0, NAN],
        "serum_IgG_outlier_type": ["", "", "too few control cells (2 < 20)"],
        "serum_IgM_score": [1.27, 2.0, 0.5],
        "serum_IgM_score_log_se": [0.0, 0.01, 0.01],
        "serum_IgM_outlier_type": ["", "", ""],
    })
    result = call_positive(table)
    assert result.columns.tolist() == [
        "well_name", "serum_IgG_score", "serum_IgG_is_positive", "serum_IgG_score_ci_low",
        "serum_IgG_score_ci_high", "serum_IgG_score_log_se", "serum_IgG_outlier_type",
        "serum_IgM_score", "serum_IgM_is_positive", "serum_IgM_score_ci_low", "serum_IgM_score_ci_high",
        "serum_IgM_score_log_se", "serum_IgM_outlier_type"]
    assert result.serum_IgG_is_positive.tolist() == [False, True, pd.NA]
    assert result.serum_IgM_is_positive.tolist() == [False, True, False]
    z = 1.959964
    assert result.serum_IgM_score_ci_low.tolist() == pytest.approx([1.27, 2.0 * math.exp(-0.01 * z), 0.5 * math.exp(-0.01 * z)])
    assert str(result.serum_IgG_is_positive.dtype) == "boolean"
    assert "serum_IgG_is_positive" not in table.columns   # input untouched


def test_call_positive_inconclusive_when_the_interval_holds_the_cutoff():
    # a well of few cells: score 1.45 with 10 % log error; at 95 % the interval 1.19-1.76 holds 1.3
    table = pd.DataFrame({"serum_IgG_score": [1.45, 1.45, 1.0, 1.1],
                          "serum_IgG_score_log_se": [0.1, 0.01, 0.1, NAN], "serum_IgG_outlier_type": [""] * 4})
    def calls(confidence):
        return [None if pd.isna(v) else bool(v) for v in call_positive(table, confidence=confidence).serum_IgG_is_positive]

    assert calls(0.95) == [None, True, False, None]
    assert calls(0.5) == [True, True, False, None]
    # confidence 0: batchlib's call on the score alone, also without an error estimate
    assert calls(0) == [True, True, False, False]
    with pytest.raises(ValueError, match="confidence"):
        call_positive(table, confidence=1.0)


def test_call_positive_custom_cutoffs_skip_unlisted_sera():
    table = pd.DataFrame({"serum_IgA_score": [1.5], "serum_IgA_score_log_se": [0.0], "serum_IgA_outlier_type": [""]})
    assert call_positive(table, {"serum_IgA": 1.5}).serum_IgA_is_positive.tolist() == [False]
    assert "serum_IgA_is_positive" not in call_positive(table, {"serum_IgG": 1.0}).columns


def test_split_by_serum():
    wells = score_wells(plate_records(), BACKGROUNDS, image_flags=IMAGE_FLAGS,
                        well_rules=WELL_RULES, serum_rules=SERUM_RULES)
    tables = split_by_serum(wells)
    assert list(tables) == list(SERA)
    iga = tables["serum_IgA"]
    assert iga.columns.tolist() == [
        "well_name", "n_images", "n_outlier_images", *CELL_COLUMNS, "score", "score_log_se", "robust_z_score",
        "ratio_of_means", "median_infected", "median_control", "mad_control", "clipped_cells",
        "is_outlier", "outlier_type"]
    assert iga.is_outlier.tolist() == [False, True]
    assert iga.outlier_type.tolist() == ["", IGA_LOW]
    np.testing.assert_array_equal(iga.score.to_numpy(), [2.0, NAN])


def test_only_clear_calls_enter_the_serum_statistics_but_every_call_counts():
    """An unclear control cell (its marker near the cut) with spilled-over serum would lower the score."""
    calls = infection([True, True, False, False, False], [False, False, True, True, True])
    tables = {"serum_IgG": features([40.0, 60.0, 20.0, 24.0, 35.0], [300] * 5)}
    clear = ImageCells("a", "s", "A01", tables, calls.assign(is_clear_call=[True, True, True, True, False]))
    every = ImageCells("a", "s", "A01", tables, calls)
    row = summarize_cells(cell_frame(clear, ["serum_IgG"]), ["serum_IgG"])
    assert (row["n_infected"], row["n_control"]) == (2, 3)
    assert row["serum_IgG_score"] == 50.0 / 22.0
    assert summarize_cells(cell_frame(every, ["serum_IgG"]), ["serum_IgG"])["serum_IgG_score"] == 50.0 / 24.0
    unclear_infected = ImageCells("a", "s", "A01", tables, calls.assign(is_clear_call=[False, True, True, True, True]))
    assert summarize_cells(cell_frame(unclear_infected, ["serum_IgG"]), ["serum_IgG"])["serum_IgG_score"] == 60.0 / 24.0


# -- median estimators -----------------------------------------------------------

def test_harrell_davis_median_exact_small_samples():
    hd = HarrellDavisMedian()
    # n = 3: Beta(2, 2) gives the outer values 7/27 each and the middle one 13/27
    assert hd(np.array([10.0, 1.0, 2.0])) == pytest.approx((7 * 1 + 13 * 2 + 7 * 10) / 27, rel=1e-12)
    assert hd(np.array([4.0])) == 4.0
    assert hd(np.array([1.0, 3.0])) == pytest.approx(2.0, rel=1e-12)  # symmetric weights
    assert math.isnan(hd(np.array([])))
    assert math.isnan(SampleMedian()(np.array([])))
    # symmetric samples: the same median as the sample median
    assert hd(np.arange(11.0)) == pytest.approx(5.0, rel=1e-12)


def test_harrell_davis_median_is_steadier_than_the_sample_median_on_few_cells():
    rng = np.random.default_rng(1)
    infected, control = rng.lognormal(np.log(200.0), 0.3, (4000, 5)), rng.lognormal(np.log(100.0), 0.3, (4000, 40))
    hd = np.array([compare_intensities(i, c, HarrellDavisMedian())["score"] for i, c in zip(infected, control)])
    sample = np.array([compare_intensities(i, c)["score"] for i, c in zip(infected, control)])
    assert np.std(np.log(hd)) < 0.92 * np.std(np.log(sample))
    # both scores center on the true ratio of 2 within 1.5 % over 4,000 wells of 5 infected cells
    assert np.median(hd) == pytest.approx(2.0, rel=0.015)
    assert np.median(sample) == pytest.approx(2.0, rel=0.015)


def test_the_score_uses_the_median_estimator_given():
    infected, control = [10.0, 11.0, 30.0], [4.0, 5.0, 5.0, 6.0, 20.0]
    sample = compare_intensities(infected, control)
    hd = compare_intensities(infected, control, HarrellDavisMedian())
    assert sample["score"] == 11.0 / 5.0
    expected = HarrellDavisMedian()(np.array(infected)) / HarrellDavisMedian()(np.array(control))
    assert hd["score"] == pytest.approx(expected, rel=1e-12) and hd["score"] != sample["score"]
    assert hd["mad_control"] == pytest.approx(np.median(np.abs(np.array(control) - hd["median_control"])))
    wells = score_wells(plate_records(), BACKGROUNDS, SERA, well_rules=(NoQC(),), serum_rules=(NoQC(),),
                        median=MEDIAN_ESTIMATORS["harrell_davis"])
    assert set(MEDIAN_ESTIMATORS) == {"sample", "harrell_davis"}
    assert np.isfinite(wells["serum_IgG_score"]).all()
