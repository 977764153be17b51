"""Damaged images on a plate: what they do to their own well and to the others.

    python bench/damaged_images.py [--family tune_standard] [--scheme scheme1] [--root /tmp/bench_damaged]
                                   [--damages screen|tilted|soft_plate] [--absolute-sharpness 0.1]

Renders one plate of a family (12 wells x 2 sites, the last well mock-infected, as ``bench/generalization.py``),
copies it and damages seven of the copy's 24 images the way a screen does (`SCREEN`: a saturated serum, a blank
field, an all-zero file, a dead nuclei channel, a blurred well, debris, hot pixels), runs
``luigi --module antibodies CellAnalysis`` on both and prints per well the true ratio, the clean and the damaged
plate's scores, each plate's spillover widths, and the damaged plate's image outlier types and logged warnings.
``--damages tilted`` blurs instead both sites of wells A01-A07 (14 of 24 images), a plate soft over more than half;
``--damages soft_plate`` blurs every image, a plate out of focus throughout, which only an absolute floor
(``--absolute-sharpness``, passed to both runs as ``[qc] image_min_absolute_sharpness``) can catch.
The wells without damage show what damaged images do to the rest of the plate. Tune families only: it chooses
nothing, it checks failure handling.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalization import all_families, process, render  # noqa: E402


def _blank(stack, roles, rng):
    return np.median(stack, axis=(1, 2), keepdims=True) + rng.normal(0.0, 5.0, stack.shape)


def _saturated_serum(stack, roles, rng):
    stack[roles.index("serum_IgG")] *= 60
    return stack


def _blurred(stack, roles, rng):
    return np.stack([ndi.gaussian_filter(channel, 6.0) for channel in stack])


def _dead_nuclei(stack, roles, rng):
    stack[roles.index("nuclei")] = 0
    return stack


def _zero(stack, roles, rng):
    return np.zeros_like(stack)


def _hot_pixels(stack, roles, rng):
    rows, cols = rng.integers(0, stack.shape[1], 300), rng.integers(0, stack.shape[2], 300)
    stack[:, rows, cols] = 65535
    return stack


def _debris(count, peak):
    def damage(stack, roles, rng):
        spots = np.zeros(stack.shape[1:])
        spots[rng.integers(20, stack.shape[1] - 20, count), rng.integers(20, stack.shape[2] - 20, count)] = 1.0
        blobs = ndi.gaussian_filter(spots, 3.0)
        stack[roles.index("serum_IgG")] += blobs * (peak / blobs.max())
        return stack
    return damage


SCREEN = {  # well -> (what, sites, damage)
    "A04": ("blank field", (0,), _blank),
    "A05": ("serum 60 x too bright (clipped)", (0,), _saturated_serum),
    "A06": ("out of focus (blur 6 px)", (0, 1), _blurred),
    "A07": ("nuclei channel dark", (1,), _dead_nuclei),
    "A08": ("all-zero file", (0,), _zero),
    "A09": ("300 hot pixels", (0,), _hot_pixels),
    "A10": ("40 debris particles", (0,), _debris(40, 20000.0)),
    "A11": ("15 bright debris particles", (0,), _debris(15, 60000.0)),
}


def _blurred_wells(last_column):
    """Both sites of wells A01 to A<last_column> out of focus."""
    return {f"A{column:02d}": ("out of focus (blur 6 px)", (0, 1), _blurred) for column in range(1, last_column + 1)}


TILTED, SOFT_PLATE = _blurred_wells(7), _blurred_wells(12)
DAMAGE_SETS = {"screen": SCREEN, "tilted": TILTED, "soft_plate": SOFT_PLATE}


def damage_plate(clean, damaged, damages, seed=0):
    """Copy a raw plate folder and damage its images as ``damages`` (well -> (what, sites, damage)) says."""
    shutil.copytree(clean, damaged)
    roles = list(json.loads((damaged / "channel_mapping.json").read_text()).values())
    rng = np.random.default_rng(seed)
    for well, (_, sites, damage) in damages.items():
        files = sorted(damaged.glob(f"Well{well}_*.tif*"))
        for site in sites:
            stack = damage(tifffile.imread(files[site]).astype(np.float64), roles, rng)
            tifffile.imwrite(files[site], np.clip(np.round(stack), 0, 65535).astype(np.uint16))


def plate_tables(output):
    from antibodies import keys
    from luigi_tasks.io import open_file, read_table

    tables = sorted(output.glob("*_tables.hdf5"))[0]
    with open_file(tables) as container:
        return (read_table(container, keys.WELL_TABLE).set_index("well_name"),
                read_table(container, keys.IMAGE_TABLE),
                read_table(container, keys.SPILLOVER_WIDTHS).set_index("serum")["width"])


def print_focus_references(images, floor=0.0):
    """Print which images the focus rule flags against the plate's median and against its default reference."""
    from antibodies.analysis.qc import OutOfFocusQC

    sharpness = images.set_index("image_name")["nucleus_edge_sharpness"]
    for rule in (OutOfFocusQC(reference_quantile=0.5), OutOfFocusQC(min_sharpness=floor)):
        flagged = rule.flag(sharpness.to_frame(rule.column)) != ""
        reference = sharpness.quantile(rule.reference_quantile)
        soft = sorted(image[-8:] for image in sharpness.index[flagged])
        kept = f"{sharpness[~flagged].min() / reference:.2f}" if (~flagged).any() else "none"
        floor_text = f", or below {floor:g}/px" if rule.min_sharpness else ""
        print(f"focus against {rule.reference_name()} ({reference:.3f}/px){floor_text}: {len(soft)} flagged "
              f"(softest kept {kept}): {' '.join(soft)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="tune_standard")
    parser.add_argument("--scheme", default="scheme1")
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_damaged"))
    parser.add_argument("--damages", choices=sorted(DAMAGE_SETS), default="screen")
    parser.add_argument("--absolute-sharpness", type=float, default=0.0,
                        help="[qc] image_min_absolute_sharpness of both runs (1/px; 0: off, the default)")
    args = parser.parse_args()
    damages = DAMAGE_SETS[args.damages]
    if all_families()[args.family] != "tune":
        sys.exit(f"{args.family} is held out: use a tune family")
    clean, truth = render(args.root, args.family, args.scheme, 12, 2)
    suffix = "damaged" if args.damages == "screen" else args.damages
    damaged = args.root / "raw" / f"{clean.name}_{suffix}"
    if not damaged.exists():
        damage_plate(clean, damaged, damages)
    outputs, extra = {}, []
    if args.absolute_sharpness:
        extra = ["--qc-image-min-absolute-sharpness", str(args.absolute_sharpness)]
    for name, plate in (("clean", clean), ("damaged", damaged)):
        outputs[name] = args.root / "out" / plate.name
        process(plate, outputs[name], extra, 2)
    (clean_wells, _, clean_widths), (wells, images, widths) = (plate_tables(outputs[n]) for n in ("clean", "damaged"))
    true = pd.read_csv(truth / "wells.csv").set_index("well_name")
    sera = [serum for serum in widths.index]
    print("spillover widths, clean / damaged: " + ", ".join(
        f"{serum} {clean_widths[serum]:.2f} / {widths[serum]:.2f} px" for serum in sera))
    for serum in sera:
        table = pd.DataFrame({"true": true[f"ratio_{serum}"], "clean": clean_wells[f"{serum}_score"],
                              "damaged": wells[f"{serum}_score"]})
        table["damaged vs clean"] = (table["damaged"] / table["clean"] - 1).map(
            lambda v: f"{100 * v:+.1f} %" if np.isfinite(v) else "")
        table["damage"] = [damages.get(well, ("",))[0] for well in table.index]
        print(f"\n{serum}: well scores\n{table.round(3).to_string()}")
        undamaged = [well for well in table.index if well not in damages and np.isfinite(table.at[well, "clean"])]
        if undamaged:
            change = (table.loc[undamaged, "damaged"] / table.loc[undamaged, "clean"] - 1).abs().max()
            print(f"largest change of an undamaged well: {100 * change:.1f} %")
    flagged = images[images.filter(like="outlier_type").fillna("").astype(str).apply(lambda r: any(r), axis=1)]
    print("\nflagged images of the damaged plate:")
    for _, row in flagged.iterrows():
        reasons = sorted({str(v) for v in row.filter(like="outlier_type") if isinstance(v, str) and v})
        print(f"  {row['well_name']} {row['image_name'][-8:]}: {'; '.join(reasons)}")
    print_focus_references(images, args.absolute_sharpness)
    print("\nwarnings in the damaged plate's log:")
    for line in (outputs["damaged"] / "batchlib" / "CellAnalysis.log").read_text().splitlines():
        if "[WARNING]" in line:
            print("  " + line.split("): ", 1)[-1].replace(str(outputs["damaged"]) + "/", ""))


if __name__ == "__main__":
    main()
