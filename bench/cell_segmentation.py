"""Compare the cell-segmentation height maps on rendered synthetic plates.

Renders a small synthetic plate with :func:`antibodies.synthetic.plate.render_plate`
(or reuses one), segments the cells of every image with the TRUE nuclei as
seeds, once per height-map strategy, and prints F1 at IoU 0.5 of the cells
against the true cells, the mean IoU of the matched cells and the time per
image.

Usage::

    .venv/bin/python bench/cell_segmentation.py [--scheme scheme1] [--wells A01 A02] [--sites 2]

The serum pages of each TIFF are the channels that ``channel_mapping.json``
of the plate folder maps to a serum role (its key order is the page order).
"""

import argparse
import importlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from antibodies.analysis.cells import (  # noqa: E402
    DistanceHeightMap,
    IntensityHeightMap,
    OtsuForeground,
    PropagationHeightMap,
    segment_cells,
)

logger = logging.getLogger("bench.cell_segmentation")

HEIGHT_MAPS = {
    "distance": DistanceHeightMap(),
    "intensity": IntensityHeightMap(),
    "propagation(0.01)": PropagationHeightMap(regularization=0.01),
    "propagation(0.05)": PropagationHeightMap(regularization=0.05),
    "propagation(0.2)": PropagationHeightMap(regularization=0.2),
    "propagation(1.0)": PropagationHeightMap(regularization=1.0),
}


def match_labels(true, predicted, iou_threshold=0.5):
    """Match two (M, N) label images by IoU.

    Two labels match when their IoU exceeds ``iou_threshold`` (>= 0.5 makes
    matches one-to-one).

    Parameters
    ----------
    true, predicted : (M, N) int arrays
        Label images, 0 = background.
    iou_threshold : float
        Minimum IoU (exclusive) of a match; must be >= 0.5.

    Returns
    -------
    dict
        ``tp``, ``n_true``, ``n_predicted``, ``f1`` and ``mean_matched_iou``.

    Examples
    --------
    >>> a = np.array([[1, 1, 0, 2]])
    >>> match_labels(a, np.array([[1, 1, 1, 0]]))["tp"]
    1
    """
    if iou_threshold < 0.5:
        raise ValueError("iou_threshold below 0.5 does not give one-to-one matches")
    true = np.asarray(true).ravel().astype(np.int64)
    predicted = np.asarray(predicted).ravel().astype(np.int64)
    n_true_ids, n_pred_ids = int(true.max()) + 1, int(predicted.max()) + 1
    overlap = np.bincount(true * n_pred_ids + predicted, minlength=n_true_ids * n_pred_ids)
    overlap = overlap.reshape(n_true_ids, n_pred_ids)
    true_sizes, pred_sizes = overlap.sum(axis=1), overlap.sum(axis=0)
    overlap, true_sizes, pred_sizes = overlap[1:, 1:], true_sizes[1:], pred_sizes[1:]
    union = true_sizes[:, None] + pred_sizes[None, :] - overlap
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, overlap / union, 0.0)
    matched = iou > iou_threshold
    n_true = int(np.count_nonzero(true_sizes))
    n_predicted = int(np.count_nonzero(pred_sizes))
    tp = int(matched.sum())
    total = n_true + n_predicted
    return {
        "tp": tp,
        "n_true": n_true,
        "n_predicted": n_predicted,
        "f1": 2 * tp / total if total else 1.0,
        "mean_matched_iou": float(iou[matched].mean()) if tp else float("nan"),
    }


def serum_page_indices(plate_dir):
    """Page indices of the serum channels, from ``channel_mapping.json``."""
    mapping = json.loads((Path(plate_dir) / "channel_mapping.json").read_text())
    return [i for i, role in enumerate(mapping.values()) if role and role.startswith("serum")]


def load_images(plate_dir, truth_dir):
    """Yield ``(stem, stack (C, M, N), nuclei, cells)`` of every rendered image."""
    for truth_path in sorted(Path(truth_dir).glob("*.npz")):
        stem = truth_path.stem
        candidates = sorted(Path(plate_dir).glob(f"{stem}.tif*"))
        if not candidates:
            logger.warning("no TIFF for truth %s", truth_path)
            continue
        with np.load(truth_path) as truth:
            nuclei, cells = truth["nuclei"], truth["cells"]
        yield stem, tifffile.imread(candidates[0]), nuclei, cells


def benchmark(images, serum_pages, height_maps, foreground):
    """Score every height map on every image; one row per (image, strategy)."""
    rows = []
    for stem, stack, nuclei, true_cells in images:
        serum = [stack[i] for i in serum_pages]
        for name, height_map in height_maps.items():
            start = time.perf_counter()
            cells = segment_cells(nuclei, serum, foreground, height_map)
            seconds = time.perf_counter() - start
            scores = match_labels(true_cells, cells)
            rows.append({"image": stem, "height_map": name, "seconds": seconds, **scores})
    return pd.DataFrame(rows)


def summarize(results):
    """Per strategy: pooled F1, mean matched IoU and median seconds per image."""
    grouped = results.groupby("height_map", sort=False)
    summary = grouped[["tp", "n_true", "n_predicted"]].sum()
    summary["f1"] = 2 * summary["tp"] / (summary["n_true"] + summary["n_predicted"])
    summary["mean_matched_iou"] = grouped["mean_matched_iou"].mean()
    summary["median_seconds"] = grouped["seconds"].median()
    return summary.sort_values("f1", ascending=False)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate-dir", type=Path, help="reuse a rendered plate")
    parser.add_argument("--truth-dir", type=Path, help="its truth folder")
    parser.add_argument("--scheme", default="scheme1", help="render_plate scheme")
    parser.add_argument("--wells", nargs="+", default=["A01", "A02", "B01", "B02"])
    parser.add_argument("--sites", type=int, default=2, help="sites per well")
    parser.add_argument("--shape", type=int, nargs=2, default=[1024, 1024])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoothing-sigma", type=float, default=2.0)
    return parser.parse_args(argv)


def render(args, work_dir):
    """Render a plate into ``work_dir``; return (plate_dir, truth_dir)."""
    plate_module = importlib.import_module("antibodies.synthetic.plate")
    plate_dir, truth_dir = Path(work_dir) / "plate", Path(work_dir) / "truth"
    plate_module.render_plate(
        plate_dir, truth_dir, scheme=args.scheme, wells=args.wells,
        sites_per_well=args.sites, shape=tuple(args.shape), seed=args.seed,
    )
    return plate_dir, truth_dir


def main(argv=None):
    """Render (or reuse) a plate, benchmark the height maps, print the table."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if (args.plate_dir is None) != (args.truth_dir is None):
        raise SystemExit("--plate-dir and --truth-dir go together")
    foreground = OtsuForeground(smoothing_sigma=args.smoothing_sigma)
    with tempfile.TemporaryDirectory() as work_dir:
        if args.plate_dir is None:
            plate_dir, truth_dir = render(args, work_dir)
        else:
            plate_dir, truth_dir = args.plate_dir, args.truth_dir
        serum_pages = serum_page_indices(plate_dir)
        results = benchmark(load_images(plate_dir, truth_dir), serum_pages, HEIGHT_MAPS, foreground)
    if results.empty:
        logger.error("no images found")
        return 1
    logger.info(
        "serum pages %s, %d images, foreground %s",
        serum_pages, results["image"].nunique(), foreground,
    )
    print(summarize(results).to_string(float_format=lambda x: f"{x:.3f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
