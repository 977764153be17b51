"""Train the bundled StarDist2D nucleus model on project-generated synthetic data.

Reproducible recipes of the bundled models::

    # vero_nuclei_v8 (the default model): v7 continued on fresh data (seed 8), 2 x 2 binned images
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v8 --steps 3000 --seed 8 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise --architecture narrow_deep \\
        --stretched --bin 2 --init antibodies/models/vero_nuclei_v7
    # vero_nuclei_v7: v4-v6's data (stretched nuclei included) on images binned 2 x 2 and a 2 x 2 grid,
    # from scratch, 12,000 steps, ~45 min; the network costs 0.43x v6's per image
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v7 --steps 12000 --seed 7 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise --architecture narrow_deep \\
        --stretched --bin 2
    # vero_nuclei_v6: v5's recipe continued from v5's weights on fresh data (seed 6)
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v6 --steps 2000 --seed 6 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise --architecture narrow_deep_grid4 \\
        --stretched --init antibodies/models/vero_nuclei_v5
    # vero_nuclei_v5: v4's weights, 2,000 more steps on fresh data of which a half
    # of the nuisance crops has stretched cells with long, aligned nuclei
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v5 --steps 2000 --seed 5 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise --architecture narrow_deep_grid4 \\
        --stretched --init antibodies/models/vero_nuclei_v4
    # vero_nuclei_v4: v3's data and network on a 4 x 4 grid (2x cheaper), 10,000 steps, ~25 min
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v4 --steps 10000 --seed 0 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise --architecture narrow_deep_grid4
    # vero_nuclei_v3: v2's network, plus nuisance-renderer crops and intensity/noise augmentation
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v3 --steps 5000 --seed 0 --n-train 1200 --n-val 64 \\
        --plate-fraction 0.15 --nuisance-fraction 0.35 --intensity-noise
    # vero_nuclei_v2: narrow, deep U-Net, ~17 min
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v2 --steps 4000 --seed 0
    # vero_nuclei_v1 (the first model): StarDist's default U-Net, ~40 min
    python -m antibodies.training.train_nuclei_model --out antibodies/models \\
        --name vero_nuclei_v1 --steps 3500 --seed 0 --architecture stardist_default

(defaults: 1000 training and 48 validation images of 256 x 256, 25 % plate
crops, batch 4, learning rate 3e-4 flat for 30 % of the epochs then cosine
decay; times on 2 shared CPU cores; model folders about 5.6 MB).

Training data are drawn by the project itself, never downloaded:

* nuclei-only images in many random *styles*
  (:func:`antibodies.synthetic.nuclei.render_nuclei_image`: nucleus sizes
  9-38 px, densities, clustering, touching nuclei, textures, brightness
  spread, dim and bright/mitotic nuclei, blur, background haze, vignetting,
  Poisson and read noise), and
* crops of the nuclei channel of the plate renderer
  (:func:`antibodies.synthetic.plate.render_image`), and (v3,
  ``--nuisance-fraction``) crops of the plate renderer with its nuisance
  layer (:mod:`antibodies.synthetic.nuisance`): for training the ranges of
  the ``tune_broad`` family widened in nucleus appearance (area 150-700 px,
  level, texture, profile, halo, blur 0.7-2.0, confluence 0.2-1, up to 25 %
  dividing cells with touching nuclei), for validation (best weights and
  thresholds) the tune families' own ranges (those of the day: v3 ran
  before ``tune_grown_cells`` existed and v4 before ``tune_elongated_cells``,
  so their exact validation sets need their commits).  Holdout families are
  never used for training, validation or thresholds.

v3 also augments intensity and noise (``--intensity-noise``: background
ramps, slight blur, shot-like and Gaussian noise on the normalised image).

Thresholds are optimised on a separate synthetic validation set drawn with a
different seed.  No external image (in particular not the stardist test image
used by ``bench/nuclei_f1.py``) is used for training, validation or threshold
tuning.  (Disclosure: the generator's label-boundary convention, the faint
stain *halo* outside each label, was introduced and its range revised after
comparing early models' outlines with that image's annotations; its weights
and thresholds never saw it.)  Data and augmentation are seeded; TensorFlow's
multi-threaded CPU kernels make the weights reproducible only up to
floating-point round-off.
Input images go through :func:`antibodies.analysis.nuclei.normalize_percentile`,
exactly as in :func:`antibodies.analysis.nuclei.segment_nuclei`.
"""
import argparse
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from antibodies.analysis.nuclei import binned_labels, binned_mean, normalize_percentile
from antibodies.synthetic.nuclei import render_nuclei_image

__all__ = ["make_dataset", "make_augmenter", "build_config", "train_model", "main"]

logger = logging.getLogger(__name__)

PATCH_SHAPE = (256, 256)

_NARROW_DEEP = {"unet_n_filter_base": 16, "unet_n_depth": 4, "net_conv_after_unet": 64}

#: Network shapes as ``Config2D`` keywords.  ``narrow_deep`` (vero_nuclei_v2, v3): 16 base
#: filters but four levels, 2.5x faster at prediction than ``stardist_default`` (32 filters,
#: three levels; vero_nuclei_v1).  ``narrow_deep_grid4`` (vero_nuclei_v4): the same U-Net on a
#: 4 x 4 grid, 2.4x faster again.
ARCHITECTURES = {
    "narrow_deep": {**_NARROW_DEEP, "grid": (2, 2)},
    "narrow_deep_grid4": {**_NARROW_DEEP, "grid": (4, 4)},
    "stardist_default": {"unet_n_filter_base": 32, "unet_n_depth": 3, "net_conv_after_unet": 128, "grid": (2, 2)},
}


#: Aspect range of the stretched tiling that ``--stretched`` training renders draw (v5 of both models).
STRETCHED_TILING = (1.5, 3.2)


def _nuisance_training_ranges(stretched=False):
    """Return the nuisance ranges of the v3 training crops: the tune families, wider in nucleus appearance.

    Optics, staining and biology come from the ``tune_broad`` family (which
    contains ``tune_standard``); nucleus size (150-700 px), brightness,
    texture, profile, halo, blur, cell density (sparse to confluent) and noise
    are widened.  With ``stretched`` (v5) a second set of ranges, drawn for half
    of the crops, also stretches the tiling 1.5-3.2x (``tune_elongated_cells``
    goes to 3x): long, aligned nuclei.  Holdout families are not used.
    """
    widened = _widened_tune_ranges()
    return [widened, widened.replace(cell_elongation=STRETCHED_TILING)] if stretched else [widened]


def _widened_tune_ranges():
    from antibodies.synthetic.nuisance import FAMILIES

    return FAMILIES["tune_broad"].ranges.replace(
        cell_area=(1400.0, 5000.0), confluence=(0.2, 1.0), nucleus_area=(150.0, 700.0),
        nucleus_level=(500.0, 6000.0), nucleus_texture=(0.05, 0.45), nucleus_gamma=(0.05, 0.75),
        nucleus_halo=(1.0, 1.28), blur=(0.7, 2.0), gain=(0.8, 5.0), read_noise=(2.0, 12.0),
        haze_amplitude=(0.0, 250.0), vignetting=(0.0, 0.3))


def _tune_family_ranges():
    """Return the nuisance ranges of the tune families (validation crops)."""
    from antibodies.synthetic.nuisance import FAMILIES

    return [family.ranges for family in FAMILIES.values() if family.role == "tune"]


def _nuisance_crop(rng, ranges, shape=PATCH_SHAPE):
    """Return a (nuclei image, nucleus labels) crop of a nuisance-renderer image.

    ``ranges`` is a list of :class:`~antibodies.synthetic.nuisance.NuisanceRanges`,
    one chosen at random; up to a quarter of the cells divide (touching
    daughter nuclei).
    """
    from antibodies.synthetic.nuisance import draw_image_nuisance, draw_well_params
    from antibodies.synthetic.plate import render_image

    full_shape = (512, 512)
    chosen = ranges[int(rng.integers(len(ranges)))]
    params = draw_well_params(rng, chosen, ("serum_IgG",))
    params["dividing_fraction"] = float(rng.uniform(0.0, 0.25))
    stack, truth = render_image(full_shape, {"DAPI": "nuclei"}, params, rng, draw_image_nuisance(rng, chosen, 1))
    row = int(rng.integers(0, full_shape[0] - shape[0] + 1))
    col = int(rng.integers(0, full_shape[1] - shape[1] + 1))
    window = (slice(row, row + shape[0]), slice(col, col + shape[1]))
    return stack[0][window], truth["nuclei"][window]


def _plate_crop(rng, shape=PATCH_SHAPE):
    """Return a (nuclei image, nucleus labels) crop of a rendered plate image."""
    from antibodies.synthetic.plate import random_well_params, render_image

    full_shape = (512, 512)
    params = random_well_params(rng)
    stack, truth = render_image(full_shape, {"DAPI": "nuclei"}, params, rng)
    row = int(rng.integers(0, full_shape[0] - shape[0] + 1))
    col = int(rng.integers(0, full_shape[1] - shape[1] + 1))
    window = (slice(row, row + shape[0]), slice(col, col + shape[1]))
    return stack[0][window], truth["nuclei"][window]


def make_dataset(count, seed, plate_fraction=0.25, shape=PATCH_SHAPE, nuisance_fraction=0.0,
                 nuisance_ranges=None, factor=1):
    """Draw normalised training images and their nucleus labels.

    Parameters
    ----------
    count : int
        Number of images.
    seed : int
        Seed of the random generator.
    plate_fraction : float
        Fraction of images that are crops of the plate renderer's nuclei
        channel (original optics); the rest, less the nuisance crops, are
        nuclei-only images of random style.
    shape : tuple of int
        Image shape (M, N).
    nuisance_fraction : float
        Fraction of images that are crops of the plate renderer with a
        nuisance layer (0 reproduces the v1/v2 data exactly).
    nuisance_ranges : list of NuisanceRanges, optional
        Ranges of the nuisance crops, one drawn per crop.
    factor : int
        Bin each drawn image ``factor`` x ``factor`` (:func:`binned_mean`, the
        model input of :func:`~antibodies.analysis.nuclei.segment_nuclei`) and
        its labels (:func:`binned_labels`).

    Returns
    -------
    images : list of numpy.ndarray
        (M // factor, N // factor) float32 images normalised with :func:`normalize_percentile`.
    labels : list of numpy.ndarray
        (M // factor, N // factor) int32 nucleus labels.
    """
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(count):
        source = rng.random()
        if source < plate_fraction:
            image, label = _plate_crop(rng, shape)
        elif source < plate_fraction + nuisance_fraction:
            image, label = _nuisance_crop(rng, nuisance_ranges, shape)
        else:
            image, label, _ = render_nuclei_image(shape, rng)
        if factor > 1:
            image, label = binned_mean(image, factor), binned_labels(label, factor)
        images.append(normalize_percentile(image))
        labels.append(np.ascontiguousarray(label, dtype=np.int32))
    return images, labels


def make_augmenter(seed, intensity_noise=False):
    """Return a StarDist augmenter: flips, 90 degree turns, intensity and gamma.

    Parameters
    ----------
    seed : int
        Seed of the augmenter's own random generator.
    intensity_noise : bool
        Also add, each at random, a smooth background ramp, slight blur,
        signal-dependent (shot-like) noise and Gaussian noise on the
        normalised image (v3); False reproduces the v1/v2 augmenter.

    Returns
    -------
    callable
        ``augment(image, labels) -> (image, labels)`` on (M, N) arrays.
    """
    rng = np.random.default_rng(seed)
    extra = _intensity_noise_augmenter(rng) if intensity_noise else None

    def augment(image, labels):
        turns = int(rng.integers(4))
        image, labels = np.rot90(image, turns), np.rot90(labels, turns)
        if rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        if rng.random() < 0.5:
            gamma = float(np.exp(rng.uniform(-0.4, 0.4)))
            image = np.sign(image) * np.abs(image) ** gamma
        image = image * rng.uniform(0.6, 1.4) + rng.uniform(-0.15, 0.15)
        if rng.random() < 0.2:
            image = image + rng.normal(0.0, rng.uniform(0.0, 0.05), size=image.shape)
        if extra is not None:
            image = extra(image)
        return (np.ascontiguousarray(image, dtype=np.float32),
                np.ascontiguousarray(labels, dtype=np.int32))

    return augment


def _intensity_noise_augmenter(rng):
    """Return ``image -> image``: random background ramp, blur, shot-like and Gaussian noise."""
    from scipy import ndimage as ndi

    def augment(image):
        if rng.random() < 0.4:
            rows = np.linspace(-0.5, 0.5, image.shape[0], dtype=np.float32)[:, None]
            cols = np.linspace(-0.5, 0.5, image.shape[1], dtype=np.float32)[None, :]
            slope_r, slope_c, curve = rng.normal(0.0, 1.0, 3)
            ramp = slope_r * rows + slope_c * cols + curve * (rows ** 2 + cols ** 2)
            image = image + rng.uniform(0.0, 0.25) * ramp / max(float(np.abs(ramp).max()), 1e-6)
        if rng.random() < 0.2:
            image = ndi.gaussian_filter(image, rng.uniform(0.4, 1.0))
        if rng.random() < 0.3:
            scale = rng.uniform(0.0, 0.02)
            image = image + np.sqrt(np.clip(image, 0.0, None) * scale) * rng.standard_normal(image.shape)
        if rng.random() < 0.3:
            image = image + rng.normal(0.0, rng.uniform(0.0, 0.08), size=image.shape)
        return image

    return augment


def build_config(steps, steps_per_epoch=100, learning_rate=3e-4, batch_size=4,
                 architecture="narrow_deep", patch_shape=PATCH_SHAPE):
    """Return the StarDist2D configuration used for the bundled model.

    Parameters
    ----------
    steps : int
        Total number of training steps (rounded up to whole epochs).
    steps_per_epoch : int
        Steps between validation passes.
    learning_rate : float
        Initial learning rate (decayed by a cosine schedule, see
        :func:`train_model`).
    batch_size : int
        Patches per step.
    architecture : str
        Key of :data:`ARCHITECTURES`.
    patch_shape : tuple of int
        Shape of the training patches (the drawn images' shape).

    Returns
    -------
    stardist.models.Config2D
    """
    from stardist.models import Config2D

    epochs = max(1, math.ceil(steps / steps_per_epoch))
    return Config2D(
        n_rays=32,
        n_channel_in=1,
        use_gpu=False,
        train_patch_size=tuple(patch_shape),
        train_batch_size=batch_size,
        train_epochs=epochs,
        train_steps_per_epoch=steps_per_epoch,
        train_learning_rate=learning_rate,
        train_reduce_lr=None,
        train_tensorboard=False,
        **ARCHITECTURES[architecture],
    )


def _cosine_schedule(epochs, learning_rate, final_fraction=0.05):
    """Return a Keras LR schedule: flat for 30 % of epochs, then cosine decay."""
    flat = int(0.3 * epochs)

    def schedule(epoch, _lr=None):
        if epoch < flat:
            return float(learning_rate)
        progress = (epoch - flat) / max(1, epochs - flat)
        factor = final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))
        return float(learning_rate * factor)

    return schedule


def train_model(out_dir, name, steps, seed=0, n_train=1000, n_val=48, plate_fraction=0.25,
                steps_per_epoch=100, architecture="narrow_deep", nuisance_fraction=0.0, intensity_noise=False,
                stretched=False, init=None, factor=1):
    """Train, threshold-optimise and tidy a StarDist2D nucleus model.

    Parameters
    ----------
    out_dir : str or pathlib.Path
        Parent folder of the model folder.
    name : str
        Model folder name (``out_dir/name``).
    steps : int
        Total training steps.
    seed : int
        Seed for data, augmentation and weight initialisation.
    n_train, n_val : int
        Number of 256 x 256 training and validation images.
    plate_fraction : float
        Fraction of plate-renderer crops in both sets.
    steps_per_epoch : int
        Steps between validation passes.
    architecture : str
        Key of :data:`ARCHITECTURES`.
    nuisance_fraction : float
        Fraction of nuisance-renderer crops: in the training set drawn with
        the widened tune ranges (:func:`_nuisance_training_ranges`), in the
        validation set (best weights, thresholds) with the tune families'
        own ranges.  0 reproduces the v1/v2 recipe.
    intensity_noise : bool
        Use the intensity and noise augmentation (see :func:`make_augmenter`).
    stretched : bool
        Half of the nuisance training crops with stretched, elongated cells
        and nuclei (:func:`_nuisance_training_ranges`; v5).
    init : str or pathlib.Path, optional
        A model folder of the same network whose weights training starts from.
    factor : int
        Train on images binned ``factor`` x ``factor``; the folder then holds
        :data:`antibodies.models.MODEL_INPUT` and the pipeline bins its input alike.

    Returns
    -------
    pathlib.Path
        The model folder (config.json, thresholds.json, weights_best.h5[, input.json]).
    """
    import keras
    from stardist.models import StarDist2D

    from antibodies.models import MODEL_INPUT

    keras.utils.set_random_seed(seed)
    started = time.time()
    x_train, y_train = make_dataset(n_train, seed, plate_fraction, nuisance_fraction=nuisance_fraction,
                                    nuisance_ranges=_nuisance_training_ranges(stretched), factor=factor)
    x_val, y_val = make_dataset(n_val, seed + 10_000, plate_fraction, nuisance_fraction=nuisance_fraction,
                                nuisance_ranges=_tune_family_ranges(), factor=factor)
    logger.info("drew %d training and %d validation images in %.0f s",
                n_train, n_val, time.time() - started)

    config = build_config(steps, steps_per_epoch, architecture=architecture,
                          patch_shape=[side // factor for side in PATCH_SHAPE])
    model = StarDist2D(config, name=name, basedir=str(out_dir))
    if init:
        model.keras_model.load_weights(str(Path(init) / "weights_best.h5"))
    model.prepare_for_training()
    model.callbacks.append(keras.callbacks.LearningRateScheduler(
        _cosine_schedule(config.train_epochs, config.train_learning_rate)))
    train_started = time.time()
    model.train(x_train, y_train, validation_data=(x_val, y_val),
                augmenter=make_augmenter(seed, intensity_noise))
    logger.info("trained %d steps in %.0f s", config.train_epochs * steps_per_epoch,
                time.time() - train_started)

    model.optimize_thresholds(x_val, y_val)
    folder = Path(out_dir) / name
    if factor > 1:
        (folder / MODEL_INPUT).write_text(json.dumps({"bin": factor}))
    _tidy_model_folder(folder, keep=("config.json", "thresholds.json", "weights_best.h5", MODEL_INPUT))
    logger.info("model written to %s (total %.0f s)", folder, time.time() - started)
    return folder


def _tidy_model_folder(folder, keep=("config.json", "thresholds.json", "weights_best.h5")):
    """Delete everything in a model folder but the files named in ``keep``."""
    for path in Path(folder).iterdir():
        if path.name in keep:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def main(argv=None):
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="antibodies/models", help="parent folder of the model folder")
    parser.add_argument("--name", default="vero_nuclei_v2", help="model folder name")
    parser.add_argument("--steps", type=int, default=4000, help="total training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=1000, help="number of 256x256 training images")
    parser.add_argument("--n-val", type=int, default=48, help="number of validation images")
    parser.add_argument("--plate-fraction", type=float, default=0.25,
                        help="fraction of plate-renderer crops among the images")
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--architecture", choices=sorted(ARCHITECTURES), default="narrow_deep",
                        help="network shape (see ARCHITECTURES)")
    parser.add_argument("--nuisance-fraction", type=float, default=0.0,
                        help="fraction of nuisance-renderer crops (tune-family ranges; v3)")
    parser.add_argument("--intensity-noise", action="store_true",
                        help="intensity and noise augmentation (v3)")
    parser.add_argument("--stretched", action="store_true",
                        help="half of the nuisance crops with stretched cells and long nuclei (v5)")
    parser.add_argument("--init", default=None, help="model folder whose weights training starts from")
    parser.add_argument("--bin", type=int, default=1, help="bin images this many pixels per side (v7: 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train_model(args.out, args.name, args.steps, args.seed, args.n_train, args.n_val,
                args.plate_fraction, args.steps_per_epoch, args.architecture, args.nuisance_fraction,
                args.intensity_noise, args.stretched, args.init, args.bin)


if __name__ == "__main__":
    main()
