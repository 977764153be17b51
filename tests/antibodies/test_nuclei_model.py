"""Tests of the bundled StarDist nucleus model, its resolution and segment_nuclei."""
import shutil

import numpy as np
import pytest

from antibodies.analysis.nuclei import contrast_to_noise, normalize_percentile, segment_nuclei
from antibodies.models import (
    BUNDLED_MODEL, BUNDLED_MODELS_DIR, ModelNotFoundError, load_stardist_model, resolve_model_folder)
from antibodies.synthetic import SCHEMES, random_well_params, render_image

MODEL_FILES = ("config.json", "thresholds.json", "weights_best.h5")


def _f1_at_05(truth, predicted):
    from stardist.matching import matching

    return matching(truth, predicted, thresh=0.5).f1


@pytest.mark.slow
def test_bundled_model_loads_once_and_segments_synthetic_image():
    model = load_stardist_model()
    assert load_stardist_model(BUNDLED_MODEL) is model
    rng = np.random.default_rng(2024)
    stack, truth = render_image((512, 512), SCHEMES["scheme1"], random_well_params(rng), rng)
    labels = segment_nuclei(model, stack[0])
    assert labels.shape == (512, 512) and labels.dtype == np.int32
    assert _f1_at_05(truth["nuclei"], labels) >= 0.9

    empty_params = random_well_params(rng, empty=True)
    empty_stack, _ = render_image((256, 256), SCHEMES["scheme1"], empty_params, rng)
    assert contrast_to_noise(empty_stack[0]) < 5.0 < contrast_to_noise(stack[0])
    assert segment_nuclei(model, empty_stack[0]).max() == 0


@pytest.mark.slow
def test_loaded_model_predicts_like_keras_predict_loop():
    model = load_stardist_model()
    x = np.random.default_rng(0).random((1, 64, 128, 1)).astype(np.float32)  # divisible by grid x 2 ** depth
    direct = model.keras_model.predict(x, verbose=0)
    looped = type(model.keras_model).predict(model.keras_model, x, verbose=0)
    for ours, keras in zip(direct, looped):
        np.testing.assert_allclose(ours, keras, rtol=1e-5, atol=1e-6)


def test_missing_model_error_names_spec_and_fix():
    with pytest.raises(ModelNotFoundError) as error:
        load_stardist_model("no_such_model_xyz")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    assert "no_such_model_xyz" in message
    assert "config.json" in message and "`model`" in message
    assert str(BUNDLED_MODELS_DIR) in message


@pytest.mark.slow  # loads TensorFlow models
def test_user_folder_and_keras_cache_resolve(tmp_path, monkeypatch):
    user_folder = tmp_path / "my_nuclei_model"
    shutil.copytree(BUNDLED_MODELS_DIR / BUNDLED_MODEL, user_folder)
    model = load_stardist_model(str(user_folder))
    assert model.thresholds.prob == load_stardist_model().thresholds.prob

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = tmp_path / "keras" / "models" / "StarDist2D" / "2D_versatile_fluo" / "2D_versatile_fluo_extracted"
    shutil.copytree(user_folder, cached)
    assert resolve_model_folder("2D_versatile_fluo") == cached
    assert resolve_model_folder("Versatile (fluorescent nuclei)") == cached


def test_normalize_percentile_maps_percentiles_to_unit_range():
    image = np.arange(10000, dtype=np.uint16).reshape(100, 100)
    normalized = normalize_percentile(image, 1.0, 99.0)
    assert normalized.dtype == np.float32
    assert np.percentile(normalized, 1.0) == pytest.approx(0.0, abs=1e-6)
    assert np.percentile(normalized, 99.0) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", sorted({f"vero_nuclei_v{version}" for version in range(1, 7)} | {BUNDLED_MODEL}))
def test_every_bundled_model_resolves_by_name_and_is_small_and_complete(name):
    folder = resolve_model_folder(name)
    assert folder == BUNDLED_MODELS_DIR / name
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL_FILES)
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2 ** 20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vero_nuclei_v3", "vero_nuclei_v4", "vero_nuclei_v5", "vero_nuclei_v6"])
def test_nuisance_trained_models_segment_a_nuisance_rendered_image(name):
    from antibodies.synthetic import FAMILIES, draw_image_nuisance, draw_well_params

    ranges = FAMILIES["tune_broad"].ranges
    rng = np.random.default_rng(99)
    params = draw_well_params(rng, ranges, ("serum_IgG",))
    stack, truth = render_image((512, 512), {"DAPI": "nuclei"}, params, rng, draw_image_nuisance(rng, ranges, 1))
    labels = segment_nuclei(load_stardist_model(name), stack[0])
    assert _f1_at_05(truth["nuclei"], labels) >= 0.95


@pytest.mark.slow  # imports StarDist (TensorFlow)
def test_training_architectures_choose_the_grid():
    from antibodies.training.train_nuclei_model import build_config

    assert tuple(build_config(100).grid) == (2, 2)
    grid4 = build_config(100, architecture="narrow_deep_grid4")
    assert tuple(grid4.grid) == (4, 4) and grid4.unet_n_depth == 4 and grid4.unet_n_filter_base == 16


def test_stretched_training_crops_draw_half_of_their_ranges_stretched():
    from antibodies.training.train_nuclei_model import _nuisance_training_ranges

    plain, = _nuisance_training_ranges()
    widened, stretched = _nuisance_training_ranges(stretched=True)
    assert plain == widened and plain.cell_elongation == (1.0, 1.0)
    assert stretched == widened.replace(cell_elongation=(1.5, 3.2))
