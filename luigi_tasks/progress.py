"""``python -m luigi_tasks.progress OUT_DIR [OUT_DIR ...]``: plate progress read from the outputs on disk.

Prints images done of total for plate output folders (or of every plate
folder below a folder). The plan record and the progress computation live in
:mod:`luigi_tasks.plan_progress`; this module is only the
command line, so running it with ``-m`` never meets a copy of itself imported
by the package.
"""
import argparse
import json
import os
import sys
from pathlib import Path

from .plan_progress import PLAN_FILE, plate_progress
from .status import status_dir

__all__ = ["find_plate_outputs", "main"]


def find_plate_outputs(folder):
    """Return ``folder`` if it is a plate output folder, else the plate output folders below it."""
    folder = Path(folder)
    if (status_dir(folder) / PLAN_FILE).exists():
        return [folder]
    return sorted(path.parents[1] for path in folder.glob(f"*/{status_dir('.').name}/{PLAN_FILE}"))


def _refused_runs(folder):
    """Lines for plates in ``folder`` (or its subfolders) whose last run was refused at planning."""
    lines = []
    for path in sorted(Path(folder).glob("batchlib/*.status")) + sorted(Path(folder).glob("*/batchlib/*.status")):
        try:
            status = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if status.get("state") == "refused":
            lines.append(f"{path.parents[1].name}: last run refused: {status.get('reason', '')}")
    return lines


def _describe(progress, verbose):
    line = f"{progress.plate}: {progress.message()}"
    if verbose:
        jobs = ", ".join(f"{name} {count}" for name, count in progress.per_job.items())
        tables = ", ".join(f"{name} {'done' if ok else 'pending'}" for name, ok in progress.plate_jobs.items())
        tables += " (some leave failed images out)" if progress.partial else ""
        line += f"\n  image jobs: {jobs}\n  plate jobs: {tables}"
    return line


def main(argv=None):
    """Print images done of total for plate output folders; exit 0 if all are complete, 1 if not, 2 on error.

    A plate whose tables were written leaving its failed images out (``--ignore-failed-outputs``) is complete;
    one whose last run was refused (invalid inputs, configuration) is not.
    """
    parser = argparse.ArgumentParser(description="Plate progress read from the outputs on disk.")
    parser.add_argument("folders", nargs="+", help="plate output folder(s), or folder(s) holding plate output folders")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list images done per job")
    args = parser.parse_args(argv)
    outputs = [plate for folder in args.folders for plate in find_plate_outputs(folder)]
    refused = [line for folder in args.folders for line in _refused_runs(folder)]
    for line in refused:
        print(line)
    if refused and not outputs:
        return 1
    if not outputs:
        print(f"no planned plate output folder in {', '.join(args.folders)} (no batchlib/{PLAN_FILE})", file=sys.stderr)
        return 2
    complete = True
    for output in outputs:
        progress = plate_progress(output, save=os.access(status_dir(output), os.W_OK))
        print(_describe(progress, args.verbose))
        complete = complete and progress.complete
    return 0 if complete and not refused else 1


if __name__ == "__main__":
    sys.exit(main())
