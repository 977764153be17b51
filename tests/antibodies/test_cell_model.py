"""The bundled cell model: its folder, its input description, and its split of touching cells."""
import json

import numpy as np
import pytest

from antibodies.models import (BUNDLED_MODELS_DIR, MODEL_INPUT, ModelNotFoundError, cell_model_binning,
                               resolve_model_folder)
from antibodies.settings import SPEC_PATH
from luigi_tasks.config import load_config

from .conftest import cell_analysis

CELL_MODEL = load_config(None, SPEC_PATH)["cells_model"]
CELL_MODEL_FILES = ("config.json", "weights_best.h5", MODEL_INPUT)


BUNDLED_BINNING = {**{f"vero_cells_v{version}": 4 for version in range(1, 7)}, "vero_cells_v10": 2}


def test_the_default_cell_model_is_bundled():
    assert CELL_MODEL in BUNDLED_BINNING


@pytest.mark.parametrize("name,binning", sorted(BUNDLED_BINNING.items()))
def test_every_bundled_cell_model_resolves_by_name_and_is_small_and_complete(name, binning):
    folder = resolve_model_folder(name)
    assert folder == BUNDLED_MODELS_DIR / name
    assert sorted(p.name for p in folder.iterdir()) == sorted(CELL_MODEL_FILES)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2 ** 20
    assert json.loads((folder / "config.json").read_text())["n_channel_in"] == 2
    assert cell_model_binning(folder) == binning


@pytest.mark.parametrize("text", [None, "{}", '{"bin": "four"}', '{"bin": 0}'])
def test_a_folder_that_is_not_a_cell_model_is_refused_with_the_fix(tmp_path, text):
    (tmp_path / "config.json").write_text('{"n_channel_in": 2}')
    if text is not None:
        (tmp_path / MODEL_INPUT).write_text(text)
    with pytest.raises(ModelNotFoundError) as error:
        cell_model_binning(tmp_path)
    assert str(tmp_path / MODEL_INPUT) in str(error.value) and "To fix" in str(error.value)


def _mean_matched_iou(truth, nuclei, probability, mask):
    from stardist.matching import matching

    from antibodies.analysis.cells import DistanceHeightMap, FixedThresholdForeground, ProbabilityHeightMap, segment_cells

    foreground = FixedThresholdForeground(0.5, smoothing_sigma=0)
    return [matching(truth, segment_cells(nuclei, mask.astype(np.float32), foreground, height_map),
                     thresh=0.5).mean_matched_score
            for height_map in (DistanceHeightMap(), ProbabilityHeightMap(probability, 0.001))]


def test_object_probability_equals_the_probability_of_stardists_predict():
    """The probability network alone gives StarDist's values bit for bit, on a shape its padding changes."""
    from antibodies.analysis.cells import object_probability
    from antibodies.models import load_stardist_model

    model = load_stardist_model(BUNDLED_MODELS_DIR / CELL_MODEL)
    image = np.random.default_rng(3).random((75, 90, 2)).astype(np.float32)
    probability = object_probability(model, image)
    assert probability.shape == (75, 90) and probability.dtype == np.float32
    np.testing.assert_array_equal(probability, model.predict(image)[0])


@pytest.mark.slow
def test_learned_split_follows_unequal_cells_better_than_the_distance_split():
    """On a render of the second cell model (a seed no training used), with the true nuclei and foreground."""
    from antibodies.analysis.cells import cell_probability, object_probability
    from antibodies.analysis.nuclei import normalize_percentile
    from antibodies.models import load_stardist_model
    from antibodies.synthetic import FAMILIES, draw_image_nuisance, draw_well_params, render_image

    ranges = FAMILIES["tune_grown_cells"].ranges
    rng = np.random.default_rng(4242)
    params = draw_well_params(rng, ranges, ("serum_IgG",))
    roles = {"N": "nuclei", "M": "marker", "S": "serum_IgG"}
    stack, truth = render_image((512, 512), roles, params, rng, draw_image_nuisance(rng, ranges, 3))
    folder = BUNDLED_MODELS_DIR / CELL_MODEL
    model = load_stardist_model(folder)
    probability = cell_probability(lambda image: object_probability(model, image), stack[0], stack[2],
                                   cell_model_binning(folder), normalize_percentile)
    assert probability.shape == (512, 512)
    distance_iou, learned_iou = _mean_matched_iou(truth["cells"], truth["nuclei"], probability, truth["cells"] > 0)
    assert learned_iou > distance_iou + 0.02, (learned_iou, distance_iou)


@pytest.mark.slow
def test_cell_analysis_with_the_learned_split_on_two_workers(tmp_path, monkeypatch):
    """Both models served to forked workers by one server, the cell model with its instances and its probability
    averaged over four mirror images; the readouts hold on a plate of unequal cells. ``cut_cells = seeded`` was
    measured with ``vero_cells_v6`` (docs/performance.md), so the test runs that model."""
    import tempfile

    from antibodies.evaluation import evaluate_plate
    from antibodies.synthetic.plate import render_family_plate
    from luigi_tasks.testing import run_local

    render_family_plate("tune_grown_cells", "scheme1", tmp_path / "plate", tmp_path / "truth", wells=("A01", "A02"),
                        sites=1, shape=(512, 512), well_ratios={"A01": 2.2, "A02": 1.05})
    task = cell_analysis(tmp_path / "plate", tmp_path / "out", cells_height_map="learned", cells_cut_cells="seeded",
                         cells_model="vero_cells_v6", cells_model_flips="flip4")
    # this process is the run's luigi process: its own server folder, not one that earlier tests' servers share
    with tempfile.TemporaryDirectory(prefix="bl", dir="/tmp") as short, monkeypatch.context() as patch:
        patch.setattr(tempfile, "tempdir", short)
        assert run_local([task], workers=2).status.name == "SUCCESS"
    log = (tmp_path / "out" / "batchlib" / "CellAnalysis.log").read_text()
    assert log.count("started StarDist server") == 1  # the cell model's task found the nucleus model's server
    _, figures = evaluate_plate(tmp_path / "out", tmp_path / "truth", "plate")
    assert figures["cells_f1"] >= 0.85 and figures["infected_accuracy"] >= 0.95, figures
    assert figures["serum_IgG_wrong_calls"] == 0, figures


def test_training_renders_are_binned_like_the_pipeline_input():
    from antibodies.training.train_cell_model import draw_training_images

    images, labels = draw_training_images(2, 5, 4, exclude=("tune_density",))
    assert len(images) == len(labels) == 2
    for image, label in zip(images, labels):
        assert image.shape == (128, 128, 2) and image.dtype == np.float32
        assert label.shape == (128, 128) and label.dtype == np.int32 and label.max() >= 3


def test_family_weights_repeat_a_family_and_leave_the_uniform_draws_as_they_were():
    from antibodies.synthetic.nuisance import FAMILIES
    from antibodies.training.train_cell_model import tune_family_draws

    tune = sorted(name for name, family in FAMILIES.items() if family.role == "tune")
    assert tune_family_draws() == tune
    weighted = tune_family_draws(exclude=("tune_density",), weights={"tune_elongated_cells": 3})
    assert weighted.count("tune_elongated_cells") == 3 and "tune_density" not in weighted
    assert len(weighted) == len(tune) + 1
    with pytest.raises(ValueError, match="holdout_streaming_cells"):
        tune_family_draws(weights={"holdout_streaming_cells": 2})


def test_stretched_renders_have_long_cells_and_zero_leaves_the_renders_as_they_were():
    from skimage.measure import regionprops

    from antibodies.training.train_cell_model import _render_one

    def aspect(labels):
        props = [p for p in regionprops(labels) if p.area >= 20]
        return np.median([p.axis_major_length / max(p.axis_minor_length, 1) for p in props])

    task = ((7, 3), ["tune_standard"], 2)
    plain, plain_labels = _render_one((*task, 0.0, 0.0))
    again, _ = _render_one((*task, 0.0, 0.0))
    stretched, stretched_labels = _render_one((*task, 1.0, 0.0))
    assert np.array_equal(plain, again)
    assert aspect(stretched_labels) > aspect(plain_labels) + 0.4, (aspect(stretched_labels), aspect(plain_labels))


def test_second_renderer_draws_replace_a_fraction_of_the_renders_and_leave_the_others_as_they_were():
    from antibodies.training.train_cell_model import _render_one, draw_training_images

    task = ((7, 3), ["tune_standard"], 4, 0.0)
    plain, plain_labels = _render_one((*task, 0.0))
    second, second_labels = _render_one((*task, 1.0))
    assert second.shape == plain.shape == (128, 128, 2) and second_labels.dtype == np.int32
    assert second_labels.max() >= 3 and not np.array_equal(second_labels, plain_labels)
    images, _ = draw_training_images(6, 5, 4, second=0.5)
    mixed = sum(not np.array_equal(a, b) for a, b in zip(images, draw_training_images(6, 5, 4)[0]))
    assert 0 < mixed < 6, mixed


def test_training_patches_default_to_the_binned_render_and_can_be_set():
    from antibodies.training.train_cell_model import training_config

    assert training_config(2000, 4).train_patch_size == (128, 128)
    assert training_config(2000, 2).train_patch_size == (256, 256)
    two = training_config(3000, 2, patch=128)
    assert two.train_patch_size == (128, 128) and two.train_epochs == 30 and two.grid == (1, 1)


@pytest.mark.parametrize("option", ["--stretched", "--second"])
def test_a_fraction_outside_zero_to_one_is_refused(option):
    from antibodies.training.train_cell_model import main

    with pytest.raises(SystemExit, match=f"{option} takes a fraction .* between 0 and 1, got 1.5"):
        main([option, "1.5"])


def test_a_binned_nucleus_model_is_refused_as_cell_model_for_its_one_channel():
    with pytest.raises(ModelNotFoundError) as error:
        cell_model_binning(BUNDLED_MODELS_DIR / "vero_nuclei_v8")
    assert "takes 1 channel(s)" in str(error.value) and "To fix" in str(error.value)


@pytest.mark.slow
def test_seeded_cut_cells_find_cells_whose_nucleus_is_outside_the_field():
    """A field the second renderer cuts from a wider scene: the bundled nucleus and cell models, the true foreground."""
    from stardist.matching import matching

    from antibodies.analysis.cells import (FixedThresholdForeground, ModelCutCells, ProbabilityHeightMap,
                                           cell_model_input, cell_probability_and_instances, full_resolution,
                                           segment_cells)
    from antibodies.analysis.nuclei import normalize_percentile, segment_nuclei
    from antibodies.models import load_stardist_model
    from antibodies.synthetic.second_renderer import SECOND_FAMILIES, draw_well, render_second_image

    rng = np.random.default_rng(1)
    family = SECOND_FAMILIES["tune_second_standard"]
    well = draw_well(family, ("serum_IgG",), rng)
    stack, truth = render_second_image((512, 512), {"N": "nuclei", "M": "marker", "S": "serum_IgG"}, family, well, rng)
    model = load_stardist_model(BUNDLED_MODELS_DIR / CELL_MODEL)
    probability, instances = cell_probability_and_instances(
        model, cell_model_input(stack[0], stack[2], 4, normalize_percentile))
    assert probability.shape == instances.shape == (128, 128)
    nuclei, mask = segment_nuclei(load_stardist_model(), stack[0]), truth["cells"] > 0
    height_map = ProbabilityHeightMap(full_resolution(probability, 4, (512, 512)), 0.001)
    foreground = FixedThresholdForeground(0.5, smoothing_sigma=0)
    absorbed = segment_cells(nuclei, mask.astype(np.float32), foreground, height_map)
    seeded = segment_cells(nuclei, mask.astype(np.float32), foreground, height_map, ModelCutCells(instances, 4))
    found, before = matching(truth["cells"], seeded, thresh=0.5), matching(truth["cells"], absorbed, thresh=0.5)
    assert found.tp > before.tp and found.fp <= before.fp, (found, before)
    assert np.array_equal(seeded[nuclei > 0], absorbed[nuclei > 0])
