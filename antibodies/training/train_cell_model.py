"""Train the bundled cell model: where touching cells meet, learned from project-generated plates.

Reproducible recipes of the bundled models (25-50 min each on two CPU cores). ``tune_cut_field``
became a tune family after v6 was trained: add ``--exclude tune_cut_field`` to the recipes of v1 to v6
to draw their renders again (v10 draws it)::

    # vero_cells_v1: nuclei + serum binned 4 x 4, the nucleus model's U-Net, 4,000 steps
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v1 \\
        --images 800 --steps 4000 --bin 4
    # vero_cells_v2: v1's weights, 5,000 more steps on 800 fresh renders, learning rate annealed
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v2 \\
        --images 800 --steps 5000 --bin 4 --seed 3 --init antibodies/models/vero_cells_v1 --decay
    # vero_cells_v3: v2's weights, 1,500 more steps on 800 renders that include tune_elongated_cells
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v3 \\
        --images 800 --steps 1500 --bin 4 --seed 4 --init antibodies/models/vero_cells_v2 --decay
    # vero_cells_v4: v3's weights, 1,500 more steps, long cells drawn 3x and grown cells 2x as often
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v4 \\
        --images 800 --steps 1500 --bin 4 --seed 5 --init antibodies/models/vero_cells_v3 --decay \\
        --weight tune_elongated_cells=3 --weight tune_grown_cells=2
    # vero_cells_v5: v4's weights, 2,000 more steps, half the renders of every tune family stretched
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v5 \\
        --images 800 --steps 2000 --bin 4 --seed 6 --init antibodies/models/vero_cells_v4 --decay \\
        --weight tune_grown_cells=2 --stretched 0.5
    # vero_cells_v6: v5's weights, 2,000 more steps on fresh renders, grown cells drawn 3x as often
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v6 \\
        --images 800 --steps 2000 --bin 4 --seed 7 --init antibodies/models/vero_cells_v5 --decay \\
        --weight tune_grown_cells=3 --stretched 0.5
    # vero_cells_v10: v6's weights and draws on 2 x 2 bins (128 x 128 patches), 3,000 steps
    python -m antibodies.training.train_cell_model --out antibodies/models --name vero_cells_v10 \\
        --images 800 --steps 3000 --bin 2 --patch 128 --seed 11 --init antibodies/models/vero_cells_v6 --decay \\
        --weight tune_grown_cells=3 --stretched 0.5

A two-channel StarDist2D (nuclei and serum, each binned ``bin`` x ``bin`` and
percentile-normalised: :func:`antibodies.analysis.cells.cell_model_input`,
exactly as the pipeline makes its input) learns the *cells* of 512 x 512
renders of the plate renderer with its nuisance layer, each drawn from the
ranges of a random **tune** family (both cell models: the warped Voronoi
tiling and the additively weighted one of ``tune_grown_cells``). With
``--stretched F`` a fraction F of the renders, of any tune family, also has
its tiling stretched 1.5-3.2x along one direction (long, aligned cells, equal
or unequal). Held-out families are never used. Validation renders (best
weights) use another seed.
Augmentation: quarter turns, flips, per-channel gain and offset. The pipeline
uses only the object probability (``[cells] height_map = learned``): its
ridges between cells are the borders the watershed follows.

The folder written is self-describing: ``config.json``, ``weights_best.h5``
and :data:`antibodies.models.MODEL_INPUT` (``{"bin": ...}``).
"""
import argparse
import json
import logging
import math
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

__all__ = ["tune_family_draws", "draw_training_images", "training_config", "train_cell_model", "main"]

logger = logging.getLogger(__name__)

ROLES = {"N": "nuclei", "M": "marker", "S": "serum_IgG"}
RENDER_SHAPE = (512, 512)


def _render_one(task):
    from antibodies.analysis.cells import cell_model_input
    from antibodies.analysis.nuclei import normalize_percentile

    seed, names, factor, stretched, second = task
    if second and np.random.default_rng((*seed, 2)).random() < second:
        stack, truth = _render_second(np.random.default_rng(seed))
    else:
        stack, truth = _render_first(np.random.default_rng(seed), names, stretched and
                                     np.random.default_rng((*seed, 1)).random() < stretched)
    if truth["cells"].max() < 3:
        return None
    labels = np.ascontiguousarray(truth["cells"][::factor, ::factor], np.int32)
    return cell_model_input(stack[0], stack[2], factor, normalize_percentile), labels


def _render_first(rng, names, stretch):
    from antibodies.synthetic.nuisance import FAMILIES, draw_image_nuisance, draw_well_params
    from antibodies.synthetic.plate import render_image
    from antibodies.training.train_nuclei_model import STRETCHED_TILING

    ranges = FAMILIES[names[int(rng.integers(len(names)))]].ranges
    if stretch:
        ranges = ranges.replace(cell_elongation=STRETCHED_TILING)
    params = draw_well_params(rng, ranges, ("serum_IgG",))
    return render_image(RENDER_SHAPE, ROLES, params, rng, draw_image_nuisance(rng, ranges, 3))


def _render_second(rng):
    """A render of the second renderer, from one of its tune families (its held-out ones never)."""
    from antibodies.synthetic.second_renderer import SECOND_FAMILIES, draw_well, render_second_image

    tune = _tune_names(SECOND_FAMILIES)
    family = SECOND_FAMILIES[tune[int(rng.integers(len(tune)))]]
    well = draw_well(family, ["serum_IgG"], rng)
    return render_second_image(RENDER_SHAPE, dict(enumerate(ROLES.values())), family, well, rng)


def _tune_names(families):
    """The sorted names of the tune families in ``families`` (name -> family)."""
    return sorted(name for name, family in families.items() if family.role == "tune")


def tune_family_draws(exclude=(), weights=None):
    """Return the tune families a render draws from, each repeated by its integer weight (default 1).

    With every weight 1 the draws are those of the recipes written before weights existed.
    """
    from antibodies.synthetic.nuisance import FAMILIES

    weights = dict(weights or {})
    tune = _tune_names(FAMILIES)
    unknown = set(weights) - set(tune)
    if unknown:
        raise ValueError(f"weights name {sorted(unknown)}, which are not tune families")
    return [name for name in tune if name not in exclude for _ in range(weights.get(name, 1))]


def draw_training_images(count, seed, factor, exclude=(), weights=None, stretched=0.0, second=0.0):
    """Return model inputs and cell labels of up to ``count`` renders, each of a random tune family.

    Parameters
    ----------
    count : int
        Renders drawn (those with fewer than 3 cells are dropped).
    seed : int
        Render ``i`` uses the generator seeded ``(seed, i)``.
    factor : int
        Binning of the input (labels are subsampled alike).
    exclude : sequence of str
        Tune families left out.
    weights : dict of str to int, optional
        Tune families drawn this many times as often as the others.
    stretched : float
        Fraction of the renders whose tiling is stretched (:data:`STRETCHED_TILING`); with 0 the
        renders are exactly those of the recipes written before this option.
    second : float
        Fraction of the renders drawn instead from the second renderer's tune families
        (:mod:`antibodies.synthetic.second_renderer`); with 0 the renders are those before this option.
    """
    names = tune_family_draws(exclude, weights)
    tasks = [((seed, i), names, factor, stretched, second) for i in range(count)]
    with Pool(min(2, os.cpu_count())) as pool:
        pairs = [pair for pair in pool.map(_render_one, tasks) if pair]
    return [image for image, _ in pairs], [labels for _, labels in pairs]


def _augmenter(seed):
    rng = np.random.default_rng(seed)

    def augment(image, labels):
        turns = int(rng.integers(4))
        image, labels = np.rot90(image, turns), np.rot90(labels, turns)
        if rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        image = image * rng.uniform(0.7, 1.3, (1, 1, 2)) + rng.uniform(-0.1, 0.1, (1, 1, 2))
        return np.ascontiguousarray(image, np.float32), np.ascontiguousarray(labels, np.int32)

    return augment


def training_config(steps, factor, batch_size=8, architecture="narrow_deep", patch=None):
    """The StarDist configuration of a cell model's training.

    ``patch`` is the side of the training patches in input pixels; by default the binned
    render, at most 256 (the patches of every recipe before this option).
    """
    from stardist.models import Config2D

    from antibodies.training.train_nuclei_model import ARCHITECTURES

    patch = patch or min(256, RENDER_SHAPE[0] // factor)
    shape = {**ARCHITECTURES[architecture], "grid": (1, 1) if factor > 1 else (2, 2)}
    return Config2D(n_rays=32, n_channel_in=2, use_gpu=False,
                    train_patch_size=(patch, patch), train_batch_size=batch_size,
                    train_epochs=math.ceil(steps / 100), train_steps_per_epoch=100, train_learning_rate=3e-4,
                    train_tensorboard=False, **shape)


def train_cell_model(out_dir, name, images=800, steps=4000, factor=4, batch_size=8, exclude=(),
                     architecture="narrow_deep", seed=1, init=None, decay=False, weights=None, stretched=0.0,
                     second=0.0, patch=None):
    """Train a cell model and write its folder ``out_dir/name``; return the folder.

    ``seed`` draws the training renders, ``weights`` their families and ``stretched`` the fraction
    of them with a stretched tiling and ``second`` the fraction from the second renderer
    (validation renders draw every first-renderer family alike, unstretched);
    ``init`` is a model folder whose weights training starts from (same network); ``decay``
    lowers the learning rate by a cosine after the first 30 % of the steps; ``patch``: see
    :func:`training_config`.
    """
    import keras
    from stardist.models import StarDist2D

    from antibodies.models import MODEL_INPUT
    from antibodies.training.train_nuclei_model import _cosine_schedule, _tidy_model_folder

    started = time.time()
    x_train, y_train = draw_training_images(images, seed, factor, exclude, weights, stretched, second)
    x_val, y_val = draw_training_images(24, 2, factor, exclude)
    logger.info("drew %d training and %d validation renders in %.0f s", len(x_train), len(x_val),
                time.time() - started)
    keras.utils.set_random_seed(0)
    config = training_config(steps, factor, batch_size, architecture, patch)
    model = StarDist2D(config, name=name, basedir=str(out_dir))
    if init:
        model.keras_model.load_weights(str(Path(init) / "weights_best.h5"))
    if decay:
        model.prepare_for_training()
        model.callbacks.append(keras.callbacks.LearningRateScheduler(
            _cosine_schedule(config.train_epochs, config.train_learning_rate)))
    model.train(x_train, y_train, validation_data=(x_val, y_val), augmenter=_augmenter(0))
    folder = Path(out_dir) / name
    (folder / MODEL_INPUT).write_text(json.dumps({"bin": factor}))
    _tidy_model_folder(folder, keep=("config.json", "weights_best.h5", MODEL_INPUT))
    logger.info("model written to %s (total %.0f s)", folder, time.time() - started)
    return folder


def main(argv=None):
    """Command-line entry point; see the module docstring."""
    from antibodies.training.train_nuclei_model import STRETCHED_TILING

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="antibodies/models", help="parent folder of the model folder")
    parser.add_argument("--name", default="vero_cells_v1",
                        help="model folder name (the defaults of the other options are vero_cells_v1's recipe)")
    parser.add_argument("--images", type=int, default=800, help="512x512 training renders")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--bin", type=int, default=4, help="bin the input this many pixels per side")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=None,
                        help="side of the training patches in input pixels (default: the binned render, at most 256)")
    parser.add_argument("--exclude", default="", help="comma separated tune families left out of training")
    parser.add_argument("--seed", type=int, default=1, help="seed of the training renders")
    parser.add_argument("--init", default=None, help="model folder whose weights training starts from")
    parser.add_argument("--decay", action="store_true", help="cosine decay of the learning rate after 30 %% of the steps")
    parser.add_argument("--weight", action="append", default=[], metavar="FAMILY=N",
                        help="draw this tune family N times as often as the others (repeatable)")
    low, high = STRETCHED_TILING
    parser.add_argument("--stretched", type=float, default=0.0, metavar="F",
                        help=f"stretch the tiling of this fraction of the training renders {low}-{high}x")
    parser.add_argument("--second", type=float, default=0.0, metavar="F",
                        help="draw this fraction of the training renders from the second renderer's tune families")
    args = parser.parse_args(argv)
    for option in ("stretched", "second"):
        if not 0 <= getattr(args, option) <= 1:
            raise SystemExit(f"--{option} takes a fraction of the renders between 0 and 1, "
                             f"got {getattr(args, option)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    train_cell_model(args.out, args.name, args.images, args.steps, args.bin, args.batch,
                     [name for name in args.exclude.split(",") if name], seed=args.seed, init=args.init,
                     decay=args.decay, weights=_parse_weights(args.weight), stretched=args.stretched,
                     second=args.second, patch=args.patch)


def _parse_weights(items):
    pairs = [item.split("=", 1) for item in items]
    if any(len(pair) != 2 or not pair[1].isdigit() or int(pair[1]) < 1 for pair in pairs):
        raise SystemExit(f"--weight takes FAMILY=N with N a whole number >= 1, got {items}")
    return {family: int(count) for family, count in pairs}


if __name__ == "__main__":
    main()
