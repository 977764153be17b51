"""Two runs of the same bench plates, well by well: where does a change move the scores?

    python bench/paired_scores.py BASE NEW [--plates p1,p2,...] [--root /tmp/bench_generalization]

BASE and NEW are output variants of ``bench/generalization.py`` (folders under
``ROOT/out``; a plate is taken from the first variant folder that has it when
BASE is a comma separated list). Per plate's median the relative error of a
well score is noisy: about half the wells are negative (true ratio < 1.3),
where the cell split or a background hardly matters. Printed: mean and mean
absolute relative error of the positive and of the negative well scores in
both runs, how many positive scores NEW brought closer to the truth, and per
plate and serum the median absolute error of both.
"""
import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POSITIVE_RATIO = 1.3


def well_errors(root, variant, plate):
    """Relative error (%) of every scored well of ``plate`` in ``variant``: rows (serum, well, true, error)."""
    from antibodies.keys import WELL_TABLE
    from luigi_tasks.io import open_file, read_table

    truth = pd.read_csv(root / "truth" / plate / "wells.csv").set_index("well_name")
    with open_file(root / "out" / variant / plate / f"{plate}_tables.hdf5") as container:
        wells = read_table(container, WELL_TABLE).set_index("well_name")
    rows = []
    for column in [c for c in truth.columns if c.startswith("ratio_")]:
        serum = column.removeprefix("ratio_")
        error = (100 * (wells[f"{serum}_score"] - truth[column]) / truth[column]).dropna()
        rows += [{"plate": plate, "serum": serum, "well": well, "true": truth.at[well, column], "error": value}
                 for well, value in error.items()]
    return pd.DataFrame(rows)


def paired(root, bases, new, plates):
    """One row per well scored in both runs, with columns ``base`` and ``new`` (relative errors, %)."""
    frames = []
    for plate in plates:
        base = next(b for b in bases if (root / "out" / b / plate).exists())
        both = well_errors(root, base, plate).merge(well_errors(root, new, plate), on=["plate", "serum", "well", "true"],
                                                    suffixes=("_base", "_new"))
        frames.append(both.rename(columns={"error_base": "base", "error_new": "new"}))
    return pd.concat(frames, ignore_index=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="variant folder(s) of the reference run, comma separated")
    parser.add_argument("new", help="variant folder of the run to compare")
    parser.add_argument("--plates", default="", help="comma separated plates (default: all in NEW)")
    parser.add_argument("--root", default="/tmp/bench_generalization")
    args = parser.parse_args()
    root = Path(args.root)
    plates = args.plates.split(",") if args.plates else sorted(p.name for p in (root / "out" / args.new).iterdir())
    table = paired(root, args.base.split(","), args.new, plates)
    for name, group in (("positive", table[table.true >= POSITIVE_RATIO]), ("negative", table[table.true < POSITIVE_RATIO])):
        print(f"{name} well scores ({len(group)}): mean error {group.base.mean():+.2f} -> {group.new.mean():+.2f} %, "
              f"mean absolute {group.base.abs().mean():.2f} -> {group.new.abs().mean():.2f} %, "
              f"closer in {(group.new.abs() < group.base.abs()).sum()}")
    print(f"all ({len(table)}): median absolute {table.base.abs().median():.2f} -> {table.new.abs().median():.2f} %")
    medians = table.groupby(["plate", "serum"])[["base", "new"]].agg(lambda e: e.abs().median())
    print(medians.round(2).to_string())


if __name__ == "__main__":
    main()
