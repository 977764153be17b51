"""Where the error of a well score comes from: each part of the measurement replaced by the truth.

    python bench/score_errors.py --plates tune_sparse_few_infected_scheme1,tune_density_scheme1 [--variant default]

Reads plates that ``bench/generalization.py`` rendered and processed (``ROOT/raw``, ``ROOT/truth``,
``ROOT/out/VARIANT``). Each of our cells takes the true cell it overlaps most. Per plate and serum it
prints the median absolute relative error of the well scores (median infected over median control
serum mean, against the true ratio) and the mean error of the positive wells, when:

- ``ours``: our calls and our per-cell means (local background subtracted, spillover compensated);
- ``true calls``: our means, each cell called as its true cell is;
- ``true means``: our calls, each cell measured as its true cell's mean (the renderer's);
- ``both true``: true calls and true means over our cells;
- ``floor``: the true cells themselves (the truth's own noise: two sites pooled per well).

It also prints the spread of our per-cell means against the true ones (median and interquartile
range of the relative difference) for control and infected cells that are at least 95 % one true
cell. Choose nothing on held-out plates with it.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = {"ours": ("ours", "called"), "true calls": ("ours", "truly_infected"),
            "true means": ("true", "called"), "both true": ("true", "truly_infected")}


def owners(labels, truth):
    """Per predicted label: the true label it overlaps most and the fraction of its pixels in it."""
    n_pred, n_true = int(labels.max()) + 1, int(truth.max()) + 1
    counts = np.bincount((labels.astype(np.int64) * n_true + truth).ravel(), minlength=n_pred * n_true)
    counts = counts.reshape(n_pred, n_true)
    owner = counts[:, 1:].argmax(1) + 1
    return owner, counts[np.arange(n_pred), owner] / np.maximum(counts.sum(1), 1)


def image_cells(container_path, truth_path, sera, width):
    """Our valid cells of one image with calls and means, ours and their true cell's."""
    from antibodies.analysis.spillover import compensate_spillover
    from antibodies.keys import CELL_SEGMENTATION, INFECTED_CELLS_TABLE, cell_table
    from luigi_tasks.io import open_file, read_image, read_table

    truth = np.load(truth_path)
    with open_file(container_path) as container:
        labels = read_image(container, CELL_SEGMENTATION)
        calls = read_table(container, INFECTED_CELLS_TABLE).set_index("label_id")
        tables = {serum: read_table(container, cell_table(serum)).set_index("label_id") for serum in sera}
    calls = calls[(calls["is_infected"] | calls["is_control"]).astype(bool)]
    owner, purity = owners(labels, truth["cells"])
    true_index = {int(label): index for index, label in enumerate(truth["cell_ids"])}
    own = owner[calls.index]
    cells = pd.DataFrame({"called": calls["is_infected"].astype(bool).to_numpy(),
                          "truly_infected": np.isin(own, truth["infected_ids"]),
                          "purity": purity[calls.index]}, index=calls.index)
    for serum in sera:
        table = tables[serum].reindex(calls.index)
        means = table["means"] - table["local_background"]
        cells[f"{serum} ours"] = compensate_spillover(means, table["neighbour_contrast"], width)
        true_means = truth[f"{serum}_cell_means"]
        cells[f"{serum} true"] = [true_means[true_index[o]] if o in true_index else np.nan for o in own]
    return cells


def true_cells(truth_path, sera):
    """The true cells of one image: infected or not, and their true means."""
    truth = np.load(truth_path)
    cells = pd.DataFrame({"infected": np.isin(truth["cell_ids"], truth["infected_ids"])})
    for serum in sera:
        cells[serum] = truth[f"{serum}_cell_means"]
    return cells


def _errors(groups, wells, serum, value, infected):
    """Relative errors of the well scores of one way of measuring: {well: error}."""
    errors = {}
    for well, cells in groups:
        ratio = wells.at[well, f"ratio_{serum}"]
        called = cells[infected].to_numpy(dtype=bool)
        if wells.at[well, "is_empty"] or not np.isfinite(ratio) or not called.any() or called.all():
            continue
        values = cells[value].to_numpy(dtype=float)
        errors[well] = np.median(values[called]) / np.median(values[~called]) / ratio - 1
    return errors


def _figures(errors, wells):
    values = np.array(list(errors.values()))
    positive = np.array([errors[well] for well in errors if wells.at[well, "is_positive"]])
    return f"{100 * np.median(np.abs(values)):.1f} % ({100 * positive.mean():+.1f} %)"


def plate_rows(root, variant, plate, width):
    """One row per serum: the error of each way of measuring, and our per-cell spread."""
    roles = json.loads((root / "raw" / plate / "channel_mapping.json").read_text())
    sera = [role for role in roles.values() if role and role.startswith("serum")]
    wells = pd.read_csv(root / "truth" / plate / "wells.csv").set_index("well_name")
    ours, truths = [], []
    for truth_path in sorted((root / "truth" / plate).glob("*.npz")):
        well = truth_path.stem[4:7]
        container = root / "out" / variant / plate / f"{truth_path.stem}.h5"
        ours.append(image_cells(container, truth_path, sera, width).assign(well=well))
        truths.append(true_cells(truth_path, sera).assign(well=well))
    ours, truths = pd.concat(ours), pd.concat(truths)
    rows = []
    for serum in sera:
        row = {"plate": plate, "serum": serum}
        for name, (measured, infected) in VARIANTS.items():
            row[name] = _figures(_errors(ours.groupby("well"), wells, serum, f"{serum} {measured}", infected), wells)
        row["floor"] = _figures(_errors(truths.groupby("well"), wells, serum, serum, "infected"), wells)
        relative = ours[f"{serum} ours"] / ours[f"{serum} true"] - 1
        for kind, selected in (("control", ~ours["truly_infected"]), ("infected", ours["truly_infected"])):
            spread = relative[selected & (ours["purity"] >= 0.95)]
            row[f"{kind} cells"] = (f"{100 * spread.median():+.1f} % "
                                    f"(IQR {100 * (spread.quantile(0.75) - spread.quantile(0.25)):.1f})")
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", required=True, help="comma separated plate names under ROOT/out/VARIANT")
    parser.add_argument("--variant", default="default")
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_generalization"))
    parser.add_argument("--spillover-width", type=float, default=0.5, help="as [scores] spillover_width")
    args = parser.parse_args()
    rows = [row for plate in args.plates.split(",") for row in plate_rows(args.root, args.variant, plate,
                                                                          args.spillover_width)]
    print("median |relative error| of the well scores (mean error of the positive wells)")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
