"""The second plate renderer: file layout, truth consistency, determinism."""
import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from antibodies.synthetic.plate import FILENAME_PATTERN, SCHEMES
from antibodies.synthetic.second_renderer import SECOND_FAMILIES, render_second_image, render_second_plate


@pytest.fixture(scope="module")
def plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("second")
    summary = render_second_plate("tune_second_standard", "scheme4", root / "raw", root / "truth",
                                  wells=["A01", "A02", "A03"], sites=2, shape=(200, 240), mock_wells=("A03",))
    return root, summary


def test_the_plate_folder_holds_only_the_microscope_files(plate):
    root, _ = plate
    names = sorted(p.name for p in (root / "raw").iterdir() if p.name != "channel_mapping.json")
    assert len(names) == 6 and all(FILENAME_PATTERN.match(name) for name in names)
    assert json.loads((root / "raw" / "channel_mapping.json").read_text()) == SCHEMES["scheme4"]
    stack = tifffile.imread(root / "raw" / names[0])
    assert stack.shape == (5, 200, 240) and stack.dtype == np.uint16


def test_the_true_ratio_is_the_median_ratio_of_the_drawn_cells(plate):
    root, _ = plate
    wells = pd.read_csv(root / "truth" / "wells.csv").set_index("well_name")
    for well in ("A01", "A02"):
        truths = [np.load(p) for p in sorted((root / "truth").glob(f"Well{well}_*.npz"))]
        infected = np.concatenate([np.isin(t["cell_ids"], t["infected_ids"]) for t in truths])
        for role in ("serum_IgG", "serum_IgA"):
            means = np.concatenate([t[f"{role}_cell_means"] for t in truths])
            expected = np.median(means[infected]) / np.median(means[~infected])
            assert wells.at[well, f"ratio_{role}"] == pytest.approx(expected)
        assert wells.at[well, "is_positive"] == (wells.loc[well, ["ratio_serum_IgG", "ratio_serum_IgA"]].max() >= 1.3)
    assert np.isnan(wells.at["A03", "ratio_serum_IgG"]) and wells.at["A03", "n_infected"] == 0


def test_each_nucleus_lies_in_its_own_cell_and_some_cells_are_cut_by_the_edge():
    rng = np.random.default_rng(3)
    family = SECOND_FAMILIES["tune_second_dense_dim"]
    well = {"confluence": 0.9, "nucleus_radius": 10.0, "fraction_infected": 0.5, "serum_level": 400.0,
            "marker_level": 800.0, "nucleus_level": 1000.0, "ratios": {"serum_IgG": 2.0}, "mock": False}
    _, truth = render_second_image((256, 256), SCHEMES["scheme2"], family, well, rng)
    nuclei, cells = truth["nuclei"], truth["cells"]
    assert np.array_equal(nuclei[nuclei > 0], cells[nuclei > 0])
    assert np.array_equal(np.unique(cells[cells > 0]), truth["cell_ids"])
    edge = np.unique(np.concatenate([cells[0], cells[-1], cells[:, 0], cells[:, -1]]))
    assert len(edge[edge > 0]) >= 5
    without_nucleus = np.setdiff1d(truth["cell_ids"], np.unique(nuclei))
    assert without_nucleus.size > 0  # cells whose nucleus lies outside the field
    assert 0 < len(truth["infected_ids"]) < len(truth["cell_ids"])


def test_the_same_seed_renders_the_same_pixels(tmp_path):
    first = render_second_plate("tune_second_standard", "scheme2", tmp_path / "a", tmp_path / "ta", ["B02"], 1, (96, 128))
    second = render_second_plate("tune_second_standard", "scheme2", tmp_path / "b", tmp_path / "tb", ["B02"], 1, (96, 128))
    assert first["wells"] == second["wells"]
    name = next((tmp_path / "a").glob("*.tiff")).name
    assert np.array_equal(tifffile.imread(tmp_path / "a" / name), tifffile.imread(tmp_path / "b" / name))


def test_a_family_of_either_renderer_must_be_tune_or_holdout():
    import dataclasses

    from antibodies.synthetic.nuisance import FAMILIES

    for family in (SECOND_FAMILIES["tune_second_standard"], FAMILIES["tune_standard"]):
        with pytest.raises(ValueError, match=f"{type(family).__name__} 'x': role must be"):
            dataclasses.replace(family, name="x", role="both")
