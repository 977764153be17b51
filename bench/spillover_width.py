"""The measured spillover width of processed plates, what measuring it costs, and what it does to the scores.

    python bench/spillover_width.py /tmp/bench_generalization/out/default/tune_standard_scheme1 [...] [--scale 2.0]
    python bench/spillover_width.py PLATES... --truth /tmp/bench_generalization --scales 1.5,2,2.5,3 --fits counts

For each processed plate folder (the output of ``CellAnalysis``), per serum:
the plate's `exchange_width` (the first, relative fit) and
`count_exchange_width` (what the default ``[scores] spillover = measured``
scales by ``spillover_scale``), the width the scores use, and the CPU seconds per image of reading the container and
`border_exchange_sums` (`antibodies.tasks.spillover.container_exchange_sums`, as
``PlateScores`` runs it), with the local backgrounds of the default
``[background] method = local``.

With ``--truth ROOT`` (a ``bench/generalization.py`` root: ``ROOT/truth/<plate>``
and ``ROOT/raw/<plate>``) it also rescores the plate offline, from its own calls
and means (`bench/score_errors.py`), with the fixed width and with each scale
times each fit (``counts x2`` is what the default runs), and
prints the median absolute relative error of the well scores and the mean
absolute error of the positive wells. ``--csv`` keeps those rows.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

def plate_sums(folder):
    """Serum -> (summed `border_exchange_sums` over the plate's containers, median CPU-s per image)."""
    from antibodies.tasks.spillover import container_exchange_sums
    from luigi_tasks.io import list_tables, open_file

    containers = sorted(Path(folder).glob("*.h5"))
    with open_file(containers[0]) as container:
        sera = [t.split("/")[-1] for t in list_tables(container) if t.split("/")[-1].startswith("serum_")]
    result = {}
    for serum in sera:
        total, seconds = None, []
        for path in containers:
            started = time.process_time()
            part = container_exchange_sums(path, [serum])[serum]
            seconds.append(time.process_time() - started)
            total = part if total is None else total + part
        result[serum] = (total, float(np.median(seconds)))
    return result


def rescored_errors(root, folder, serum, widths):
    """Width name -> (median |relative error| of the well scores, mean |error| of the positive wells)."""
    from score_errors import _errors, image_cells

    plate = Path(folder).name
    wells = pd.read_csv(root / "truth" / plate / "wells.csv").set_index("well_name")
    parts = []
    for truth_path in sorted((root / "truth" / plate).glob("*.npz")):
        container = Path(folder) / f"{truth_path.stem}.h5"
        bare, unit = (image_cells(container, truth_path, [serum], w) for w in (0.0, 1.0))
        raw = bare[f"{serum} ours"]
        parts.append(pd.DataFrame({"called": bare["called"], "raw": raw, "unit": unit[f"{serum} ours"] - raw,
                                   "well": truth_path.stem[4:7]}))
    cells = pd.concat(parts)
    result = {}
    for name, width in widths.items():
        cells["value"] = cells["raw"] + width * cells["unit"]  # the compensation is linear in the width
        errors = _errors(cells.groupby("well"), wells, serum, "value", "called")
        positive = [abs(e) for well, e in errors.items() if wells.at[well, "is_positive"]]
        result[name] = (float(np.median(np.abs(list(errors.values())))), float(np.mean(positive)))
    return result


def main():
    from antibodies.analysis.spillover import MeasuredSpillover, exchange_width

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plates", nargs="+", help="processed plate folders")
    parser.add_argument("--scale", type=float, default=2.0, help="as [scores] spillover_scale")
    parser.add_argument("--fixed", type=float, default=0.5, help="as [scores] spillover_width")
    parser.add_argument("--truth", type=Path, help="bench/generalization.py root: rescore against the truth")
    parser.add_argument("--scales", default="2", help="scales of each fit to rescore with")
    parser.add_argument("--fits", default="relative,counts", help="fits to rescore with: relative, counts")
    parser.add_argument("--csv", type=Path, help="write the rescored rows here")
    args = parser.parse_args()
    rows = []
    for folder in args.plates:
        for serum, (sums, seconds) in plate_sums(folder).items():
            measured = MeasuredSpillover(scale=args.scale, fallback=args.fixed)
            relative, counts = exchange_width(sums, measured.min_support), measured.estimate(sums)
            shown = " ".join("none" if e is None else f"{e:.3f}" for e in (relative, counts))
            width = measured.widths({serum: sums}, [serum])[serum]
            print(f"{Path(folder).name:40s} {serum:10s} estimate (relative, counts) {shown} px -> width {width:.2f} px "
                  f" {seconds:.3f} CPU-s per image", flush=True)
            if args.truth is None:
                continue
            estimates = {"relative": relative, "counts": counts}
            widths = {"fixed": args.fixed, **{
                f"{fit} x{c}": args.fixed if estimates[fit] is None else max(float(c) * estimates[fit], 0.0)
                for fit in args.fits.split(",") for c in args.scales.split(",")}}
            errors = rescored_errors(args.truth, folder, serum, widths)
            print("    " + "  ".join(f"{name} {100 * e:.2f} % (pos {100 * p:.2f} %)"
                                     for name, (e, p) in errors.items()))
            rows.append({"plate": Path(folder).name, "serum": serum, "relative": relative, "counts": counts,
                         **{name: e for name, (e, _) in errors.items()},
                         **{f"{name}_pos": p for name, (_, p) in errors.items()}})
    if args.csv and rows:
        pd.DataFrame(rows).to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
