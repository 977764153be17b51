"""The measured spillover width of processed plates, and what measuring it costs.

    python bench/spillover_width.py /tmp/bench_generalization/out/default/tune_standard_scheme1 [...] [--scale 2.0]

For each processed plate folder (the output of ``CellAnalysis``), per serum:
the plate's `exchange_width` (what ``[scores] spillover = measured`` scales by
``spillover_scale``), the width the scores would use, and the CPU seconds per
image of reading the container and `border_exchange_sums`
(`antibodies.tasks.scores.container_exchange_sums`, as ``PlateScores`` runs it),
with the local backgrounds of the default ``[background] method = local``.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def plate_figures(folder, scale):
    """Yield ``(serum, estimate, width, CPU-s per image, images)`` of one processed plate."""
    from antibodies.analysis.spillover import MeasuredSpillover, exchange_width
    from antibodies.tasks.scores import container_exchange_sums
    from luigi_tasks.io import list_tables, open_file

    containers = sorted(Path(folder).glob("*.h5"))
    with open_file(containers[0]) as container:
        sera = [t.split("/")[-1] for t in list_tables(container) if t.split("/")[-1].startswith("serum_")]
    for serum in sera:
        total, seconds = None, []
        for path in containers:
            started = time.process_time()
            part = container_exchange_sums(path, [serum])[serum]
            seconds.append(time.process_time() - started)
            total = part if total is None else total + part
        width = MeasuredSpillover(scale=scale).widths({serum: total}, [serum])[serum]
        yield serum, exchange_width(total), width, float(np.median(seconds)), len(containers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plates", nargs="+", help="processed plate folders")
    parser.add_argument("--scale", type=float, default=2.0, help="as [scores] spillover_scale")
    args = parser.parse_args()
    for folder in args.plates:
        for serum, estimate, width, seconds, count in plate_figures(folder, args.scale):
            shown = "none" if estimate is None else f"{estimate:.3f}"
            print(f"{Path(folder).name:36s} {serum:10s} estimate {shown} px -> width {width:.2f} px  "
                  f"{seconds:.3f} CPU-s per image (median of {count})")


if __name__ == "__main__":
    main()
