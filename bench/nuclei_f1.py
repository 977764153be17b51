"""Benchmark a StarDist nucleus model: F1 scores and prediction time.

Prints, for the model given (default: the bundled ``vero_nuclei_v8``):

* F1 / precision / recall at IoU 0.5 and F1 at IoU 0.5 ... 0.9 on the stardist
  test image (``stardist.data.test_image_nuclei_2d(return_mask=True)``,
  512 x 512 DSB2018 nuclei with ground truth; never used for training),
* the same on freshly rendered synthetic plate images (1024 x 1024 and
  930 x 1024) against their ground-truth nuclei,
* with ``--families``, the mean F1 on 1024 x 1024 nuclei images of named
  plate families (:data:`antibodies.synthetic.nuisance.FAMILIES`; per
  family ``--n-family`` images drawn from generators seeded
  ``[family seed, 777, index]``, which no training recipe uses),
* the warm prediction time per 1024 x 1024 image.

Usage::

    python bench/nuclei_f1.py [--model vero_nuclei_v8] [--seed 123] [--threads 1] \\
        [--families tune_standard,tune_broad | --families holdout] [--n-family 3]

``--families holdout`` (or ``tune``) selects every family of that role.
Holdout families are for reporting only: never choose a model setting by them.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

IOU_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _limit_threads(threads):
    """Restrict TensorFlow (and BLAS) to ``threads`` CPU threads; call before importing TF."""
    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[variable] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _scores(truth, predicted):
    """Return {iou: matching stats} for the IoU thresholds."""
    from stardist.matching import matching

    return {iou: matching(truth, predicted, thresh=iou) for iou in IOU_THRESHOLDS}


def _report(title, truth, predicted):
    """Print one line of F1 figures for one image."""
    stats = _scores(truth, predicted)
    at_05 = stats[0.5]
    f1_curve = " ".join(f"{iou:.1f}:{stats[iou].f1:.3f}" for iou in IOU_THRESHOLDS)
    print(f"{title:<34} F1@0.5={at_05.f1:.3f} precision={at_05.precision:.3f} recall={at_05.recall:.3f} "
          f"(n_true={at_05.n_true}, n_pred={at_05.n_pred}, fp={at_05.fp}, fn={at_05.fn}) | F1 by IoU {f1_curve}")
    return at_05


def _synthetic_image(shape, seed):
    """Render one scheme-1 plate image; return (nuclei channel, nuclei truth)."""
    import numpy as np

    from antibodies.synthetic.plate import SCHEMES, random_well_params, render_image

    rng = np.random.default_rng(seed)
    params = random_well_params(rng)
    stack, truth = render_image(shape, SCHEMES["scheme1"], params, rng)
    return stack[0], truth["nuclei"]


def _family_image(family, index, shape=(1024, 1024)):
    """Render the nuclei channel of one image of a plate family; return (image, nuclei truth)."""
    import numpy as np

    from antibodies.synthetic.nuisance import draw_image_nuisance, draw_well_params
    from antibodies.synthetic.plate import render_image

    rng = np.random.default_rng([family.seed, 777, index])
    params = draw_well_params(rng, family.ranges, ("serum_IgG",))
    stack, truth = render_image(shape, {"DAPI": "nuclei"}, params, rng, draw_image_nuisance(rng, family.ranges, 1))
    return stack[0], truth["nuclei"]


def _family_names(text):
    """Return the family names of ``--families`` (names, or a role: 'tune' / 'holdout')."""
    from antibodies.synthetic.nuisance import FAMILIES

    names = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        names += [n for n, f in FAMILIES.items() if f.role == part] if part in ("tune", "holdout") else [part]
    return names


def _report_families(segment, names, count):
    """Print per-image and mean F1@0.5 of ``segment(image)`` on the images of each named family."""
    import numpy as np

    from antibodies.synthetic.nuisance import FAMILIES

    for name in names:
        stats = []
        for index in range(count):
            image, truth = _family_image(FAMILIES[name], index)
            stats.append(_report(f"{name} #{index}", truth, segment(image)))
        f1s = [s.f1 for s in stats]
        print(f"{name + ' (' + FAMILIES[name].role + ')':<34} mean F1@0.5={np.mean(f1s):.4f} "
              f"min={np.min(f1s):.3f} fp={sum(s.fp for s in stats)} fn={sum(s.fn for s in stats)} over {count} images")


def main(argv=None):
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model spec (default: the bundled model)")
    parser.add_argument("--seed", type=int, default=123, help="seed of the synthetic test images")
    parser.add_argument("--n-synthetic", type=int, default=2, help="synthetic images per shape")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for the timing (default 1)")
    parser.add_argument("--families", default="", help="plate families to score, or 'tune' / 'holdout'")
    parser.add_argument("--n-family", type=int, default=3, help="1024x1024 images per family")
    parser.add_argument("--no-sample", action="store_true", help="skip the stardist sample image")
    parser.add_argument("--border", type=int, default=None,
                        help="StarDist's border exclusion b in grid cells (default: segment_nuclei's)")
    args = parser.parse_args(argv)
    _limit_threads(args.threads)

    import numpy as np
    from stardist.data import test_image_nuclei_2d

    from antibodies.analysis.nuclei import segment_nuclei
    from antibodies.models import BUNDLED_MODEL, load_stardist_model

    spec = args.model or BUNDLED_MODEL
    model = load_stardist_model(spec)
    border = {} if args.border is None else {"border": args.border}

    def segment(image):
        return segment_nuclei(model, image, **border)

    print(f"model: {spec}  thresholds: prob={model.thresholds.prob:.3f} nms={model.thresholds.nms:.2f}")

    if not args.no_sample:
        image, truth = test_image_nuclei_2d(return_mask=True)
        _report("stardist test image (512x512)", truth, segment(image))
    if args.families:
        _report_families(segment, _family_names(args.families), args.n_family)

    for shape in ((1024, 1024), (930, 1024)):
        f1s = []
        for index in range(args.n_synthetic):
            nuclei_image, nuclei_truth = _synthetic_image(shape, args.seed + index)
            f1s.append(_report(f"synthetic plate {shape[0]}x{shape[1]} #{index}", nuclei_truth,
                               segment(nuclei_image)).f1)
        print(f"{'synthetic plate ' + str(shape[0]) + 'x' + str(shape[1]):<34} mean F1@0.5={np.mean(f1s):.3f}")

    nuclei_image, _ = _synthetic_image((1024, 1024), args.seed)
    segment(nuclei_image)  # warm-up
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        segment(nuclei_image)
        timings.append(time.perf_counter() - started)
    print(f"warm prediction time per 1024x1024 image ({args.threads} thread(s)): "
          f"median {np.median(timings):.2f} s (min {min(timings):.2f} s over {len(timings)} runs)")


if __name__ == "__main__":
    main()
