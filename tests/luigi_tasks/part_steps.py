"""Image steps for the part-file tests: one transaction that writes (or fails) some keys of a container."""
import h5py
import numpy as np

from luigi_tasks.io import atomic
from luigi_tasks.io.atomic import step_transaction
from luigi_tasks.provenance import Stamp

BIG = np.random.default_rng(0).integers(0, 2**62, size=(200, 200), dtype="int64")  # 312 KiB, incompressible


def step(path, job, data, keys=("image",), fingerprint="fp", fail=False):
    """Write ``data`` under ``keys`` of the container ``path`` as step ``job`` does (or record a failure)."""
    with step_transaction(path, job) as transaction:
        if fail:
            transaction.discard_part(keys)
            transaction.record({key: Stamp.now(fingerprint, failed=True, error="boom") for key in keys})
            return
        with h5py.File(transaction.part, "a") as part:
            for key in keys:
                part.create_dataset(f"{key}/s0", data=data)
                part[key].attrs["Color"] = "Gray"
        transaction.record({key: Stamp.now(fingerprint) for key in keys})


def parts(folder):
    """The part files of ``folder/img.h5``."""
    return sorted(p.name for p in folder.iterdir() if atomic._is_part_of(p.name, folder / "img.h5"))
