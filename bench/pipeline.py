"""Speed, memory and accuracy of CellAnalysis on generated 1024x1024 plates (one core).

    python bench/pipeline.py [--images 8] [--out /tmp/bench_pipeline] [-- --cells-model-flips flip4 ...]

Prints, for a scheme-1 1024x1024 plate and a scheme-4 930x1024 plate:
accuracy against the truth (nuclei/cell F1@0.5, infected-cell accuracy, well
score Spearman and positive/negative separation), end-to-end seconds per image,
job-code seconds per image and step (from OUT/batchlib/<Job>.status), the same
kernels run bare on one image, and the peak RSS of the worker processes.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = (("scheme1", (1024, 1024)), ("scheme4", (930, 1024)))
STEPS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures",
         "PlateBackground", "InfectionDecision", "InfectedCells", "BorderExchange", "PlateScores", "PlateExports", "PlateReport")


def render(root, scheme, shape, n_images):
    from antibodies.synthetic.plate import render_plate

    n_wells = max(2, n_images // 2)
    wells = [f"{'ABCDEFGH'[i // 12]}{i % 12 + 1:02d}" for i in range(n_wells)]
    ratios = {well: (1.0 + 0.25 * i if i % 2 == 0 else 1.0 + 0.02 * i) for i, well in enumerate(wells)}
    plate = root / "raw" / f"{scheme}_plate"
    if not plate.exists():
        render_plate(plate, root / f"{scheme}_truth", scheme=scheme, wells=wells, sites_per_well=2, shape=shape,
                     seed=5, well_ratios=ratios)
    return plate, root / f"{scheme}_truth"


def run_plate(plate, output, extra=()):
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--local-scheduler",
               "--plate", str(plate), "--output", str(output), "--workers", "1", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr[-3000:])
    wall = time.perf_counter() - started
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def step_seconds(output):
    seconds = {}
    for step in STEPS:
        path = output / "batchlib" / f"{step}.status"
        if path.exists():
            status = json.loads(path.read_text())
            seconds[step] = status.get("seconds", 0.0)
    return seconds


def bare_kernels(plate):
    """Time the science kernels alone on the first image of a scheme-1 plate (model warm)."""
    import numpy as np
    import tifffile

    from antibodies.analysis.cells import segment_cells
    from antibodies.analysis.features import cell_features
    from antibodies.analysis.nuclei import segment_nuclei
    from antibodies.analysis.tophat import white_tophat
    from antibodies.models import BUNDLED_MODEL, load_stardist_model
    from luigi_tasks.io import open_file, write_image

    path = sorted(plate.glob("*.tiff"))[0]
    model = load_stardist_model(BUNDLED_MODEL)
    segment_nuclei(model, tifffile.imread(path)[0])  # warm-up
    timings = {}

    def timed(name, function, *args):
        started = time.perf_counter()
        result = function(*args)
        timings[name] = time.perf_counter() - started
        return result

    stack = timed("read TIFF", tifffile.imread, path)
    nuclei = timed("StarDist", segment_nuclei, model, stack[0])
    cells = timed("watershed (cells)", segment_cells, nuclei, stack[2])
    tophat = timed("top-hat", white_tophat, stack[1], 20)
    timed("features (2 channels)", lambda: [cell_features(cells, image, nuclei) for image in (stack[2], tophat)])
    tmp = Path("/tmp/bench_bare.h5")

    def write_all():
        with open_file(tmp, "w") as f:
            for key, image in (("a", stack[0]), ("b", stack[1]), ("c", stack[2]), ("d", nuclei), ("e", cells), ("f", tophat)):
                write_image(f, key, image, is_label=key in "de")

    timed("write h5 (6 pyramids)", write_all)
    tmp.unlink()
    timings["total"] = sum(timings.values())
    return timings, np.asarray(stack).shape


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--out", default="/tmp/bench_pipeline")
    parser.add_argument("extra", nargs="*", help="after --: extra CellAnalysis arguments")
    args = parser.parse_args()
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    root = Path(args.out)
    from antibodies.evaluation import evaluate_plate

    plates = {scheme: render(root, scheme, shape, args.images) for scheme, shape in SCHEMES}
    for scheme, shape in SCHEMES:
        plate, truth = plates[scheme]
        output = root / "out" / plate.name
        shutil.rmtree(output, ignore_errors=True)  # time a full run, not an incremental no-op
        wall, rss = run_plate(plate, output, args.extra)
        n = len(list(plate.glob("*.tiff")))
        _, figures = evaluate_plate(output, truth, plate.name)
        steps = step_seconds(output)
        print(f"\n== {scheme} {shape[0]}x{shape[1]}, {n} images, one core")
        print("accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
        print(f"end to end: {wall:.1f} s = {wall / n:.2f} s per image (incl. interpreter, TensorFlow import, model load)")
        print(f"job code:   {sum(steps.values()) / n:.2f} s per image; peak worker RSS {rss:.0f} MB")
        for step, seconds in steps.items():
            print(f"  {step:22s} {seconds / n:6.3f} s/image")
    timings, shape = bare_kernels(plates["scheme1"][0])
    print(f"\n== bare kernels on one {shape} image (model warm)")
    for name, seconds in timings.items():
        print(f"  {name:22s} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
