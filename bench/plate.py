"""A whole plate of the real CellAnalysis as a user runs it: wall, CPU, bytes written, memory, no-op rerun.

    python bench/plate.py [--workers 2] [--wells 96] [--sites 9] [--distinct 24] [--root /tmp/bench_plate] \\
                          [-- EXTRA CellAnalysis ARGUMENTS, e.g. --nuclei-model vero_nuclei_v6]

The plate is ``--wells`` x ``--sites`` images of 930x1024 pixels, 4 channels
(scheme 1: DAPI, WF_GFP, TRITC, WF_Cy5), named as the microscope names them.
``--distinct`` images are rendered with the project's synthetic renderer and
hard-linked under all the names (rendering 864 takes too long); every name is
still processed as its own image. Then, with ``--workers N``::

    luigi --module antibodies CellAnalysis --plate P --output O --local-scheduler --workers N

runs on an empty output folder (all cores of the machine; nothing is pinned),
and once more on the finished plate (the no-op rerun). Printed:

* wall time, CPU seconds per image (the ``luigi`` process and every process it
  started, including the StarDist servers, which are not its children);
* bytes written to disk (``ru_oublock`` of the waited-for processes, the figure
  GNU ``time -v`` prints as "File system outputs", plus the servers' own
  ``write_bytes``) against the bytes of the outputs (the output folder's size);
* peak RSS per process kind (scheduling process, task processes, StarDist servers);
* start-up: interpreter, imports and planning until the first image job works
  (from the first job record in the run's log), and ``import antibodies`` alone;
* per-step breakdown: seconds of each job's tasks (``OUT/batchlib/<Job>.status``).

Timing depends on what else runs on the machine: the load (``/proc/loadavg``)
before and after, and the CPU time other processes used meanwhile, are printed
with the figures. ``--json FILE`` keeps them.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEME = "scheme1"
CHANNELS = ("DAPI", "WF_GFP", "TRITC", "WF_Cy5")
SHAPE = (930, 1024)
ROWS = "ABCDEFGH"
STEPS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures", "PlateBackground",
         "InfectionDecision", "InfectedCells", "BorderExchange", "PlateScores", "PlateExports", "PlateReport")
SERVER_MARK = "antibodies.models.server"


def well_names(n_wells):
    return [f"{ROWS[i // 12]}{i % 12 + 1:02d}" for i in range(n_wells)]


def render_distinct(root, n_distinct):
    """Render ``n_distinct`` images (wells of 2 sites, alternating positive and negative ratios)."""
    from antibodies.synthetic.plate import render_plate

    folder = root / f"distinct{n_distinct}"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        wells = well_names(max(1, n_distinct // 2))
        ratios = {well: (2.0 if i % 2 == 0 else 1.05) for i, well in enumerate(wells)}
        render_plate(folder / "plate", folder / "truth", scheme=SCHEME, wells=wells, sites_per_well=2, shape=SHAPE,
                     seed=13, well_ratios=ratios)
        (folder / "done").write_text("")
    return sorted((folder / "plate").glob("*.tiff"))[:n_distinct], folder / "plate" / "channel_mapping.json"


def make_plate(root, n_wells, n_sites, n_distinct):
    """A plate folder of ``n_wells`` x ``n_sites`` hard links to the distinct images."""
    from antibodies.synthetic.plate import image_file_name

    distinct, mapping = render_distinct(root, n_distinct)
    plate = root / "raw" / f"plate_{n_wells}x{n_sites}"
    if not (plate / "done").exists():
        shutil.rmtree(plate, ignore_errors=True)
        plate.mkdir(parents=True)
        shutil.copy(mapping, plate / mapping.name)
        number = 0
        for site in range(1, n_sites + 1):
            for well in well_names(n_wells):
                number += 1
                os.link(distinct[number % len(distinct)], plate / image_file_name(well, site, CHANNELS, number))
        (plate / "done").write_text("")
    return plate


def folder_bytes(folder):
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def busy_seconds():
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def loadavg():
    return Path("/proc/loadavg").read_text().split()[0]


def cpu_description():
    """The CPU model, its cores and its widest vector unit: the figures depend on them (docs/performance.md)."""
    lines = Path("/proc/cpuinfo").read_text().splitlines()

    def first(name):  # the value of the first line of this field (every core repeats it)
        return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), "")

    flags = set(first("flags").split())
    vector = "AVX-512" if "avx512f" in flags else "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"
    return f"{first('model name') or '?'}, {os.cpu_count()} cores, {vector}"


class Watch:
    """Sample the processes of a run: peak RSS per kind and the last CPU / write counters of non-children."""

    def __init__(self, pid):
        self.pid, self.peak, self.servers = pid, {}, {}

    def kind(self, process):
        if process.pid == self.pid:
            return "scheduling process"
        cmdline = " ".join(process.cmdline())
        return "StarDist server" if SERVER_MARK in cmdline else "task process"

    def sample(self):
        try:
            processes = [psutil.Process(self.pid)] + psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            processes = []
        processes += [p for p in psutil.process_iter() if p.pid not in {q.pid for q in processes}
                      and _is_server(p, self.pid)]
        for process in processes:
            try:
                kind, rss = self.kind(process), process.memory_info().rss / 2**20
                if kind == "StarDist server":
                    cpu, io = process.cpu_times(), process.io_counters()
                    self.servers[process.pid] = (cpu.user + cpu.system, io.write_bytes)
            except psutil.Error:
                continue
            self.peak[kind] = max(self.peak.get(kind, 0.0), rss)


def _is_server(process, owner):
    try:
        cmdline = process.cmdline()
    except psutil.Error:
        return False
    return any(SERVER_MARK in part for part in cmdline) and str(owner) in cmdline


def run_luigi(plate, output, workers, log_path, extra=(), sample=0.5):
    """Run CellAnalysis (with ``extra`` arguments); return a dict of figures."""
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
               "--output", str(output), "--local-scheduler", "--workers", str(workers), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    before_usage, before_busy, load = resource.getrusage(resource.RUSAGE_CHILDREN), busy_seconds(), loadavg()
    started_at, started = time.time(), time.perf_counter()
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
    watch = Watch(process.pid)
    while process.poll() is None:
        watch.sample()
        time.sleep(sample)
    wall = time.perf_counter() - started
    time.sleep(1.0)  # servers leave within a second of the run
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (usage.ru_utime - before_usage.ru_utime) + (usage.ru_stime - before_usage.ru_stime)
    server_cpu = sum(cpu for cpu, _ in watch.servers.values())
    server_written = sum(written for _, written in watch.servers.values())
    written = (usage.ru_oublock - before_usage.ru_oublock) * 512 + server_written
    figures = {"command": " ".join(command[1:]), "exit": process.returncode, "wall_s": wall,
               "cpu_s": own_cpu + server_cpu, "server_cpu_s": server_cpu, "servers": len(watch.servers),
               "others_cpu_s": max(0.0, busy_seconds() - before_busy - own_cpu - server_cpu),
               "bytes_written": written, "load_before": load, "load_after": loadavg(),
               "peak_rss_mb": watch.peak, "started_at": started_at}
    if process.returncode != 0:
        print(Path(log_path).read_text()[-3000:], file=sys.stderr)
    return figures


def first_job_record(output, since):
    """Seconds from ``since`` to the first record of an image job in the run's log (None if none)."""
    pattern = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \[\w+\] Workflow\.(\w+) ")
    for line in (Path(output) / "batchlib" / "CellAnalysis.log").read_text().splitlines():
        match = pattern.match(line)
        if match and match.group(2) in STEPS:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= since - 1:
                return stamp - since
    return None


def step_seconds(output):
    seconds = {}
    for step in STEPS:
        path = Path(output) / "batchlib" / f"{step}.status"
        if path.exists():
            status = json.loads(path.read_text())
            seconds[step] = (status.get("seconds", 0.0), status.get("peak_rss_mb", 0.0))
    return seconds


def compare_outputs(output, reference):
    """Return ``container:key`` of every output (image level s0, table, dataset) that differs from ``reference``.

    Every key of every container's provenance index and of the plate tables file is
    compared, and the CSV exports byte for byte.
    """
    import h5py

    from luigi_tasks.provenance import read_index
    from tests.fault_injection import same_data

    keys = {}
    for path in sorted(Path(reference).glob("*.h5")) + sorted(Path(reference).glob("*_tables.hdf5")):
        with h5py.File(path, "r") as f:
            keys[path.name] = [key for key, stamp in read_index(f).items() if not stamp.failed]
    differ = same_data(output, reference, keys)
    differ += [csv.name for csv in Path(reference).glob("*.csv")
               if (Path(output) / csv.name).read_bytes() != csv.read_bytes()]
    return differ, sum(len(k) for k in keys.values())


def import_seconds():
    """Wall seconds of ``python -c 'import antibodies'`` (what every luigi --module antibodies run imports)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import antibodies.workflow"], cwd=ROOT, check=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return time.perf_counter() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wells", type=int, default=96, help="wells (row by row from A01; at most 96)")
    parser.add_argument("--sites", type=int, default=9, help="sites per well")
    parser.add_argument("--distinct", type=int, default=24, help="images rendered (the rest are hard links)")
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_plate"))
    parser.add_argument("--tag", default="", help="output folder suffix (keeps outputs of runs to compare)")
    parser.add_argument("--keep", action="store_true", help="keep an existing output folder (resume)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--compare", type=Path, help="an output folder of the same plate: compare every output")
    parser.add_argument("extra", nargs="*", help="after --: extra CellAnalysis arguments (e.g. --nuclei-model M)")
    args = parser.parse_args(argv)
    plate = make_plate(args.root, args.wells, args.sites, args.distinct)
    n_images = args.wells * args.sites
    output = args.root / "out" / f"{plate.name}_w{args.workers}{args.tag}"
    if not args.keep:
        shutil.rmtree(output, ignore_errors=True)
    run = run_luigi(plate, output, args.workers, args.root / f"{output.name}.log", args.extra)
    run["startup_s"] = first_job_record(output, run["started_at"])
    run["output_bytes"] = folder_bytes(output)
    noop = run_luigi(plate, output, args.workers, args.root / f"{output.name}.noop.log", args.extra)
    steps = step_seconds(output)
    imports = import_seconds()
    result = {"images": n_images, "workers": args.workers, "run": run, "noop_wall_s": noop["wall_s"],
              "noop_exit": noop["exit"], "import_antibodies_s": imports, "steps": steps,
              "cpu": cpu_description()}
    print(f"== {n_images} images ({args.wells} wells x {args.sites} sites, {args.distinct} distinct), "
          f"{SHAPE[0]}x{SHAPE[1]}, 4 channels; --workers {args.workers}; exit {run['exit']}")
    print(f"CPU: {result['cpu']}")
    print(f"load before/after {run['load_before']}/{run['load_after']}; CPU of other processes meanwhile "
          f"{run['others_cpu_s']:.0f} s")
    print(f"wall {run['wall_s']:.1f} s = {run['wall_s'] / 60:.2f} min; CPU {run['cpu_s']:.0f} s = "
          f"{run['cpu_s'] / n_images:.2f} CPU-s per image (StarDist servers {run['servers']}: "
          f"{run['server_cpu_s']:.0f} s)")
    print(f"bytes written {run['bytes_written'] / 1e9:.3f} GB for {run['output_bytes'] / 1e9:.3f} GB of outputs "
          f"= {run['bytes_written'] / max(1, run['output_bytes']):.2f}x")
    print("peak RSS: " + ", ".join(f"{kind} {mb:.0f} MiB" for kind, mb in sorted(run["peak_rss_mb"].items())))
    startup = run["startup_s"]
    print(f"start-up to the first job record {startup:.1f} s; import antibodies.workflow {imports:.1f} s"
          if startup is not None else f"start-up: no job record; import antibodies.workflow {imports:.1f} s")
    print(f"no-op rerun {noop['wall_s']:.1f} s (exit {noop['exit']}, load {noop['load_before']})")
    print("per step (task seconds, per image; peak RSS of its processes):")
    for step, (seconds, rss) in steps.items():
        print(f"  {step:20s} {seconds:8.1f} s  {seconds / n_images:6.3f} s/image  {rss:6.0f} MiB")
    if args.compare:
        differ, n_keys = compare_outputs(output, args.compare)
        result["differ"] = differ
        print(f"compared with {args.compare}: {n_keys} keys and the CSV files, {len(differ)} differ "
              f"{differ[:10]}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0 if run["exit"] == 0 and noop["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
