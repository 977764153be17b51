"""Bytes written per image by the ways an image step can commit its outputs (measured before choosing one).

    python bench/write_path.py SOURCE_OUTPUT_FOLDER [--images 8] [--work /tmp/bench_write_path]

Replays the six image steps of CellAnalysis (Preprocess, NucleusSegmentation,
MarkerTophat, CellSegmentation, CellFeatures, InfectedCells) on finished
containers of SOURCE_OUTPUT_FOLDER: each step's keys are copied (``h5py``
object copy, compressed chunks as they are) from the finished container into a
fresh output folder, committed by one of these strategies:

* ``copy``: the whole container is copied, written, flushed and renamed per step
  (:func:`~luigi_tasks.io.atomic.container_transaction`, the previous write path);
* ``in_place``: written into the container itself, provenance index last, flushed
  (no copy; a kill -9 while HDF5 writes its metadata can leave the file unreadable);
* ``fused``: steps 1-5 in one transaction of a new container, InfectedCells (after the
  plate-level decision) in a second one, both by copy;
* ``parts``: :func:`~luigi_tasks.io.atomic.step_transaction`: a part file per step
  (linked by the container) for outputs >= ``PART_MIN_BYTES``, smaller ones copied
  into the container, which is committed by copy.

Bytes written are this process's ``write_bytes`` (``/proc/self/io``: what it sent to
the storage layer, the figure GNU time reports as file system outputs), divided by
the bytes of the finished output folder; CPU seconds are this process's.
"""
import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from luigi_tasks.io.atomic import _fsync_file, container_transaction, step_transaction  # noqa: E402
from luigi_tasks.provenance import INDEX_ATTR, Stamp, read_index, write_stamps  # noqa: E402

STEPS = ("Preprocess", "NucleusSegmentation", "MarkerTophat", "CellSegmentation", "CellFeatures", "InfectedCells")


def step_of(key):
    if key.startswith("tables/cell_segmentation/") and key.rsplit("/", 1)[1] in ("infected_cells", "cell_qc"):
        return "InfectedCells"
    if key.startswith(("tables/", "histograms/")):
        return "CellFeatures"
    return {"nucleus_segmentation": "NucleusSegmentation", "marker_tophat": "MarkerTophat",
            "cell_segmentation": "CellSegmentation"}.get(key, "Preprocess")


def keys_by_step(source):
    with h5py.File(source, "r") as f:
        keys = [key for key, stamp in read_index(f).items() if not stamp.failed]
    return {step: [key for key in keys if step_of(key) == step] for step in STEPS}


def copy_keys(source, target, keys):
    with h5py.File(source, "r") as src, h5py.File(target, "a") as dst:
        for key in keys:
            parent, _, name = key.rpartition("/")
            src.copy(src[key], dst.require_group(parent) if parent else dst, name=name)


def stamps(keys):
    return {key: Stamp.now("bench") for key in keys}


def by_copy(source, target, groups):
    for keys in groups:
        with container_transaction(target) as tmp:
            copy_keys(source, tmp, keys)
            with h5py.File(tmp, "a") as f:
                write_stamps(f, stamps(keys))


def in_place(source, target, steps):
    for keys in steps.values():
        copy_keys(source, target, keys)
        with h5py.File(target, "a") as f:
            write_stamps(f, stamps(keys))
        _fsync_file(target)


def parts(source, target, steps):
    for step, keys in steps.items():
        with step_transaction(target, step) as transaction:
            copy_keys(source, transaction.part, keys)
            transaction.record(stamps(keys))


def write_bytes():
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(name, sources, work):
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.sync()
    written, cpu, started = write_bytes(), cpu_seconds(), time.perf_counter()
    for source in sources:
        target, steps = folder / source.name, keys_by_step(source)
        if name == "copy":
            by_copy(source, target, steps.values())
        elif name == "fused":
            by_copy(source, target, [sum(list(steps.values())[:5], []), steps["InfectedCells"]])
        elif name == "in_place":
            in_place(source, target, steps)
        else:
            parts(source, target, steps)
    row = {"strategy": name, "images": len(sources), "wall_s": time.perf_counter() - started,
           "cpu_s_per_image": (cpu_seconds() - cpu) / len(sources), "bytes_written": write_bytes() - written,
           "output_bytes": sum(p.stat().st_size for p in folder.iterdir())}
    with h5py.File(folder / sources[0].name, "r") as f:
        assert INDEX_ATTR in f.attrs and all(key in f for key in read_index(f))
    row["ratio"] = row["bytes_written"] / row["output_bytes"]
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_write_path"))
    args = parser.parse_args(argv)
    sources = sorted(p for p in args.source.glob("*.h5") if not p.name.startswith("."))[:args.images]
    print(f"load {Path('/proc/loadavg').read_text().split()[0]}; {len(sources)} images from {args.source}")
    rows = [measure(name, sources, args.work) for name in ("copy", "fused", "in_place", "parts")]
    for row in rows:
        print(f"{row['strategy']:9s} bytes written {row['bytes_written'] / len(sources) / 2**20:6.2f} MiB/image "
              f"for {row['output_bytes'] / len(sources) / 2**20:5.2f} MiB of outputs = {row['ratio']:.2f}x; "
              f"CPU {row['cpu_s_per_image'] * 1000:.0f} ms/image; wall {row['wall_s'] / len(sources) * 1000:.0f} "
              f"ms/image")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
