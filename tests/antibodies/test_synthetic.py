"""Tests of the synthetic plate renderer and the nuclei-only image generator."""
import csv
import dataclasses
import hashlib
import json

import numpy as np
import pytest
import tifffile

from antibodies.synthetic import (
    FAMILIES, FILENAME_PATTERN, SCHEMES, SERUM_ROLES, NuisanceRanges, draw_image_nuisance, draw_well_params,
    image_file_name, parse_well_list, random_well_params, render_family_plate, render_image, render_nuclei_image,
    render_plate)
from antibodies.synthetic.plate import main as plate_main
from antibodies.synthetic.plate import render_cell_layout

SMALL = (200, 240)


def _measured_ratio(stack, truth, channel_index, channel):
    """Return median(infected - bg) / median(control - bg) of per-cell means on the rendered image."""
    cells = truth["cells"]
    areas = np.bincount(cells.ravel())
    means = np.bincount(cells.ravel(), weights=stack[channel_index].ravel().astype(float)) / np.maximum(areas, 1)
    means = means[1:] - truth["background"][channel]
    infected = np.isin(truth["cell_ids"], truth["infected_ids"])
    return np.median(means[infected]) / np.median(means[~infected])


@pytest.fixture(scope="module")
def scheme4_plate(tmp_path_factory):
    root = tmp_path_factory.mktemp("plate")
    summary = render_plate(root / "plate", root / "truth", scheme="scheme4", wells=("A01", "P24", "C05"),
                           sites_per_well=2, shape=SMALL, seed=3, well_ratios={"A01": 2.0},
                           empty_wells=("C05",))
    return summary


def test_file_names_match_the_scheme_pattern(scheme4_plate):
    names = [path.name for path in scheme4_plate["files"]]
    assert len(names) == 6
    matches = [FILENAME_PATTERN.match(name) for name in names]
    assert all(matches), names
    assert [int(m["seq"]) for m in matches] == list(range(6))
    assert [m["row"] + m["col"] for m in matches] == ["A01", "A01", "P24", "P24", "C05", "C05"]
    assert all(m["channels"].split(",") == list(SCHEMES["scheme4"]) for m in matches)
    assert image_file_name("C05", 2, ["DAPI", "WF_GFP", "TRITC", "WF_Cy5"], 123) == \
        "WellC05_PointC05_0002_ChannelDAPI,WF_GFP,TRITC,WF_Cy5_Seq0123.tiff"


def test_plate_folder_holds_images_and_mapping_only(scheme4_plate):
    plate_dir, truth_dir = scheme4_plate["plate_dir"], scheme4_plate["truth_dir"]
    assert json.loads((plate_dir / "channel_mapping.json").read_text()) == SCHEMES["scheme4"]
    assert sorted(p.suffix for p in plate_dir.iterdir()) == [".json"] + [".tiff"] * 6
    assert len(list(truth_dir.glob("*.npz"))) == 6


def test_images_are_uint16_channel_stacks(scheme4_plate):
    for path in scheme4_plate["files"]:
        stack = tifffile.imread(path)
        assert stack.dtype == np.uint16
        assert stack.shape == (len(SCHEMES["scheme4"]),) + SMALL


def test_truth_is_consistent(scheme4_plate):
    for path in scheme4_plate["files"]:
        truth = np.load(scheme4_plate["truth_dir"] / (path.stem + ".npz"))
        cells, nuclei = truth["cells"], truth["nuclei"]
        assert cells.dtype == np.int32 and nuclei.dtype == np.int32
        cell_ids = np.unique(cells[cells > 0])
        assert np.array_equal(cell_ids, np.unique(nuclei[nuclei > 0]))
        assert np.array_equal(cell_ids, truth["cell_ids"])
        assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
        assert set(truth["infected_ids"]) <= set(cell_ids)


def test_wells_csv(scheme4_plate):
    with open(scheme4_plate["truth_dir"] / "wells.csv") as handle:
        rows = {row["well_name"]: row for row in csv.DictReader(handle)}
    assert list(rows) == ["A01", "P24", "C05"]
    assert float(rows["A01"]["ratio_serum_IgG"]) == 2.0 and rows["A01"]["is_positive"] == "True"
    assert "ratio_serum_IgA" in rows["A01"] and "ratio_serum_IgM" not in rows["A01"]
    assert rows["C05"]["is_empty"] == "True" and int(rows["C05"]["n_cells"]) == 0
    assert 0.0 <= float(rows["P24"]["fraction_infected"]) <= 1.0


@pytest.mark.parametrize("ratio", [2.5, 1.0])
def test_ratio_is_reproduced(ratio):
    rng = np.random.default_rng(7)
    params = random_well_params(rng, ratios=ratio, fraction_infected=0.4)
    stack, truth = render_image((512, 512), SCHEMES["scheme1"], params, rng)
    true_means = truth["serum_means"]["serum_IgG"]
    infected = np.isin(truth["cell_ids"], truth["infected_ids"])
    assert np.median(true_means[infected]) / np.median(true_means[~infected]) == pytest.approx(ratio, rel=1e-9)
    # ~70 cells on 512 x 512: blur, vignetting and noise scatter the measured ratio by a few percent
    assert _measured_ratio(stack, truth, 2, "TRITC") == pytest.approx(ratio, rel=0.12)


@pytest.mark.slow  # renders full-size fields
def test_realistic_cell_and_nucleus_sizes():
    rng = np.random.default_rng(11)
    stack, truth = render_image((1024, 1024), SCHEMES["scheme2"], random_well_params(rng), rng)
    cell_areas = np.bincount(truth["cells"].ravel())[1:]
    nucleus_areas = np.bincount(truth["nuclei"].ravel())[1:]
    assert 150 <= len(cell_areas) <= 400
    assert 1000 <= np.median(cell_areas) <= 6000
    assert 150 <= np.median(nucleus_areas) <= 700


@pytest.mark.slow  # renders two full-size 930x1024 fields
def test_rendering_is_deterministic_and_supports_930_rows():
    params = random_well_params(np.random.default_rng(1))
    first = render_image((930, 1024), SCHEMES["scheme5"], params, np.random.default_rng(2))
    second = render_image((930, 1024), SCHEMES["scheme5"], params, np.random.default_rng(2))
    assert first[0].shape == (5, 930, 1024)
    assert np.array_equal(first[0], second[0])
    assert np.array_equal(first[1]["cells"], second[1]["cells"])
    assert set(first[1]["serum_means"]) == {"serum_IgG", "serum_IgM"}


def test_empty_well_has_no_cells():
    params = random_well_params(np.random.default_rng(0), empty=True)
    stack, truth = render_image(SMALL, SCHEMES["scheme3"], params, np.random.default_rng(0))
    assert truth["cells"].max() == 0 and truth["nuclei"].max() == 0
    assert stack.min() > 50  # camera offset and background remain


def test_nuclei_only_images():
    image, labels, style = render_nuclei_image((128, 128), np.random.default_rng(5))
    assert image.dtype == np.uint16 and labels.dtype == np.int32
    assert np.array_equal(np.unique(labels), np.arange(labels.max() + 1))
    assert "diameter" in style


def test_well_lists_and_command_line(tmp_path):
    assert parse_well_list("A01:B02,P24") == ["A01", "A02", "B01", "B02", "P24"]
    plate_main([str(tmp_path / "plate"), "--scheme", "scheme3", "--wells", "B03", "--sites", "1",
                "--shape", "96,128", "--ratio", "B03=1.8"])
    assert len(list((tmp_path / "plate").glob("WellB03_PointB03_0000_ChannelDAPI,WF_Cy5,TRITC_Seq0000.tiff"))) == 1
    assert (tmp_path / "plate_truth" / "wells.csv").is_file()
    assert set(SERUM_ROLES) >= {"serum_IgG"}


# --------------------------------------------------------------------------- nuisance layer and families


def _stack_digest(stack, truth):
    import hashlib

    digest = hashlib.sha256(stack.tobytes())
    digest.update(truth["cells"].tobytes())
    digest.update(repr(sorted(truth["background"].items())).encode())
    return digest.hexdigest()


def test_rendering_without_nuisance_is_unchanged():
    # digest of this exact render before the nuisance layer existed (commit c57ed86, numpy 2.4.6 as pinned
    # in requirements.txt); a numpy/scipy upgrade may change random streams and require a new digest
    rng = np.random.default_rng(5)
    params = random_well_params(rng)
    stack, truth = render_image((128, 160), SCHEMES["scheme4"], params, rng)
    assert _stack_digest(stack, truth) == NO_NUISANCE_DIGEST
    assert "nuisance" not in truth


NO_NUISANCE_DIGEST = "755e5acd6596ca5db6c5092ef9bffa5026a41bdb9f7fafdc91cba2523a85e98d"


def test_nuisance_draws_stay_in_range():
    from antibodies.synthetic.nuisance import CHANNEL_FIELDS, IMAGE_FIELDS, WELL_FIELDS

    rng = np.random.default_rng(0)
    for family in FAMILIES.values():
        ranges = family.ranges
        for _ in range(20):
            nuisance = draw_image_nuisance(rng, ranges, n_channels=4)
            for name in IMAGE_FIELDS:
                low, high = getattr(ranges, name)
                values = getattr(nuisance, name) if name in CHANNEL_FIELDS else (getattr(nuisance, name),)
                assert len(values) == (4 if name in CHANNEL_FIELDS else 1)
                assert all(low <= value <= high for value in values), (family.name, name, values)
            params = draw_well_params(rng, ranges, ("serum_IgG",))
            for name, key in (("cell_area", "cell_area"), ("confluence", "confluence"),
                              ("nucleus_area", "nucleus_area"), ("fraction_infected", "fraction_infected")):
                low, high = getattr(ranges, name)
                assert low <= params[key] <= high
            low, high = ranges.serum_level
            assert all(low <= level <= high for level in params["serum_levels"].values())
        assert set(WELL_FIELDS) | set(IMAGE_FIELDS) == {f.name for f in dataclasses.fields(NuisanceRanges)}


def test_weighted_tiling_moves_the_border_toward_the_lighter_seed():
    from antibodies.synthetic.plate import _weighted_nearest_seed

    seeds = np.array([[0.0, 2.0], [0.0, 8.0]])
    plain = _weighted_nearest_seed((1, 11), seeds, np.zeros(2), max_radius=5.0)
    assert plain.tolist() == [[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]]  # x = 5 is a tie: the first seed keeps it
    heavier_right = _weighted_nearest_seed((1, 11), seeds, np.array([0.0, 2.0]), max_radius=5.0)
    assert heavier_right.tolist() == [[1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2]]  # the border moves by weight / 2
    short_reach = _weighted_nearest_seed((1, 11), seeds, np.zeros(2), max_radius=1.0)
    assert short_reach.tolist() == [[0, 1, 1, 1, 0, 0, 0, 2, 2, 2, 0]]


def test_later_cell_models_are_off_in_the_earlier_families():
    # renders of the families defined before the second and third cell models are unchanged. A summary
    # with tolerances, not a digest: float rounding differs in the last place between CPUs and libraries,
    # while a changed random stream or layout moves every figure below by far more
    expected = {"tune_broad": (26, 47904, 6554, [787.2, 957.45, 1240.04, 1935.34, 2636.82]),
                "holdout_scattered_dim": (7, 16426, 1452, [457.67, 447.08, 455.11, 506.08, 2662.04]),
                "tune_density": (29, 46582, 5930, [917.5, 957.86, 1067.56, 1888.43, 2651.75])}
    for family, (n_cells, cell_pixels, nucleus_pixels, channel_means) in expected.items():
        rng = np.random.default_rng(3)
        ranges = FAMILIES[family].ranges
        params = draw_well_params(rng, ranges, ("serum_IgG", "serum_IgA"))
        stack, truth = render_image((256, 256), SCHEMES["scheme4"], params, rng,
                                    draw_image_nuisance(rng, ranges, n_channels=5))
        assert truth["cells"].max() == n_cells, family
        assert (truth["cells"] > 0).sum() == pytest.approx(cell_pixels, rel=1e-3), family
        assert (truth["nuclei"] > 0).sum() == pytest.approx(nucleus_pixels, rel=1e-3), family
        assert stack.reshape(len(stack), -1).mean(1) == pytest.approx(channel_means, rel=1e-4), family


def test_stretched_tiling_elongates_cells_along_the_well_orientation():
    from skimage.measure import regionprops

    params = draw_well_params(np.random.default_rng(1), FAMILIES["tune_elongated_cells"].ranges, ("serum_IgG",))
    params.update(cell_elongation=2.5, cell_orientation=0.0, confluence=1.0)  # stretched along the columns
    cells, nuclei, _ = render_cell_layout((256, 256), params, np.random.default_rng(2))
    inner = [region for region in regionprops(cells) if region.area >= 1000]
    aspects = [region.axis_major_length / region.axis_minor_length for region in inner]
    assert len(inner) >= 10 and np.median(aspects) > 2.0
    # skimage's orientation is the major axis' angle to the rows: +-pi/2 for a stretch along the columns
    assert np.median(np.abs(np.abs([region.orientation for region in inner]) - np.pi / 2)) < 0.15
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
    nucleus_aspects = [region.axis_major_length / region.axis_minor_length for region in regionprops(nuclei)]
    assert np.median(nucleus_aspects) > 1.4


def test_a_cut_field_has_border_nuclei_and_cells_whose_nucleus_lies_outside():
    ranges = FAMILIES["tune_cut_field"].ranges
    rng = np.random.default_rng(5)
    params = draw_well_params(rng, ranges.replace(confluence=(1.0, 1.0)), ("serum_IgG",), fraction_infected=0.5)
    assert 60 <= params["field_margin"] <= 150
    stack, truth = render_image((256, 256), SCHEMES["scheme1"], params, rng,
                                draw_image_nuisance(rng, ranges, n_channels=len(SCHEMES["scheme1"])))
    cells, nuclei = truth["cells"], truth["nuclei"]
    assert stack.shape == (4, 256, 256) and cells.shape == nuclei.shape == (256, 256)
    ids = np.unique(cells[cells > 0])
    np.testing.assert_array_equal(ids, truth["cell_ids"])              # relabelled 1..K over the field
    assert len(truth["serum_means"]["serum_IgG"]) == len(ids)
    assert set(truth["infected_ids"]) <= set(ids) and len(truth["infected_ids"]) > 0
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])            # a nucleus lies in its own cell
    without_nucleus = np.setdiff1d(ids, nuclei)
    edge = np.concatenate([nuclei[0], nuclei[-1], nuclei[:, 0], nuclei[:, -1]])
    assert len(without_nucleus) >= 1 and np.count_nonzero(np.unique(edge)) >= 2
    # families without a margin draw nothing for it: their random stream is unchanged
    assert "field_margin" not in draw_well_params(np.random.default_rng(5), FAMILIES["tune_standard"].ranges,
                                                  ("serum_IgG",))


def test_nuisance_ranges_reject_reversed_pairs():
    with pytest.raises(ValueError, match="blur"):
        NuisanceRanges(blur=(2.0, 1.0))


@pytest.mark.parametrize("family", ["tune_broad", "holdout_hazy_dim", "tune_offsets_dim_serum", "holdout_uneven_dim",
                                    "holdout_grown_cells", "tune_elongated_cells", "holdout_streaming_cells"])
def test_true_ratio_stays_exact_under_nuisance(family):
    ranges = FAMILIES[family].ranges
    rng = np.random.default_rng(4)
    params = draw_well_params(rng, ranges.replace(confluence=(0.9, 0.9)), ("serum_IgG", "serum_IgA"),
                              ratios={"serum_IgG": 2.2, "serum_IgA": 1.0}, fraction_infected=0.4)
    nuisance = draw_image_nuisance(rng, ranges, n_channels=len(SCHEMES["scheme4"]))
    stack, truth = render_image((256, 256), SCHEMES["scheme4"], params, rng, nuisance)
    infected = np.isin(truth["cell_ids"], truth["infected_ids"])
    assert infected.any() and (~infected).any()
    for role, ratio in (("serum_IgG", 2.2), ("serum_IgA", 1.0)):
        means = truth["serum_means"][role]
        assert np.median(means[infected]) / np.median(means[~infected]) == pytest.approx(ratio, rel=1e-9)
        assert truth["ratios"][role] == ratio
    assert json.loads(truth["nuisance"])["blur"] == nuisance.blur


def test_serum_background_is_the_same_under_and_outside_cells():
    # noise-free, signal-free serum channel: only the additive background remains, and the recorded
    # background equals its mean under the cells
    from antibodies.synthetic.nuisance import background_under_cells, haze_field, vignette_field

    rng = np.random.default_rng(1)
    field = 40.0 * vignette_field((64, 64), 0.3, rng) + haze_field((64, 64), 200.0, 50.0, rng)
    cells = np.zeros((64, 64), int)
    cells[10:30, 10:30] = 1
    assert background_under_cells(field, cells) == pytest.approx(field[10:30, 10:30].mean())
    assert background_under_cells(field, np.zeros_like(cells)) == pytest.approx(field.mean())
    assert field.min() >= 0.0 and field.max() <= 240.0


def test_backgrounds_differ_between_images_of_a_well(tmp_path):
    summary = render_family_plate("tune_offsets_dim_serum", "scheme1", tmp_path / "plate", wells=("B02",),
                                  sites=3, shape=(128, 128))
    truths = [np.load(tmp_path / "plate_truth" / (path.stem + ".npz")) for path in summary["files"]]
    for channel in SCHEMES["scheme1"]:
        levels = [float(truth[f"background_{channel}"]) for truth in truths]
        assert max(levels) - min(levels) > 20.0, (channel, levels)
    offsets = [json.loads(str(truth["nuisance"]))["offset"] for truth in truths]
    assert len({tuple(offset) for offset in offsets}) == 3
    # the recorded background is close to the measured median outside the cells
    stack = tifffile.imread(summary["files"][0])
    cells = truths[0]["cells"]
    for index, channel in enumerate(SCHEMES["scheme1"]):
        measured = np.median(stack[index][cells == 0])
        assert abs(measured - float(truths[0][f"background_{channel}"])) < 150.0


def test_mock_wells_have_no_infected_cells(tmp_path):
    summary = render_family_plate("tune_standard", "scheme1", tmp_path / "plate", wells=("A01", "A02"), sites=1,
                                  shape=(128, 128), mock_wells=("A02",), well_ratios={"A01": 2.0})
    rows = {row["well_name"]: row for row in summary["wells"]}
    assert rows["A02"]["n_infected"] == 0 and rows["A02"]["n_cells"] > 0
    assert np.isnan(rows["A02"]["ratio_serum_IgG"]) and not rows["A02"]["is_positive"]
    assert rows["A01"]["ratio_serum_IgG"] == 2.0
    assert summary["family"] == "tune_standard" and summary["seed"] == FAMILIES["tune_standard"].seed


def test_families_are_named_and_distinct():
    tune = {name for name, family in FAMILIES.items() if family.role == "tune"}
    holdout = {name for name, family in FAMILIES.items() if family.role == "holdout"}
    assert len(tune) >= 2 and len(holdout) >= 3
    assert tune.isdisjoint(holdout) and tune | holdout == set(FAMILIES)
    assert all(name == family.name for name, family in FAMILIES.items())
    assert len({family.ranges for family in FAMILIES.values()}) == len(FAMILIES)
    assert len({family.seed for family in FAMILIES.values()}) == len(FAMILIES)
    for name in holdout:
        # a holdout family leaves the union of the tune ranges somewhere (not only a new seed)
        ranges = FAMILIES[name].ranges
        outside = [field.name for field in dataclasses.fields(NuisanceRanges)
                   if getattr(ranges, field.name)[0] < min(getattr(FAMILIES[t].ranges, field.name)[0] for t in tune)
                   or getattr(ranges, field.name)[1] > max(getattr(FAMILIES[t].ranges, field.name)[1] for t in tune)]
        assert outside, name
    with pytest.raises(ValueError, match="unknown plate family"):
        render_family_plate("no_such_family", "scheme1", "/nonexistent")


def test_family_command_line(tmp_path):
    plate_main([str(tmp_path / "plate"), "--family", "tune_density", "--scheme", "scheme1", "--wells", "A01",
                "--sites", "1", "--shape", "96,128", "--mock", "A01"])
    truth = np.load(next((tmp_path / "plate_truth").glob("*.npz")))
    assert json.loads(str(truth["nuisance"]))["nucleus_halo"] >= 1.2
    assert len(truth["infected_ids"]) == 0


def test_nuisance_must_cover_every_channel():
    rng = np.random.default_rng(0)
    ranges = FAMILIES["tune_standard"].ranges
    params = draw_well_params(rng, ranges, ("serum_IgG",))
    with pytest.raises(ValueError, match="n_channels"):
        render_image((64, 64), SCHEMES["scheme1"], params, rng, draw_image_nuisance(rng, ranges, n_channels=2))
