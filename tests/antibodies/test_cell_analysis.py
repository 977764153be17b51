"""CellAnalysis end to end on small synthetic plates, checked against their ground truth."""
import hashlib
import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile

from antibodies import keys
from antibodies.evaluation import evaluate_plate
from luigi_tasks.io import list_tables, open_file, read_table
from luigi_tasks.targets import container_index
from luigi_tasks.testing import run_local

from .conftest import cell_analysis, render_small_plate

pytestmark = pytest.mark.slow


def stamps(container):
    return {key: stamp.created for key, stamp in container_index(container).items()}


def test_image_containers_have_every_output(processed_plate):
    containers = sorted(processed_plate["output"].glob("*.h5"))
    assert len(containers) == 8
    with open_file(containers[0]) as f:
        for key in ("nuclei", "marker", "serum_IgG", "nucleus_segmentation", "cell_segmentation", "marker_tophat"):
            assert f"{key}/s0" in f and f"{key}/s1" in f, key
        tables = list_tables(f)
        assert {"cell_segmentation/serum_IgG", "cell_segmentation/marker_tophat", "cell_segmentation/infected_cells"} <= set(tables)
        infected = read_table(f, "cell_segmentation/infected_cells")
        assert list(infected.columns) == ["label_id", "is_infected", "is_control", "is_clear_call"]
        serum = read_table(f, "cell_segmentation/serum_IgG")
        assert serum.columns[0] == "label_id" and {"sums", "means", "medians", "mads", "sizes", "top10", "top30",
                                                   "top50", "quantile0.95", "local_background",
                                                   "neighbour_contrast"} <= set(serum.columns)
        cells, nuclei = f["cell_segmentation/s0"][:], f["nucleus_segmentation/s0"][:]
    assert set(pd.unique(cells.ravel())) == set(pd.unique(nuclei.ravel()))  # one cell per nucleus, same id


def test_plate_tables_and_exports(processed_plate):
    out, name = processed_plate["output"], processed_plate["name"]
    with open_file(out / f"{name}_tables.hdf5") as f:
        images, wells = read_table(f, "images/default"), read_table(f, "wells/default")
        assert "images/serum_IgG" in list_tables(f, "images") and "wells/serum_IgG" in list_tables(f, "wells")
    assert list(images.columns[:2]) == ["image_name", "site_name"] and len(images) == 8
    assert wells.columns[0] == "well_name" and list(wells["well_name"]) == ["A01", "A02", "B01", "B02"]
    for column in ("serum_IgG_score", "serum_IgG_robust_z_score", "serum_IgG_is_outlier", "serum_IgG_outlier_type",
                   "n_cells", "n_infected", "n_control", "fraction_infected", "is_outlier"):
        assert column in wells.columns, column
    for suffix in ("images.csv", "wells.csv", "tables.xlsx"):
        assert (out / f"{name}_{suffix}").stat().st_size > 0
    assert (out / "heatmaps" / "serum_IgG_score.png").stat().st_size > 0


def test_results_match_the_truth(processed_plate):
    _, figures = evaluate_plate(processed_plate["output"], processed_plate["truth"], processed_plate["name"])
    assert figures["nuclei_f1"] >= 0.9, figures
    assert figures["cells_f1"] >= 0.85, figures
    assert figures["infected_accuracy"] >= 0.93, figures
    assert figures["serum_IgG_separation"] > 0, figures  # every positive well scores above every negative one


def test_rerun_removes_export_temporaries_a_killed_run_left(plate_copy):
    from luigi_tasks.io.atomic import temporary_name

    csv = plate_copy["output"] / "plate_images.csv"
    leftover = temporary_name(csv)
    leftover.write_text("half a CSV")
    csv.unlink()  # the exports are incomplete: they run again
    assert run_local([cell_analysis(plate_copy["plate"], plate_copy["output"])]).status.name == "SUCCESS"
    assert csv.exists() and not leftover.exists()


def test_noop_rerun_changes_nothing(plate_copy):
    before = {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")}
    assert run_local([cell_analysis(plate_copy["plate"], plate_copy["output"])]).status.name == "SUCCESS"
    assert {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")} == before


def test_changed_threshold_recomputes_only_infection_and_plate_tables(plate_copy):
    container = next(plate_copy["output"].glob("*.h5"))
    before = stamps(container)
    run_local([cell_analysis(plate_copy["plate"], plate_copy["output"], infection_method="fixed",
                             infection_threshold_factor="6.0")])
    after = stamps(container)
    changed = {key for key in after if after[key] != before[key]}
    # the calls changed, and with them what the plate's spillover width is measured on
    assert changed == {"tables/cell_segmentation/infected_cells", "tables/cell_segmentation/cell_qc",
                       "tables/border_exchange/serum_IgG"}
    tables = plate_copy["output"] / "plate_tables.hdf5"
    with h5py.File(tables) as f:
        params = json.loads(f["tables/wells/default"].attrs["batchlib_params"])
    assert params["infection_threshold_factor"] == "6.0"


def test_new_images_are_processed_alone_and_refresh_the_plate(plate_copy, tmp_path):
    from antibodies.synthetic.plate import render_plate

    extra = tmp_path / "extra"
    render_plate(extra / "plate", extra / "truth", scheme="scheme1", wells=("C01",), sites_per_well=1,
                 shape=(512, 512), seed=9)
    new = next((extra / "plate").glob("*.tiff"))
    (plate_copy["plate"] / new.name.replace("Seq0000", "Seq0100")).write_bytes(new.read_bytes())
    old = {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")}
    run_local([cell_analysis(plate_copy["plate"], plate_copy["output"])])
    now = {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")}
    assert len(now) == 9
    segmentation_unchanged = [now[n]["nucleus_segmentation"] == old[n]["nucleus_segmentation"] for n in old]
    assert all(segmentation_unchanged)
    with open_file(plate_copy["output"] / "plate_tables.hdf5") as f:
        assert "C01" in set(read_table(f, "wells/default")["well_name"])


def test_lost_plate_tables_are_rebuilt_without_touching_the_images(plate_copy):
    """The plate jobs name every plate table they read, so a deleted tables file is recomputed."""
    tables = plate_copy["output"] / "plate_tables.hdf5"
    with open_file(tables) as f:
        wells_before = read_table(f, "wells/default")
    tables.unlink()
    old = {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")}
    result = run_local([cell_analysis(plate_copy["plate"], plate_copy["output"])])
    assert result.status.name == "SUCCESS", result.summary_text
    assert {c.name: stamps(c) for c in plate_copy["output"].glob("*.h5")} == old
    with open_file(tables) as f:
        pd.testing.assert_frame_equal(read_table(f, "wells/default"), wells_before)
        assert len(read_table(f, keys.INFECTION_DECISION)) == 1


def folder_digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("scheme, shape", [("scheme2", (256, 256)), ("scheme3", (256, 256)),
                                           ("scheme4", (232, 256)), ("scheme5", (256, 256))])
def test_every_channel_scheme_runs_and_leaves_raw_data_untouched(tmp_path, scheme, shape):
    plate, _ = render_small_plate(tmp_path, scheme=scheme, wells=("A01",), sites_per_well=1, shape=shape,
                                  well_ratios=None)
    digest = folder_digest(plate)
    assert run_local([cell_analysis(plate, tmp_path / "out")]).status.name == "SUCCESS"
    assert folder_digest(plate) == digest
    mapping = json.loads((plate / "channel_mapping.json").read_text())
    sera = sorted(role for role in mapping.values() if role and role.startswith("serum"))
    with open_file(tmp_path / "out" / "plate_tables.hdf5") as f:
        wells = read_table(f, "wells/default")
    assert sorted(c.removesuffix("_score") for c in wells.columns if c.endswith("_score") and "z_score" not in c) == sera
    assert set(keys.SERUM_ROLES) >= set(sera)


def test_randomised_plate_with_a_mock_well_and_per_image_nuisances(tmp_path):
    """Per-image offsets, haze and noise, a mock-infected well: calls and scores hold, negatives get a score."""
    from antibodies.synthetic.plate import render_family_plate

    wells = ("A01", "A02", "A03", "A04")
    render_family_plate("tune_broad", "scheme4", tmp_path / "plate", tmp_path / "truth", wells=wells, sites=2,
                        shape=(464, 512), mock_wells=("A04",), well_ratios={"A01": 2.2, "A02": 1.05, "A03": 1.6})
    assert run_local([cell_analysis(tmp_path / "plate", tmp_path / "out")]).status.name == "SUCCESS"
    images, figures = evaluate_plate(tmp_path / "out", tmp_path / "truth", "plate")
    assert figures["infected_accuracy"] >= 0.95, figures
    assert figures["mock_infected_fraction"] < 0.02, figures
    for serum in ("serum_IgG", "serum_IgA"):
        assert figures[f"{serum}_wrong_calls"] == 0, figures
        assert figures[f"{serum}_negative_wells_without_score"] == 0, figures
    with open_file(tmp_path / "out" / "plate_tables.hdf5") as f:
        decision = read_table(f, keys.INFECTION_DECISION)
        subtracted = read_table(f, keys.SUBTRACTED_BACKGROUNDS)
        scored = read_table(f, keys.WELL_TABLE).dropna(subset=["serum_IgG_score"])
    assert len(scored) == 3  # the mock-infected well has no infected cells to score
    assert (scored["serum_IgG_score_ci_low"] < scored["serum_IgG_score"]).all()
    assert (scored["serum_IgG_score"] < scored["serum_IgG_score_ci_high"]).all()
    assert decision["method"].iloc[0] == "valley" and decision["factor"].iloc[0] >= 8.0
    assert subtracted["serum_IgG_median"].nunique() == len(subtracted)  # each image its own background


def test_a_plate_exported_as_normalised_floats_gives_the_same_tables(processed_plate, tmp_path):
    """Float TIFFs within [0, 1] (16-bit counts / 65535, as skimage or Fiji export them) are read as counts."""
    plate = tmp_path / "plate"
    plate.mkdir()
    for path in processed_plate["plate"].iterdir():
        if path.suffix == ".tiff":
            tifffile.imwrite(plate / path.name, tifffile.imread(path) / np.float32(65535))
        else:
            shutil.copy(path, plate / path.name)
    assert run_local([cell_analysis(plate, tmp_path / "out")]).status.name == "SUCCESS"
    for table in ("wells/default", "images/default"):
        with open_file(processed_plate["output"] / "plate_tables.hdf5") as f, \
                open_file(tmp_path / "out" / "plate_tables.hdf5") as g:
            pd.testing.assert_frame_equal(read_table(g, table), read_table(f, table))


def test_a_plate_of_the_second_renderer_gets_right_calls_and_a_score_for_every_serum_well(tmp_path):
    """Other nuclei, cells, stains and optics (antibodies.synthetic.second_renderer): calls and scores still hold."""
    from antibodies.synthetic.second_renderer import render_second_plate

    wells = ["A01", "A02", "A03", "A04"]
    render_second_plate("tune_second_standard", "scheme4", tmp_path / "plate", tmp_path / "truth", wells, sites=2,
                        shape=(464, 512), mock_wells=("A04",), well_ratios={"A01": 3.0, "A02": 1.0, "A03": 1.8})
    digest = folder_digest(tmp_path / "plate")
    assert run_local([cell_analysis(tmp_path / "plate", tmp_path / "out")]).status.name == "SUCCESS"
    assert folder_digest(tmp_path / "plate") == digest
    _, figures = evaluate_plate(tmp_path / "out", tmp_path / "truth", "plate")
    assert figures["nuclei_f1"] >= 0.95 and figures["infected_accuracy"] >= 0.93, figures
    assert figures["mock_infected_fraction"] < 0.02, figures
    for serum in ("serum_IgG", "serum_IgA"):
        assert figures[f"{serum}_wrong_calls"] == 0, figures
        assert figures[f"{serum}_wells_without_score"] == 0, figures


def test_a_fixed_spillover_width_rescores_the_plate_without_touching_the_images(plate_copy):
    """The default measures each serum's width on the plate's own cells; ``--scores-spillover fixed`` rescores with 0.5."""
    out = plate_copy["output"]
    before = {path.name: stamps(path) for path in sorted(out.glob("*.h5"))}
    with open_file(out / "plate_tables.hdf5") as f:
        measured, measured_wells = read_table(f, keys.SPILLOVER_WIDTHS), read_table(f, keys.WELL_TABLE)
    assert measured["serum"].tolist() == ["serum_IgG"] and measured["method"].tolist() == ["measured"]
    assert 0.05 < measured["width"].iloc[0] < 3.0 and measured["width"].iloc[0] != 0.5
    task = cell_analysis(plate_copy["plate"], out, scores_spillover="fixed")
    assert run_local([task]).status.name == "SUCCESS"
    assert {path.name: stamps(path) for path in sorted(out.glob("*.h5"))} == before
    with open_file(out / "plate_tables.hdf5") as f:
        widths, wells = read_table(f, keys.SPILLOVER_WIDTHS), read_table(f, keys.WELL_TABLE)
    assert widths.to_dict("list") == {"serum": ["serum_IgG"], "width": [0.5], "method": ["fixed"]}
    positive = measured_wells["serum_IgG_score"] > 1.3
    assert not np.allclose(wells.loc[positive, "serum_IgG_score"], measured_wells.loc[positive, "serum_IgG_score"])


def test_a_clipped_image_leaves_its_wells_serum_score_and_a_blurred_one_every_score(tmp_path):
    """A saturated serum channel (exposure too long) or a site out of focus would make the well's pooled medians
    meaningless."""
    from scipy import ndimage as ndi

    plate, _ = render_small_plate(tmp_path, wells=("A01", "A02"), well_ratios={"A01": 2.5, "A02": 1.0})
    serum = list(json.loads((plate / "channel_mapping.json").read_text()).values()).index("serum_IgG")
    clipped, blurred = sorted(plate.glob("WellA01_*.tiff"))[0], sorted(plate.glob("WellA02_*.tiff"))[1]
    stack = tifffile.imread(clipped)
    stack[serum] = np.minimum(stack[serum].astype(np.int64) * 60, 65535)
    tifffile.imwrite(clipped, stack)
    tifffile.imwrite(blurred, np.stack([ndi.gaussian_filter(channel, 6.0) for channel in tifffile.imread(blurred)]))
    assert run_local([cell_analysis(plate, tmp_path / "out")]).status.name == "SUCCESS"
    with open_file(tmp_path / "out" / "plate_tables.hdf5") as f:
        images = read_table(f, keys.IMAGE_TABLE).set_index("image_name")
        wells = read_table(f, keys.WELL_TABLE).set_index("well_name")
    assert images["serum_IgG_clipped_cells"].tolist() == [1.0, 0.0, 0.0, 0.0]
    flagged = images.loc[clipped.stem]
    assert flagged["serum_IgG_outlier_type"].startswith("serum_IgG clipped at the camera ceiling in 100 %")
    assert np.isnan(flagged["serum_IgG_score"]) and not flagged["is_outlier"]
    other = images[(images["well_name"] == "A01") & (images.index != clipped.stem)]
    assert wells.at["A01", "serum_IgG_score"] == pytest.approx(other["serum_IgG_score"].iloc[0])
    assert wells.at["A01", "serum_IgG_outlier_type"] == ""
    log = (tmp_path / "out" / "batchlib" / "CellAnalysis.log").read_text()
    assert f"{clipped.stem}.h5: serum_IgG clipped" in log and "shorter exposure" in log
    soft = images.loc[blurred.stem]
    assert soft["is_outlier"] and soft["outlier_type"].startswith("out of focus (nuclei edges 0.")
    assert images["nucleus_edge_sharpness"].idxmin() == blurred.stem
    assert images.loc[images.index != blurred.stem, "outlier_type"].eq("").all()
    sharp = images[(images["well_name"] == "A02") & (images.index != blurred.stem)]
    assert wells.at["A02", "serum_IgG_score"] == pytest.approx(sharp["serum_IgG_score"].iloc[0])
    assert log.count("out of focus") == 1 and f"{blurred.stem}.h5: out of focus" in log and "autofocus" in log
    assert "out of focus (nuclei edges 0." in (tmp_path / "out" / "report" / "index.html").read_text()
    # the plate's spillover width is measured on the other images: with the clipped one it would be another
    from antibodies.analysis.spillover import MeasuredSpillover
    from antibodies.tasks.spillover import read_exchange_sums

    sums = {path.stem: read_exchange_sums(path, ["serum_IgG"])["serum_IgG"] for path in (tmp_path / "out").glob("*.h5")}
    others = sum(part for name, part in sums.items() if name not in (clipped.stem, blurred.stem))
    with open_file(tmp_path / "out" / "plate_tables.hdf5") as f:
        width = read_table(f, keys.SPILLOVER_WIDTHS).set_index("serum").at["serum_IgG", "width"]
    assert width == pytest.approx(MeasuredSpillover().widths({"serum_IgG": others}, ["serum_IgG"])["serum_IgG"])
    every = MeasuredSpillover().widths({"serum_IgG": others + sums[clipped.stem]}, ["serum_IgG"])["serum_IgG"]
    assert abs(every - width) > 0.1, (every, width)
