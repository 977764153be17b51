"""Mask IoU of the guided serum foreground on processed bench plates, per rolling-ball envelope.

For every image of the chosen plates of a ``bench/generalization.py`` run, the
foreground of :class:`antibodies.analysis.cells.GuidedOtsuForeground` (with the
run's own nuclei, united with them as the segmentation does) is scored by its
IoU with the union of the true cells, once per ``--envelopes`` value
(``envelope_radii``; 0 is the version before the rolling-ball level). Prints
the mean IoU per plate, the mean over plates, each plate's largest loss against
the first value, and the images below ``--low``.

Usage::

    .venv/bin/python bench/foreground.py --variant default --plates 'tune_*_p2' --envelopes 0,5
"""
import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def image_ious(job):
    """``{envelope: IoU}`` of one image: (container, truth npz, envelopes)."""
    from antibodies.analysis.cells import GuidedOtsuForeground, mean_serum
    from antibodies.keys import NUCLEUS_SEGMENTATION, SERUM_ROLES
    from luigi_tasks.io import open_file, read_image

    container, truth, envelopes = job
    cells = np.load(truth)["cells"] > 0
    with open_file(container) as f:
        nuclei = read_image(f, NUCLEUS_SEGMENTATION)
        serum = mean_serum([read_image(f, key) for key in SERUM_ROLES if key in f])
    ious = {}
    for envelope in envelopes:
        mask = GuidedOtsuForeground(envelope_radii=envelope).find(serum, nuclei) | (nuclei > 0)
        ious[envelope] = np.count_nonzero(mask & cells) / np.count_nonzero(mask | cells)
    return ious


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/bench_generalization"))
    parser.add_argument("--variant", default="default", help="output folder of the run under ROOT/out")
    parser.add_argument("--plates", default="tune_*", help="glob of plate folders")
    parser.add_argument("--envelopes", default="0,5", help="envelope_radii values; the first is the reference")
    parser.add_argument("--low", type=float, default=0.95, help="list the images below this IoU (reference)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    envelopes = [float(value) for value in args.envelopes.split(",")]
    jobs, names = [], []
    for plate in sorted((args.root / "out" / args.variant).glob(args.plates)):
        for truth in sorted((args.root / "truth" / plate.name).glob("*.npz")):
            jobs.append((plate / f"{truth.stem}.h5", truth, envelopes))
            names.append((plate.name, truth.stem[:21]))
    if not jobs:
        sys.exit(f"no processed plate matches {args.plates!r} under {args.root / 'out' / args.variant}")
    with ProcessPoolExecutor(args.processes) as pool:
        rows = list(pool.map(image_ious, jobs, chunksize=4))
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(names, names=["plate", "image"]))
    per_plate = table.groupby("plate").mean()
    print(per_plate.round(4).to_string())
    print("mean over plates:", per_plate.mean().round(4).to_dict())
    print("largest loss of one plate:", per_plate.sub(per_plate[envelopes[0]], axis=0).min().round(4).to_dict())
    low = table[table[envelopes[0]] < args.low]
    print(f"images below {args.low} with envelope {envelopes[0]:g}:")
    print(low.round(4).to_string() if len(low) else "none")


if __name__ == "__main__":
    main()
