"""CPU seconds per image of each image job's compute body, without Luigi; optionally compare outputs.

    python bench/kernels.py [--plate /tmp/bench_plate/distinct24/plate] [--images 6] [--out /tmp/bench_kernels]
                            [--repeat 1] [--compare EARLIER_OUT] [--profile FILE] [--nuclei-model MODEL]

Runs ``compute`` of Preprocess, NucleusSegmentation (model in this process,
warmed up first), MarkerTophat, CellSegmentation and CellFeatures on the first
``--images`` images of a plate, each step writing a part file that the image's
container links to (as a run does), and prints the CPU seconds
(``time.process_time``) per image of each step, with the load average.  Set
``OMP_NUM_THREADS=1 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1`` for
one-core figures.  ``--compare`` reads every dataset of the containers of an
earlier ``--out`` and prints how many differ.
"""
import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures")


def run_step(job, raw, container, part, repeat=1):
    """Run one job's compute on one image (the least CPU time of ``repeat`` runs); link the part file's keys."""
    source = raw if job.task_family == "Preprocess" else str(container)
    seconds = []
    for _ in range(repeat):
        part.unlink(missing_ok=True)
        started = time.process_time()
        job.compute([source], [str(part)], **job.job_kwargs())
        seconds.append(time.process_time() - started)
    with h5py.File(part, "r") as written, h5py.File(container, "a") as target:
        keys = list(written.keys())
        if "tables" in keys:
            keys.remove("tables")
            for name in written["tables"]:
                for sub in written["tables"][name]:
                    target[f"tables/{name}/{sub}"] = h5py.ExternalLink(part.name, f"tables/{name}/{sub}")
        for key in keys:
            target[key] = h5py.ExternalLink(part.name, key)
    return min(seconds)


def all_keys(path):
    """Every dataset key below the root of a container, following external links."""
    keys = []
    with h5py.File(path, "r") as container:
        def walk(group, prefix):
            for name in group:
                node = group[name]
                key = f"{prefix}{name}"
                if isinstance(node, h5py.Group):
                    walk(node, key + "/")
                else:
                    keys.append(key)
        walk(container, "")
    return keys


def _same(new, old):
    """Same shape, dtype and values (NaN equal to NaN)."""
    if new.shape != old.shape or new.dtype != old.dtype:
        return False
    return np.array_equal(new[()], old[()], equal_nan=new.dtype.kind == "f")


def compare(out, earlier):
    """Print how many datasets of the containers in ``out`` differ from ``earlier``."""
    n_keys = n_differ = 0
    for path in sorted(out.glob("*.h5")):
        if "." in path.stem:
            continue
        old_path = earlier / path.name
        keys = all_keys(path)
        old_keys = all_keys(old_path)
        with h5py.File(path, "r") as new, h5py.File(old_path, "r") as old:
            for key in sorted(set(keys) | set(old_keys)):
                n_keys += 1
                same = key in new and key in old and _same(new[key], old[key])
                if not same:
                    n_differ += 1
                    print(f"  differs: {path.name} {key}")
    print(f"{n_differ} of {n_keys} keys differ from {earlier}")


def warmed_up_jobs(plate, out, raw, nuclei_model=None):
    """One job object per step (``nuclei_model``: another nucleus model); the StarDist models loaded and run once."""
    import tifffile

    import antibodies.tasks as tasks
    from antibodies.models import resolve_model_folder
    from antibodies.models.server import model_runner

    jobs = [getattr(tasks, step)(plate_dir=str(plate), output_dir=str(out), image_name="x") for step in STEPS]
    if nuclei_model:
        jobs[1] = tasks.NucleusSegmentation(plate_dir=str(plate), output_dir=str(out), image_name="x",
                                            nuclei_model=nuclei_model)
    segmenter = model_runner(resolve_model_folder(jobs[1].nuclei_model))
    nuclei = tifffile.imread(raw)[0]
    segmenter.run("segment_nuclei", nuclei, None, None)  # model load, graph tracing
    if jobs[3].learned:  # the cell model too, on an input of the binned image's shape
        run, binning = jobs[3].cell_model
        run("object_probability", np.zeros((nuclei.shape[0] // binning, nuclei.shape[1] // binning, 2), np.float32))
    return jobs


def run_steps(jobs, raws, out, repeat):
    """CPU seconds of each step summed over the images (the least of ``repeat`` runs each)."""
    seconds = {step: 0.0 for step in STEPS}
    for raw in raws:
        container = out / f"{raw.stem}.h5"
        h5py.File(container, "w").close()
        for step, job in zip(STEPS, jobs):
            seconds[step] += run_step(job, str(raw), container, out / f"{raw.stem}.{step}.h5", repeat)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", default="/tmp/bench_plate/distinct24/plate")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--out", default="/tmp/bench_kernels")
    parser.add_argument("--repeat", type=int, default=1, help="runs per image and step; the least CPU time counts "
                        "(steadier on a loaded machine)")
    parser.add_argument("--compare", default=None, help="an --out folder of an earlier run: compare every dataset")
    parser.add_argument("--profile", default=None, help="write cProfile stats of the steps to this file")
    parser.add_argument("--nuclei-model", default=None, help="a nucleus model other than the configured one")
    args = parser.parse_args()

    plate, out = Path(args.plate), Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    raws = sorted(plate.glob("*.tiff"))[:args.images]
    jobs = warmed_up_jobs(plate, out, raws[0], args.nuclei_model)
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    load_before = os.getloadavg()
    seconds = run_steps(jobs, raws, out, args.repeat)
    if profiler:
        profiler.disable()
        profiler.dump_stats(args.profile)
    load_after = os.getloadavg()
    load = f"load {load_before[0]:.2f} -> {load_after[0]:.2f}"
    print(f"CPU-s per image ({len(raws)} images, least of {args.repeat} runs; {load}):")
    for step in STEPS:
        print(f"  {step:22s} {seconds[step] / len(raws):.3f}")
    print(f"  {'total':22s} {sum(seconds.values()) / len(raws):.3f}")
    if args.compare:
        compare(out, Path(args.compare))


if __name__ == "__main__":
    main()
