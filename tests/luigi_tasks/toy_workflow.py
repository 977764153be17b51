"""A user-written example workflow on the framework: smooth, threshold, count.

``TOY_WRITE_MB`` in the environment (default 0) makes Smooth and Threshold also
write that many MB of incompressible padding into each container, so writes
and container copies take measurable time (fault-injection tests kill runs
during them). It changes no output key and no fingerprint.

More test knobs in the environment: ``TOY_SLEEP_SECONDS`` slows Smooth down per
image, ``TOY_HANG_ON=NAME`` makes Threshold hang on images whose name contains
NAME (worker timeouts), ``TOY_FAIL_ON=NAME`` makes Smooth fail on them (a
decoding error after part of the output was written). ``runs.log`` gets one line per image job run:
``<job> <image> worker=<pid of the process that started the task>``.
"""
import os
import time
import zlib
from pathlib import Path

import luigi
import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

from luigi_tasks import BatchJob, BatchJobOnContainer, PlateJob, PlateWorkflow, RawImagePlanner, add_config_parameters, wire
from luigi_tasks.errors import InvalidInputError
from luigi_tasks.io import open_file, parse_image_name, read_image, write_image, write_table

SPEC = Path(__file__).parent / "data" / "toy.spec"


def _count_run(output_file, job, image):
    with open(Path(output_file).parent / "runs.log", "a") as handle:
        handle.write(f"{job} {Path(image).stem} worker={os.getppid()}\n")


def _write_padding(container, job, image):
    megabytes = float(os.environ.get("TOY_WRITE_MB", "0") or 0)
    if megabytes > 0:
        rng = np.random.default_rng(zlib.crc32(f"{job} {Path(image).stem}".encode()))
        padding = rng.integers(0, 2**63, size=int(megabytes * 2**17), dtype="int64")
        if f"padding/{job}" in container:
            del container[f"padding/{job}"]
        container.create_dataset(f"padding/{job}", data=padding)


class ToyPlanner(RawImagePlanner):
    def check_image(self, path):
        super().check_image(path)
        try:
            stack = tifffile.imread(path)
        except Exception as error:
            raise InvalidInputError(path, f"unreadable TIFF ({error})", "replace the file") from error
        return {"shape": stack.shape}


class Smooth(BatchJob):
    outputs = ("raw", "smoothed")
    smooth_sigma = luigi.FloatParameter(default=1.0, description="Gaussian sigma")

    def compute(self, input_files, output_files, smooth_sigma):
        for input_file, output_file in zip(input_files, output_files):
            time.sleep(float(os.environ.get("TOY_SLEEP_SECONDS", "0") or 0))
            image = tifffile.imread(input_file)[0].astype("float32")
            fail_on = os.environ.get("TOY_FAIL_ON", "")
            with open_file(output_file, "a") as container:
                _write_padding(container, "Smooth", input_file)
                write_image(container, "raw", image)
                if fail_on and fail_on in str(input_file):
                    raise ValueError(f"injected decoding error in {Path(input_file).name}")
                write_image(container, "smoothed", ndimage.gaussian_filter(image, smooth_sigma))
            _count_run(output_file, "Smooth", input_file)


class Threshold(BatchJobOnContainer):
    inputs = ("smoothed",)
    outputs = ("mask",)
    threshold_value = luigi.FloatParameter(default=500.0, description="Intensity threshold")

    def compute(self, input_files, output_files, threshold_value):
        hang_on = os.environ.get("TOY_HANG_ON", "")
        for input_file, output_file in zip(input_files, output_files):
            while hang_on and hang_on in str(input_file):
                time.sleep(1)
            with open_file(input_file, "r") as container:
                image = read_image(container, "smoothed")
            if threshold_value < 0:
                raise ValueError("negative threshold")
            if "A02_0002" in str(input_file) and threshold_value == 666:
                raise RuntimeError("injected failure")
            with open_file(output_file, "a") as container:
                _write_padding(container, "Threshold", input_file)
                write_image(container, "mask", (image > threshold_value).astype("uint8"), is_label=True)
            _count_run(output_file, "Threshold", input_file)


class CountTable(PlateJob):
    outputs = ("tables/images/default",)
    count_min_fraction = luigi.FloatParameter(default=0.0, description="Fraction for is_bright")

    def run_plate(self, images, tables_file):
        rows = []
        for image in images:
            with open_file(self.container(image)) as container:
                mask = read_image(container, "mask")
            name = parse_image_name(image)
            rows.append({"image_name": image, "site_name": name.site_name, "fraction": float(mask.mean())})
        table = pd.DataFrame(rows)
        table["is_bright"] = table["fraction"] > self.count_min_fraction
        with open_file(tables_file, "a") as container:
            write_table(container, "images/default", table)
        _count_run(tables_file, "CountTable", self.plate_name)


class DeviceProbe(BatchJobOnContainer):
    """A toy GPU job: records the CUDA_VISIBLE_DEVICES it ran with (not part of ToyWorkflow)."""

    inputs = ("raw",)
    outputs = ("device",)
    uses_gpu = True

    def compute(self, input_files, output_files):
        for output_file in output_files:
            with open_file(output_file, "a") as container:
                container.create_dataset("device", data=os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))


wire(Smooth)
wire(Threshold, Smooth)
wire(CountTable, Threshold)
wire(DeviceProbe, Smooth)


class ToyWorkflow(PlateWorkflow):
    spec_path = SPEC
    planner = ToyPlanner()
    final_jobs = (CountTable,)


for job in (Smooth, Threshold, CountTable, DeviceProbe):
    job.planner = ToyWorkflow.planner
add_config_parameters(ToyWorkflow, SPEC)
