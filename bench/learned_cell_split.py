"""Experiment: a learned cell split against the distance split (offline; not part of the pipeline).

A two-channel StarDist2D (nuclei and serum, percentile-normalised) is trained
on renders drawn from the **tune** families only; its object probability,
upsampled to the image, then replaces the distance to the nuclei as the
watershed's height map (the same nuclei as markers, the same foreground).
Figures and their dates are in docs/performance.md ("A first look at a learned
split")::

    python bench/learned_cell_split.py train /tmp/cellmodel --name cells_full --images 500 --steps 5000
    python bench/learned_cell_split.py evaluate /tmp/cellmodel/cells_full \\
        --plates tune_standard_scheme1,tune_broad_scheme1,tune_grown_cells_scheme1 --images 8

``evaluate`` reads the plates that ``bench/generalization.py`` rendered and
processed under ``--root`` (raw TIFFs, truth, and our nuclei and cells) and
prints, per plate and height map, cells F1@0.5, the mean IoU of matched cells
and the median bias and absolute error of the well scores against the true
ratio (true infected calls and true backgrounds, so only the split differs).
``--binned`` trains and predicts on 2x2-binned images.
"""
import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

ROLES = {"N": "nuclei", "M": "marker", "S": "serum_IgG"}
HEIGHT_MAPS = {"learned": 0.0, "learned + 0.01 x distance": 0.01}
"""Weight of the distance to the nuclei (per px) added to the negated object probability."""


def _binned(image):
    image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2].astype(np.float32)
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def network_input(nuclei, serum, binned):
    """Return the (M, N, 2) float32 input: the normalised nuclei and serum channels."""
    from antibodies.analysis.nuclei import normalize_percentile

    shrink = _binned if binned else (lambda image: image.astype(np.float32))
    return np.stack([normalize_percentile(shrink(nuclei)), normalize_percentile(shrink(serum))], -1)


def draw_training_images(count, seed, binned, shape=(512, 512)):
    """Return inputs and cell labels of ``count`` renders, each of a random tune family."""
    from antibodies.synthetic.nuisance import FAMILIES, draw_image_nuisance, draw_well_params
    from antibodies.synthetic.plate import render_image

    tune = [family for family in FAMILIES.values() if family.role == "tune"]
    rng = np.random.default_rng(seed)
    step = 2 if binned else 1
    images, labels = [], []
    while len(images) < count:
        family = tune[int(rng.integers(len(tune)))]
        params = draw_well_params(rng, family.ranges, ("serum_IgG",))
        stack, truth = render_image(shape, ROLES, params, rng, draw_image_nuisance(rng, family.ranges, 3))
        if truth["cells"].max() >= 3:
            images.append(network_input(stack[0], stack[2], binned))
            labels.append(np.ascontiguousarray(truth["cells"][::step, ::step], dtype=np.int32))
    return images, labels


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


def train(args):
    import keras
    from stardist.models import Config2D, StarDist2D

    from antibodies.training.train_nuclei_model import ARCHITECTURES

    images, labels = draw_training_images(args.images, 1, args.binned)
    val_images, val_labels = draw_training_images(24, 2, args.binned)
    keras.utils.set_random_seed(0)
    config = Config2D(n_rays=32, grid=(2, 2), n_channel_in=2, use_gpu=False, train_patch_size=(256, 256),
                      train_batch_size=4, train_epochs=math.ceil(args.steps / 100), train_steps_per_epoch=100,
                      train_learning_rate=3e-4, train_reduce_lr=None, train_tensorboard=False,
                      **ARCHITECTURES["narrow_deep"])
    model = StarDist2D(config, name=args.name, basedir=args.out)
    model.train(images, labels, validation_data=(val_images, val_labels), augmenter=_augmenter(0))
    (Path(args.out) / args.name / "input.json").write_text(json.dumps({"binned": args.binned}))


def _well_errors(cells, wells):
    errors = []
    for well, group in cells.groupby("well"):
        ratio = wells.at[well, "ratio_serum_IgG"]
        if np.isfinite(ratio) and group.infected.sum() >= 5:
            score = group[group.infected].mean_serum.median() / group[~group.infected].mean_serum.median()
            errors.append((score - ratio) / ratio)
    return np.array(errors)


def _cell_rows(truth, labels, serum, infected_ids):
    """Per predicted cell: its mean serum and whether its main true owner is infected."""
    n_pred, n_true = labels.max() + 1, truth.max() + 1
    counts = np.bincount((labels.astype(np.int64) * n_true + truth).ravel(), minlength=n_pred * n_true)
    counts = counts.reshape(n_pred, n_true)
    owner, area = counts[:, 1:].argmax(1) + 1, counts.sum(1)
    means = np.bincount(labels.ravel(), serum.ravel(), n_pred) / np.maximum(area, 1)
    present = np.flatnonzero(area[1:]) + 1
    return pd.DataFrame({"mean_serum": means[present], "infected": np.isin(owner[present], infected_ids)})


def evaluate(args):
    import tifffile
    from scipy import ndimage as ndi
    from skimage.segmentation import watershed
    from stardist.models import StarDist2D

    from antibodies.analysis.cells import _distance_to_nuclei
    from cell_segmentation import match_labels
    from luigi_tasks.io import open_file, parse_image_name, read_image

    folder = Path(args.model)
    binned = json.loads((folder / "input.json").read_text())["binned"] if (folder / "input.json").exists() else False
    model = StarDist2D(None, name=folder.name, basedir=str(folder.parent))
    root, rows = Path(args.root), []
    for plate in args.plates.split(","):
        roles = json.loads((root / "raw" / plate / "channel_mapping.json").read_text())
        pages = {role: index for index, role in enumerate(roles.values())}
        wells = pd.read_csv(root / "truth" / plate / "wells.csv").set_index("well_name")
        cells, scores = {}, []
        for truth_file in sorted((root / "truth" / plate).glob("*.npz"))[: args.images]:
            truth = np.load(truth_file)
            raw = tifffile.imread(root / "raw" / plate / f"{truth_file.stem}.tiff")
            with open_file(root / "out" / "default" / plate / f"{truth_file.stem}.h5") as container:
                nuclei, ours = read_image(container, "nucleus_segmentation"), read_image(container, "cell_segmentation")
            prob, _ = model.predict(network_input(raw[pages["nuclei"]], raw[pages["serum_IgG"]], binned))
            prob = ndi.zoom(prob, np.divide(ours.shape, prob.shape), order=1)[: ours.shape[0], : ours.shape[1]]
            splits = {"distance (default)": ours}
            splits.update({name: watershed(weight * _distance_to_nuclei(nuclei) - prob, markers=nuclei, mask=ours > 0)
                           for name, weight in HEIGHT_MAPS.items()})
            serum_channel = list(roles)[pages["serum_IgG"]]
            serum = raw[pages["serum_IgG"]].astype(np.float32) - float(truth[f"background_{serum_channel}"])
            well = parse_image_name(truth_file.stem).well_name
            for name, labels in splits.items():
                match = match_labels(truth["cells"], labels)
                scores.append({"height map": name, "f1": match["f1"], "iou": match["mean_matched_iou"]})
                table = _cell_rows(truth["cells"], labels, serum, truth["infected_ids"]).assign(well=well)
                cells.setdefault(name, []).append(table)
        for name, figures in pd.DataFrame(scores).groupby("height map", sort=False):
            errors = _well_errors(pd.concat(cells[name]), wells)
            rows.append({"plate": plate, "height map": name, "cells F1": figures.f1.mean(),
                         "matched IoU": figures.iou.mean(), "bias %": 100 * np.median(errors),
                         "abs. error %": 100 * np.median(np.abs(errors))})
    print(pd.DataFrame(rows).round(3).to_string(index=False))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    trainer = commands.add_parser("train", help="train a cell model on tune-family renders")
    trainer.add_argument("out", help="parent folder of the model folder")
    trainer.add_argument("--name", default="cells")
    trainer.add_argument("--images", type=int, default=500, help="512x512 training renders")
    trainer.add_argument("--steps", type=int, default=5000)
    trainer.add_argument("--binned", action="store_true", help="2x2-binned input")
    evaluator = commands.add_parser("evaluate", help="compare the height maps on processed bench plates")
    evaluator.add_argument("model", help="the model folder")
    evaluator.add_argument("--plates", required=True, help="comma separated plate names under ROOT/raw")
    evaluator.add_argument("--images", type=int, default=8, help="first images of each plate")
    evaluator.add_argument("--root", default="/tmp/bench_generalization")
    args = parser.parse_args()
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    train(args) if args.command == "train" else evaluate(args)


if __name__ == "__main__":
    main()
