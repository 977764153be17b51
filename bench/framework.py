"""CPU milliseconds per image of the framework's part of each image step (no science).

    python bench/framework.py SOURCE_OUTPUT PLATE [--images 16] [--pad 5800] [--repeat 3] [--profile FILE]

Runs ``run_images`` of the six image jobs of CellAnalysis (Preprocess ... InfectedCells) on
the first ``--images`` images of a finished output folder ``SOURCE_OUTPUT`` of ``PLATE``,
each job's ``process_image`` replaced by copying that image's finished outputs of the step
(``h5py`` object copy: compressed chunks as they are, ~4 ms per image for the six steps), into
a fresh folder. What remains is the framework: completeness checks, the step transaction
(lock, leftover check, part file, stamps, commit on the background thread), progress and
status files. ``--pad N`` adds N empty hidden files to the folder first, as many as the
names of a larger plate (an 864-image plate's folder holds ~5,800). Printed: the least CPU
time (``time.process_time``, all threads) of ``--repeat`` runs per step, with the load.
``--profile`` runs the commits inline and writes cProfile stats of one run.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures", "InfectedCells")


def copy_outputs(source, keys):
    """A ``process_image`` that copies ``keys`` of the image's finished container in ``source``."""

    def process_image(image, output_file):
        with h5py.File(source / f"{image}.h5", "r") as finished, h5py.File(output_file, "a") as part:
            for key in keys:
                parent, _, name = key.rpartition("/")
                finished.copy(finished[key], part.require_group(parent) if parent else part, name=name)

    return process_image


def fresh_folder(work, source, pad):
    """An empty output folder with ``pad`` dummy hidden files and the source's plan (for progress reports)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for number in range(pad):
        (work / f".WellZ{number:05d}_pad.Preprocess-0123456789ab.h5part").touch()
    (work / "batchlib").mkdir()
    shutil.copyfile(source / "batchlib" / "plan.json", work / "batchlib" / "plan.json")


def run_steps(source, plate, work, images, pad, profiler=None):
    """CPU seconds per image of each step's ``run_images``."""
    import antibodies.tasks as tasks
    from luigi_tasks.targets import clear_index_cache

    fresh_folder(work, source, pad)
    clear_index_cache()
    seconds = {}
    for step in STEPS:
        job = getattr(tasks, step)(plate_dir=str(plate), output_dir=str(work), image_name=";".join(images))
        job.process_image = copy_outputs(source, job.output_keys())
        job.set_status_message = job.set_progress_percentage = lambda *_: None  # no scheduler here
        started = time.process_time()
        if profiler:
            profiler.enable()
        job.run_images()
        if profiler:
            profiler.disable()
        seconds[step] = (time.process_time() - started) / len(images)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a finished output folder (e.g. of bench/plate.py)")
    parser.add_argument("plate", type=Path, help="its raw plate folder")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--pad", type=int, default=0, help="empty hidden files added to the folder first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench_framework")
    parser.add_argument("--profile", help="write cProfile stats of one run here (commits run inline)")
    args = parser.parse_args(argv)
    images = sorted(p.stem for p in args.source.glob("*.h5") if not p.name.startswith("."))[:args.images]
    profiler = None
    if args.profile:
        import cProfile

        from luigi_tasks.io import atomic

        atomic.BackgroundCommits.submit = lambda self, path, function: function()  # seen by the profiler
        profiler, args.repeat = cProfile.Profile(), 1
    runs = [run_steps(args.source, args.plate, args.work, images, args.pad, profiler) for _ in range(args.repeat)]
    print(f"framework CPU-ms per image ({len(images)} images, folder padded with {args.pad} names, least of "
          f"{args.repeat}; load {os.getloadavg()[0]:.2f}; includes copying the outputs):")
    for step in STEPS:
        print(f"  {step:22s} {min(run[step] for run in runs) * 1e3:7.2f}")
    print(f"  {'total':22s} {sum(min(run[step] for run in runs) for step in STEPS) * 1e3:7.2f}")
    if profiler:
        profiler.dump_stats(args.profile)
    shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
