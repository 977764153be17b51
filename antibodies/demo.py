"""Render the bundled demo plate and process it: ``python -m antibodies.demo --out demo``.

The demo plate is synthetic (see :mod:`antibodies.synthetic.plate`): 6 wells x 2
sites of 1024x1024 4-channel images with known nuclei, cells, infected cells and
per-well serum ratios, so the run ends by comparing its results with the truth.
"""
import argparse
import logging
import stat
import sys
from pathlib import Path

import luigi

from luigi_tasks import read_status, use_local_lock

from .evaluation import evaluate_plate
from .workflow import CellAnalysis

__all__ = ["render_demo_plate", "main"]

DEMO_WELLS = ("A01", "A02", "A03", "B01", "B02", "B03")
DEMO_RATIOS = {"A01": 2.6, "A02": 1.0, "A03": 1.9, "B01": 1.05, "B02": 1.5, "B03": 1.1}
logger = logging.getLogger("Workflow.demo")


def render_demo_plate(root):
    """Render the demo plate into ``root/raw/demo_plate`` (read-only) and its truth into ``root/truth``."""
    from .synthetic.plate import render_plate

    plate = Path(root) / "raw" / "demo_plate"
    if not plate.exists():
        render_plate(plate, Path(root) / "truth", scheme="scheme1", wells=DEMO_WELLS, sites_per_well=2,
                     shape=(1024, 1024), seed=11, well_ratios=DEMO_RATIOS)
        for path in [plate, *plate.iterdir()]:
            path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return plate


def main(argv=None):
    """Render (once) and process the demo plate; print the plate, the results and how they compare with the truth."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo", help="folder for the raw demo plate, truth and results")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    root = Path(args.out).resolve()
    plate = render_demo_plate(root)
    output = root / "results"
    use_local_lock(True)
    ok = luigi.build([CellAnalysis(plate=str(plate), output=str(output))], local_scheduler=True, workers=args.workers)
    status = read_status(output, "CellAnalysis")  # tables, report and log: see the run summary above
    print(f"\nDemo plate: {plate}\nResults:    {output} ({status.get('state')})")
    if ok:
        _, figures = evaluate_plate(output, root / "truth", plate.name)
        print("  vs truth: " + ", ".join(f"{key} {value:.3f}" for key, value in figures.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
