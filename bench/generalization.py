"""Readouts on plate families: held-out figures per family and channel scheme.

    python bench/generalization.py                                # held-out families, all schemes
    python bench/generalization.py --role tune                    # the families methods may be chosen on
    python bench/generalization.py --role tune --variant plate_fixed -- --background-method plate \\
        --infection-method fixed                                  # a variant, on the tune families only
    python bench/generalization.py --role tune --plate-index 1    # fresh renders: each family's next seed

Each family (``antibodies.synthetic.nuisance.FAMILIES``, and the second
renderer's ``antibodies.synthetic.second_renderer.SECOND_FAMILIES``) and scheme gets one
rendered plate (``--wells`` wells x ``--sites`` sites, the last well
mock-infected), processed by ``luigi --module antibodies CellAnalysis`` with
the given extra arguments. Printed per plate: nuclei and cells F1@0.5,
infected-cell accuracy (mean and worst image), and per serum the well score
Pearson and median relative error against the true ratio, pos/neg AUC, wrong
positive/negative calls, inconclusive calls (a score whose interval holds the
cut-off), wells without a score (negative ones in brackets);
the fraction of cells called infected in the mock-infected well; the worst
family last. Rendered plates and outputs are kept under ``--root``; a variant
starts from a copy of the default outputs, so only what it changes is
recomputed. ``--plate-index N`` renders each family's plate number N (seed
``family.seed + N``; folders ``<family>_<scheme>_p<N>``): fresh plates of the
same ranges, to replicate a figure on data it has never seen. Held-out
families never choose a method or a number: use ``--role tune`` for that.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = {"scheme1": (1024, 1024), "scheme2": (1024, 1024), "scheme3": (1024, 1024),
           "scheme4": (930, 1024), "scheme5": (1024, 1024)}
WELL_ROWS = "ABCDEFGH"


def well_names(n_wells):
    return [f"{WELL_ROWS[i // 12]}{i % 12 + 1:02d}" for i in range(n_wells)]


def plate_suffix(plate_index):
    """``_p<N>`` for a family's plate number N > 0 (folders and results files); plate 0 has none."""
    return f"_p{plate_index}" if plate_index else ""


def plate_name(family, scheme, plate_index=0):
    """Folder name of a family's plate: ``<family>_<scheme>`` and its `plate_suffix`."""
    return f"{family}_{scheme}{plate_suffix(plate_index)}"


def render(root, family, scheme, n_wells, sites, plate_index=0):
    from antibodies.synthetic.plate import render_family_plate
    from antibodies.synthetic.second_renderer import SECOND_FAMILIES, render_second_plate

    plate = root / "raw" / plate_name(family, scheme, plate_index)
    truth = root / "truth" / plate.name
    if not (truth / "wells.csv").exists():
        shutil.rmtree(plate, ignore_errors=True)
        wells = well_names(n_wells)
        renderer = render_second_plate if family in SECOND_FAMILIES else render_family_plate
        renderer(family, scheme, plate, truth, wells=wells, sites=sites, shape=SCHEMES[scheme],
                 mock_wells=wells[-1:], plate_index=plate_index)
    return plate, truth


def process(plate, output, extra, workers):
    command = [sys.executable, "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--local-scheduler",
               "--plate", str(plate), "--output", str(output), "--workers", str(workers), *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def evaluate(root, family, scheme, args):
    from antibodies.evaluation import evaluate_plate

    plate, truth = render(root, family, scheme, args.wells, args.sites, args.plate_index)
    default = root / "out" / "default" / plate.name
    output = root / "out" / args.variant / plate.name
    if args.variant != "default" and not output.exists() and default.exists():
        shutil.copytree(default, output)
    seconds = process(plate, output, args.extra, args.workers)
    roles = json.loads((plate / "channel_mapping.json").read_text())
    images, figures = evaluate_plate(output, truth, plate.name, roles)
    return {"family": family, "scheme": scheme, "plate_index": args.plate_index, "images": len(images),
            "seconds": seconds, **figures}


def serum_cells(row):
    sera = sorted({key.split("_pearson")[0] for key in row if key.endswith("_pearson")})
    return "  ".join(
        f"{serum.removeprefix('serum_')} r {row[f'{serum}_pearson']:.3f} err {100 * row[f'{serum}_median_rel_error']:.1f}% "
        f"auc {row[f'{serum}_auc']:.2f} wrong {row[f'{serum}_wrong_calls']} "
        f"inconclusive {row.get(f'{serum}_inconclusive_calls', 0)} "
        f"unscored {row[f'{serum}_wells_without_score']}({row[f'{serum}_negative_wells_without_score']}) "
        f"bg err {100 * row.get(f'{serum}_background_error', float('nan')):.1f}%"
        for serum in sera)


def badness(row):
    """Sort key: the family furthest from the goals is printed last."""
    errors = [value for key, value in row.items() if key.endswith("_median_rel_error")]
    return (1 - row["infected_accuracy"]) * 10 + max(errors, default=0.0)


def all_families():
    """Name -> role (tune / holdout) of every family: the plate renderer's and the second renderer's."""
    from antibodies.synthetic.nuisance import FAMILIES
    from antibodies.synthetic.second_renderer import SECOND_FAMILIES

    return {name: family.role for name, family in {**FAMILIES, **SECOND_FAMILIES}.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=("holdout", "tune"), default="holdout")
    parser.add_argument("--families", default="", help="comma separated family names (default: all of --role)")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--wells", type=int, default=12)
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plate-index", type=int, default=0, help="each family's plate number (its seed + N)")
    parser.add_argument("--root", default="/tmp/bench_generalization")
    parser.add_argument("--variant", default="default", help="name of the output folder of this variant")
    parser.add_argument("extra", nargs="*", help="after --: extra CellAnalysis arguments of the variant")
    args = parser.parse_args()
    roles = all_families()
    families = args.families.split(",") if args.families else [f for f, role in roles.items() if role == args.role]
    held_out = [f for f in families if roles[f] == "holdout"]
    if args.variant != "default" and held_out:
        sys.exit(f"variants are for tune families only; {held_out} are held out")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    root = Path(args.root)
    rows = [evaluate(root, family, scheme, args) for family in families for scheme in args.schemes.split(",")]
    rows.sort(key=badness)
    print(f"\n== {args.role} families, variant {args.variant} {' '.join(args.extra)}")
    for row in rows:
        print(f"{row['family']:26s} {row['scheme']} nuclei {row['nuclei_f1']:.3f} cells {row['cells_f1']:.3f} "
              f"infected {row['infected_accuracy']:.3f} (worst image {row['worst_image_infected_accuracy']:.3f}, "
              f"mock {row['mock_infected_fraction']:.3f})  {serum_cells(row)}")
    results = root / f"results_{args.role}_{args.variant}{plate_suffix(args.plate_index)}.json"
    results.write_text(json.dumps(rows, indent=1, default=float))
    print(f"(all figures: {results})")


if __name__ == "__main__":
    main()
