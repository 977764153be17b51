"""Scale figures of the framework: overhead, no-op reruns, new images, completeness checks, workers, memory.

    python bench/scale.py [--root /tmp/bench_scale] [--sizes 96 864] [--real-images 8] [--only SECTION ...]

Sections (``--only``): ``overhead``, ``noop``, ``new``, ``complete``, ``batching``, ``real``.

Which code runs where (read this before quoting a figure):

* ``overhead``, ``noop``, ``new``, ``complete``, ``batching`` use
  ``bench/scale_workflow.py``: the real planner and CellAnalysis's task graph
  (6 image jobs, 3 plate jobs, same batching) with the computation replaced
  by cheap jobs that still read and write full-size 1024x1024 channels
  (compressed pyramids: containers grow to ~7 MiB, like the real ones). The plate is one
  generated 1024x1024 4-channel TIFF hard-linked under 96 or 864 names
  (8 MiB on disk instead of 7 GiB).
* ``real`` runs the real CellAnalysis (StarDist included) on a rendered
  synthetic 1024x1024 plate of ``--real-images`` images: one worker process,
  then two worker processes sharing a luigid, then one process with
  ``--workers 2``; every process single-threaded (``TF_NUM_INTRAOP_THREADS=1``
  etc.) and ``max_batch_size`` = images / 2.

``others_cpu_*_s`` is the CPU time other processes on the machine used during
each phase (from ``/proc/stat``): a speed-up is only meaningful when it is small.

Framework overhead = wall time of the ``luigi`` command minus the time spent
inside the jobs' own ``compute``/``run_plate`` (``job_seconds`` in
``OUT/batchlib/<Job>.status``); it includes Python start-up and imports,
planning, scheduling, process forks, container copies and commits, stamps,
status files and progress reports. Peak RSS comes from ``peak_rss_mb`` in the
status files (the task processes) and from sampling the ``luigi`` process.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHANNELS = ("DAPI", "WF_GFP", "TRITC", "WF_Cy5")
WELLS = [f"{row}{col:02d}" for row in "ABCDEFGH" for col in range(1, 13)]
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "-1"}
REAL_JOBS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures", "InfectedCells")


def base_image(root):
    """One rendered 1024x1024 4-channel scheme-1 image and its channel mapping."""
    from antibodies.synthetic.plate import render_plate

    folder = root / "base"
    if not folder.exists():
        render_plate(folder / "plate", folder / "truth", wells=("A01",), sites_per_well=1, shape=(1024, 1024), seed=4)
    return next((folder / "plate").glob("*.tiff")), folder / "plate" / "channel_mapping.json"


def link_images(plate, base, names):
    for name in names:
        target = plate / f"{name}.tiff"
        if not target.exists():
            os.link(base, target)


def image_names(n_images, first_site=1):
    """``n_images`` names: 96 wells x n/96 sites (fewer wells when n < 96)."""
    from luigi_tasks.testing import raw_image_name

    wells = WELLS[:min(96, n_images)]
    sites = range(first_site, first_site + max(1, n_images // len(wells)))
    pairs = [(well, site) for site in sites for well in wells][:n_images]
    return [raw_image_name(well, site, CHANNELS, 1000 * site + number) for number, (well, site) in enumerate(pairs)]


def make_plate(root, name, n_images):
    base, mapping = base_image(root)
    plate = root / "raw" / name
    plate.mkdir(parents=True, exist_ok=True)
    shutil.copy(mapping, plate / mapping.name)
    link_images(plate, base, image_names(n_images))
    return plate


def run(command, env=None, sample=0.2):
    """Run ``command``; return (wall seconds, exit code, peak RSS MiB of its main process, output)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull, open(Path(os.environ.get("TMPDIR", "/tmp")) / "bench_scale.log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=devnull)
        peak = 0.0
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(sample)
    wall = time.perf_counter() - started
    output = (Path(os.environ.get("TMPDIR", "/tmp")) / "bench_scale.log").read_text()
    if process.returncode != 0:
        print(output[-3000:], file=sys.stderr)
    return wall, process.returncode, peak, output


def cheap_command(plate, output, *extra):
    return [sys.executable, "-m", "luigi", "--module", "bench.scale_workflow", "ScaleWorkflow", "--plate", str(plate),
            "--output", str(output), "--local-scheduler", "--workers", "1", *extra]


def status_totals(output):
    """Sum of ``seconds`` and ``job_seconds`` and the largest ``peak_rss_mb`` of image and of plate jobs."""
    from luigi_tasks.plan_progress import read_plan

    plan = read_plan(output)
    totals = {"seconds": 0.0, "job_seconds": 0.0, "image_rss": 0.0, "plate_rss": 0.0}
    for path in (Path(output) / "batchlib").glob("*.status"):
        status = json.loads(path.read_text())
        totals["seconds"] += status.get("seconds", 0.0)
        totals["job_seconds"] += status.get("job_seconds", 0.0)
        kind = "image_rss" if path.stem in plan["image_jobs"] else "plate_rss"
        totals[kind] = max(totals[kind], status.get("peak_rss_mb", 0.0))
    return totals


def done_lines(output):
    log = Path(output) / "batchlib" / "ScaleWorkflow.log"
    return sum(" done: " in line for line in log.read_text().splitlines()) if log.exists() else 0


def overhead(root, sizes, real_per_image=None, extra=()):
    rows = []
    for n_images in sizes:
        plate, output = make_plate(root, f"plate{n_images}", n_images), root / "out" / f"plate{n_images}"
        shutil.rmtree(output, ignore_errors=True)
        before = cpu_counters()
        wall, code, rss, _ = run(cheap_command(plate, output, *extra))
        after = cpu_counters()
        totals = status_totals(output)
        spent = wall - totals["job_seconds"]
        row = {"images": n_images, "exit": code, "wall_s": wall, "job_s": totals["job_seconds"],
               "overhead_s": spent, "overhead_share": spent / wall, "overhead_ms_per_image": 1000 * spent / n_images,
               "worker_rss_mb": rss, "image_task_rss_mb": totals["image_rss"], "plate_task_rss_mb": totals["plate_rss"],
               "others_cpu_s": others_cpu(before, after)}
        if real_per_image:
            row["share_with_real_jobs"] = spent / (spent + n_images * real_per_image)
        rows.append(row)
        print(f"overhead {n_images:4d} images: " + _format(row), flush=True)
    return rows


def noop(root, n_images=864):
    plate, output = make_plate(root, f"plate{n_images}", n_images), root / "out" / f"plate{n_images}"
    if not (output / f"{plate.name}_images.csv").exists():
        run(cheap_command(plate, output))
    before = done_lines(output)
    wall, code, rss, text = run(cheap_command(plate, output))
    row = {"images": n_images, "exit": code, "wall_s": wall, "image_jobs_run": done_lines(output) - before,
           "worker_rss_mb": rss}
    print("no-op rerun: " + _format(row), flush=True)
    return row


def new_images(root, n_images=864, n_new=9):
    plate, output = make_plate(root, f"plate{n_images}", n_images), root / "out" / f"plate{n_images}"
    if not (output / f"{plate.name}_images.csv").exists():
        run(cheap_command(plate, output))
    names = [re.sub(r"Seq\d+", f"Seq{9900 + i:04d}", name.replace("_0001_", "_0099_"))
             for i, name in enumerate(image_names(n_new))]
    if any((plate / f"{name}.tiff").exists() for name in names):  # left by an earlier bench run: start without them
        for name in names:
            (plate / f"{name}.tiff").unlink(missing_ok=True)
            (output / f"{name}.h5").unlink(missing_ok=True)
        run(cheap_command(plate, output))
    link_images(plate, base_image(root)[0], names)
    before, totals = done_lines(output), status_totals(output)
    wall, code, rss, _ = run(cheap_command(plate, output))
    after = status_totals(output)
    row = {"images": n_images, "new": n_new, "exit": code, "wall_s": wall, "image_jobs_run": done_lines(output) - before,
           "job_s": after["job_seconds"] - totals["job_seconds"]}
    print("new images: " + _format(row), flush=True)
    return row


COMPLETE_SNIPPET = """
import json, sys, time
sys.path.insert(0, {root!r})
import luigi
from bench.scale_workflow import ScaleWorkflow
from luigi_tasks.job import ImageJob
from luigi_tasks.targets import clear_index_cache
workflow = ScaleWorkflow(plate={plate!r}, output={output!r})
finals = workflow.requires()
image_tasks, seen, todo = [], set(), list(finals)
while todo:
    task = todo.pop()
    if task.task_id in seen:
        continue
    seen.add(task.task_id)
    image_tasks += [task] if isinstance(task, ImageJob) else []
    todo += luigi.task.flatten(task.requires())
result = {{"available": len(image_tasks)}}
for count in {counts!r}:
    tasks = image_tasks[:count]
    clear_index_cache()
    started = time.perf_counter()
    done = sum(task.complete() for task in tasks)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    sum(task.complete() for task in tasks)
    result[count] = {{"tasks": len(tasks), "complete": done, "cold_s": cold, "warm_s": time.perf_counter() - started}}
print(json.dumps(result))
"""


def completeness(root, counts=(1000, 5000), n_images=864):
    plate, output = make_plate(root, f"plate{n_images}", n_images), root / "out" / f"plate{n_images}"
    if not (output / f"{plate.name}_images.csv").exists():
        run(cheap_command(plate, output))
    snippet = COMPLETE_SNIPPET.format(root=str(ROOT), plate=str(plate), output=str(output), counts=list(counts))
    done = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for count in counts:
        row = result[str(count)]
        print(f"completeness check of {row['tasks']} image tasks ({row['complete']} complete): cold "
              f"{row['cold_s']:.2f} s ({1000 * row['cold_s'] / row['tasks']:.2f} ms/task), warm {row['warm_s']:.2f} s",
              flush=True)
    return result


def batching(root, n_images=96, sizes=(1, 8, 32)):
    rows = []
    for size in sizes:
        extra = ("--batchlib-max-batch-sizes", json.dumps({job: size for job in (
            "CheapPreprocess", "CheapNuclei", "CheapTophat", "CheapCells", "CheapFeatures", "CheapInfected")}))
        row = overhead(root, [n_images], extra=extra)[0]
        rows.append(dict(row, max_batch_size=size))
        print(f"  (max_batch_size {size})", flush=True)
    return rows


def real_plate(root, n_images):
    from antibodies.synthetic.plate import render_plate

    plate = root / "raw" / f"real{n_images}"
    if not plate.exists():
        wells = WELLS[:max(1, n_images // 2)]
        ratios = {well: 2.0 if i % 2 == 0 else 1.0 for i, well in enumerate(wells)}
        render_plate(plate, root / f"real{n_images}_truth", wells=wells, sites_per_well=2, shape=(1024, 1024), seed=5,
                     well_ratios=ratios)
    return plate


def cpu_counters():
    """(busy core-seconds of the whole machine, core-seconds of this process's finished children)."""
    import resource

    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy / os.sysconf("SC_CLK_TCK"), children.ru_utime + children.ru_stime


def others_cpu(before, after):
    """Core-seconds used by other processes between two :func:`cpu_counters` readings."""
    return (after[0] - before[0]) - (after[1] - before[1])


def real(root, n_images=8):
    """CellAnalysis: one worker process, then two sharing a luigid."""
    from luigi_tasks import scheduler
    from luigi_tasks.testing import free_port

    plate = real_plate(root, n_images)
    sizes = json.dumps(dict.fromkeys(REAL_JOBS, max(1, n_images // 2)))
    base = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
            "--batchlib-max-batch-sizes", sizes]
    one = root / "out" / f"real{n_images}_one"
    shutil.rmtree(one, ignore_errors=True)
    start1 = cpu_counters()
    wall1, code1, rss1, _ = run(base + ["--output", str(one), "--local-scheduler", "--workers", "1"], env=ONE_THREAD)
    end1 = cpu_counters()
    totals = status_totals(one)
    two = root / "out" / f"real{n_images}_two"
    shutil.rmtree(two, ignore_errors=True)
    state, port = root / "luigid", free_port()
    shutil.rmtree(state, ignore_errors=True)  # a fresh scheduler: no memory of earlier bench runs
    scheduler.start(state, port=port)
    try:
        command = base + ["--output", str(two), "--workers", "1", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port),
                          "--worker-keep-alive", "--worker-max-keep-alive-idle-duration", "120 seconds", "--no-lock"]
        env = dict(os.environ, PYTHONPATH=str(ROOT), **ONE_THREAD)
        start2, started = cpu_counters(), time.perf_counter()
        processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for _ in range(2)]
        codes = [p.wait() for p in processes]
        wall2, end2 = time.perf_counter() - started, cpu_counters()
    finally:
        scheduler.stop(state)
    totals2 = status_totals(two)
    forks = root / "out" / f"real{n_images}_forks"
    shutil.rmtree(forks, ignore_errors=True)
    start3 = cpu_counters()
    wall3, code3, _, _ = run(base + ["--output", str(forks), "--local-scheduler", "--workers", "2"], env=ONE_THREAD)
    end3 = cpu_counters()
    row = {"images": n_images, "exit_one": code1, "exit_two": codes, "wall_one_worker_s": wall1,
           "wall_two_workers_s": wall2, "speedup": wall1 / wall2,
           "exit_one_process_workers_2": code3, "wall_one_process_workers_2_s": wall3, "speedup_workers_2": wall1 / wall3,
           "others_cpu_workers_2_s": others_cpu(start3, end3), "job_s": totals["job_seconds"],
           "job_s_per_image": totals["job_seconds"] / n_images, "overhead_share": (wall1 - totals["job_seconds"]) / wall1,
           "own_cpu_one_s": end1[1] - start1[1], "own_cpu_two_s": end2[1] - start2[1],
           "others_cpu_one_s": others_cpu(start1, end1), "others_cpu_two_s": others_cpu(start2, end2),
           "worker_rss_mb": rss1, "image_task_rss_mb": max(totals["image_rss"], totals2["image_rss"]),
           "plate_task_rss_mb": max(totals["plate_rss"], totals2["plate_rss"])}
    print("real CellAnalysis: " + _format(row), flush=True)
    return row


def _format(row):
    return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_scale"), help="work folder (reused)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 864], help="plate sizes for the overhead")
    parser.add_argument("--real-images", type=int, default=8, help="images of the real plate")
    parser.add_argument("--only", nargs="+", choices=("overhead", "noop", "new", "complete", "batching", "real"),
                        default=("real", "overhead", "noop", "new", "complete", "batching"))
    args = parser.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)
    print(f"bench/scale.py on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    saved = args.root / "results.json"
    results = json.loads(saved.read_text()) if saved.exists() else {}  # sections not run keep their last figures
    if "real" in args.only:
        results["real"] = real(args.root, args.real_images)
    per_image = results.get("real", {}).get("job_s_per_image")
    if "overhead" in args.only:
        results["overhead"] = overhead(args.root, args.sizes, per_image)
    if "noop" in args.only:
        results["noop"] = noop(args.root, max(args.sizes))
    if "complete" in args.only:
        results["complete"] = completeness(args.root, n_images=max(args.sizes))
    if "new" in args.only:
        results["new"] = new_images(args.root, max(args.sizes))
    if "batching" in args.only:
        results["batching"] = batching(args.root)
    saved.write_text(json.dumps(results, indent=1, default=str))
    print(f"all figures: {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
