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


@pytest.mark.parametrize("name", sorted({f"vero_nuclei_v{version}" for version in range(1, 9)} | {BUNDLED_MODEL}))
def test_every_bundled_model_resolves_by_name_and_is_small_and_complete(name):
    from antibodies.models import MODEL_INPUT, nuclei_model_binning

    folder = resolve_model_folder(name)
    assert folder == BUNDLED_MODELS_DIR / name
    binned = nuclei_model_binning(folder) > 1
    assert sorted(p.name for p in folder.iterdir()) == sorted(MODEL_FILES + ((MODEL_INPUT,) if binned else ()))
    assert sum(p.stat().st_size for p in folder.iterdir()) < 10 * 2 ** 20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vero_nuclei_v3", "vero_nuclei_v4", "vero_nuclei_v5", "vero_nuclei_v6",
                                  "vero_nuclei_v8"])
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


def test_binned_labels_keep_each_nucleus_area_and_centre():
    from antibodies.analysis.nuclei import binned_labels

    rows, columns = np.mgrid[:64, :64]
    for centre_r, centre_c in [(20.0, 31.5), (33.5, 30.0), (40.25, 21.75)]:
        disk = ((rows - centre_r) ** 2 + (columns - centre_c) ** 2 <= 9.0 ** 2).astype(np.int32)
        binned = binned_labels(disk, 2)
        assert binned.shape == (32, 32) and binned.dtype == np.int32
        assert abs(4 * binned.sum() / disk.sum() - 1.0) < 0.05
        found_r, found_c = np.argwhere(binned == 1).mean(0) * 2 + 0.5  # binned pixel k covers 2k and 2k + 1
        assert abs(found_r - centre_r) < 0.3 and abs(found_c - centre_c) < 0.3


class _SquareModel:
    """Stands in for a StarDist2D: one square polygon, in the coordinates of the image it is given."""

    def __init__(self, input_binning=None):
        if input_binning is not None:
            self.input_binning = input_binning
        self.seen = None

    def predict_instances(self, image, **_):
        self.seen = image
        square = np.array([[[2, 2, 5, 5], [3, 6, 6, 3]]], np.float32)  # rows 2-5, columns 3-6
        return None, {"coord": square, "prob": np.array([0.9]), "points": np.array([[3, 4]])}


@pytest.mark.parametrize("binning, rows, columns", [(1, (2, 5), (3, 6)), (2, (4.5, 10.5), (6.5, 12.5))])
def test_segment_nuclei_draws_a_binned_models_polygons_at_full_resolution(binning, rows, columns):
    image = np.random.default_rng(0).poisson(100, (33, 40)).astype(np.uint16)
    image[8:12, 8:12] += 2000                                     # contrast: not an empty field
    model = _SquareModel(binning if binning > 1 else None)
    labels = segment_nuclei(model, image)
    assert model.seen.shape == (33 // binning, 40 // binning) and labels.shape == (33, 40)
    expected = np.zeros((33, 40), np.int32)
    expected[int(np.ceil(rows[0])):int(rows[1]) + 1, int(np.ceil(columns[0])):int(columns[1]) + 1] = 1
    np.testing.assert_array_equal(labels, expected)
    assert segment_nuclei(_SquareModel(), image, binning=binning).sum() == expected.sum()


def test_nucleus_model_binning_reads_input_json_and_names_a_broken_one(tmp_path):
    from antibodies.models import MODEL_INPUT, nuclei_model_binning

    assert nuclei_model_binning(BUNDLED_MODELS_DIR / "vero_nuclei_v6") == 1
    assert nuclei_model_binning(BUNDLED_MODELS_DIR / "vero_nuclei_v8") == 2
    (tmp_path / MODEL_INPUT).write_text('{"bin": 2}')
    assert nuclei_model_binning(tmp_path) == 2
    for text in ('{"bin": 0}', "{bin: 2}", "[]"):
        (tmp_path / MODEL_INPUT).write_text(text)
        with pytest.raises(ModelNotFoundError) as error:
            nuclei_model_binning(tmp_path)
        assert str(tmp_path / MODEL_INPUT) in str(error.value) and "To fix" in str(error.value)


def test_binned_training_images_and_labels_are_halved():
    from antibodies.training.train_nuclei_model import make_dataset

    images, labels = make_dataset(3, 5, plate_fraction=0.5, factor=2)
    for image, label in zip(images, labels):
        assert image.shape == label.shape == (128, 128)
        assert image.dtype == np.float32 and label.dtype == np.int32
    assert max(label.max() for label in labels) >= 3


def test_nuclei_cut_by_the_image_edge_are_kept():
    # a field cut from a larger culture: the slivers of nuclei at its edges are found with border=0 and
    # lost with StarDist's own band of 2 grid cells (8 px for the bundled model)
    from skimage.measure import regionprops

    from antibodies.synthetic import FAMILIES, draw_image_nuisance, draw_well_params

    ranges = FAMILIES["tune_cut_field"].ranges
    rng = np.random.default_rng(11)
    params = draw_well_params(rng, ranges.replace(confluence=(1.0, 1.0)), ("serum_IgG",))
    stack, truth = render_image((256, 256), {"DAPI": "nuclei"}, params, rng, draw_image_nuisance(rng, ranges, 1))
    slivers = [r for r in regionprops(truth["nuclei"]) if min(r.bbox[0], r.bbox[1]) == 0 or r.bbox[2] == 256
               or r.bbox[3] == 256]
    assert len(slivers) >= 3
    model = load_stardist_model()

    def found(labels):
        return sum(np.count_nonzero(labels[tuple(r.coords.T)]) >= 0.5 * r.area for r in slivers)

    assert found(segment_nuclei(model, stack[0])) >= found(segment_nuclei(model, stack[0], border=2)) + 1
