"""Start-up of CellAnalysis on a plate, and its no-op rerun: what a run pays before its first job.

    python bench/startup.py [--plate /tmp/bench_plate/raw/plate_96x9] [--done OUT] [--workers 2] [--repeat 3]

Start-up: ``luigi --module antibodies CellAnalysis --plate P --output O --local-scheduler --workers N``
on an empty output folder, from process start to the first record of an image job in
``O/batchlib/CellAnalysis.log`` (as ``bench/plate.py`` reads it); the run is then stopped.
Its CPU seconds are those of the scheduling process and its task processes at that moment.
No-op rerun: the same command on ``--done``, a finished output folder of the same plate
(``bench/plate.py`` leaves one in ``/tmp/bench_plate/out``); wall and CPU of the whole run.
The plate is made by ``bench/plate.py`` (``--wells 96 --sites 9``: 864 images). The load average
is printed with each figure: the machine may be shared.
"""
import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.plate import first_job_record, loadavg  # noqa: E402


def command(plate, output, workers):
    """The user's command line."""
    return [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--plate", str(plate),
            "--output", str(output), "--local-scheduler", "--workers", str(workers)]


def _tree_cpu(pid):
    try:
        processes = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            cpu = process.cpu_times()
            total += cpu.user + cpu.system
        except psutil.Error:
            continue
    return total


def startup(plate, workers, timeout=120.0):
    """Return ``(seconds to the first job record, CPU seconds until then, load)``; stop the run there."""
    output = Path(tempfile.mkdtemp(prefix="startup_")) / "out"
    load = loadavg()
    started_at = time.time()
    process = subprocess.Popen(command(plate, output, workers), cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    log, seconds, cpu = output / "batchlib" / "CellAnalysis.log", None, 0.0
    while time.time() - started_at < timeout and process.poll() is None:
        cpu = max(cpu, _tree_cpu(process.pid))
        if log.exists():
            seconds = first_job_record(output, started_at)
            if seconds is not None:
                break
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    shutil.rmtree(output.parent, ignore_errors=True)
    return seconds, cpu, load


def noop(plate, done, workers):
    """Return ``(wall seconds, CPU seconds, exit code, load)`` of a run on the finished folder ``done``."""
    load, before = loadavg(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    code = subprocess.run(command(plate, done, workers), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT))).returncode
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, code, load


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", type=Path, default=Path("/tmp/bench_plate/raw/plate_96x9"))
    parser.add_argument("--done", type=Path, help="a finished output folder of the plate (no-op rerun)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    for _ in range(args.repeat):
        seconds, cpu, load = startup(args.plate, args.workers)
        shown = f"{seconds:.2f} s" if seconds is not None else "no job record"
        print(f"start-up to the first job record {shown}, CPU {cpu:.2f} s (load {load})", flush=True)
        if args.done:
            wall, cpu, code, load = noop(args.plate, args.done, args.workers)
            print(f"no-op rerun {wall:.2f} s, CPU {cpu:.2f} s, exit {code} (load {load})", flush=True)


if __name__ == "__main__":
    main()
