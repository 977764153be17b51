"""CellAnalysis's task graph with cheap jobs, for scheduler-scale figures (``bench/scale.py``).

The real planner (:class:`antibodies.inputs.AssayPlanner`: channel mapping,
every TIFF's pages checked), the same six image jobs and four plate jobs
with the same dependencies (:data:`antibodies.workflow.STEPS` itself, mapped by :data:`CHEAP`), batching and priorities as
:class:`antibodies.workflow.CellAnalysis`, and the same container traffic:
each image job reads full-size channels from the image container and writes
one full-size 1024x1024 image (a compressed pyramid with viewer attributes,
as the real jobs write it) or a small table into it, so every copy-on-write
transaction copies a container that grows to ~7 MiB, as the real ones do. Only the computation is replaced by something cheap (a threshold,
a comparison), so what is left of the wall time is the framework's.

``luigi --module bench.scale_workflow ScaleWorkflow --plate DIR --output OUT --local-scheduler``
"""
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from antibodies.inputs import AssayPlanner, read_channel_mapping
from antibodies.tasks import (
    BorderExchange,
    CellFeatures,
    CellSegmentation,
    InfectedCells,
    InfectionDecision,
    MarkerTophat,
    NucleusSegmentation,
    PlateBackground,
    PlateExports,
    PlateScores,
    Preprocess,
)
from antibodies.tasks.base import read_images, write_intensity_image, write_label_image
from antibodies.workflow import STEPS
from luigi_tasks import BatchJob, BatchJobOnContainer, PlateJob, PlateWorkflow, wire_steps
from luigi_tasks.io import atomic_write, open_file, read_table, write_image, write_table

__all__ = ["ScaleWorkflow", "JOBS"]

PLANNER = AssayPlanner()
SPEC = Path(__file__).with_name("scale_workflow.spec")


class CheapPreprocess(BatchJob):
    """Raw TIFF pages -> one image per mapped role."""

    outputs = ("nuclei", "marker", "serum_IgG")

    def compute(self, input_files, output_files):
        mapping = read_channel_mapping(self.plate_dir)
        for input_file, output_file in zip(input_files, output_files):
            pages = tifffile.imread(input_file)
            with open_file(output_file, "a") as container:
                for page, role in zip(pages, mapping.values()):
                    if role in self.outputs:
                        write_image(container, role, page)


class CheapNuclei(BatchJobOnContainer):
    """Threshold instead of StarDist."""

    inputs, outputs = ("nuclei",), ("nucleus_segmentation",)

    def compute(self, input_files, output_files):
        for input_file, output_file in zip(input_files, output_files):
            nuclei = read_images(input_file, ["nuclei"])["nuclei"]
            write_label_image(output_file, "nucleus_segmentation", (nuclei > nuclei.mean()).astype("uint16"))


class CheapTophat(BatchJobOnContainer):
    """A copy instead of the white top-hat."""

    inputs, outputs = ("marker",), ("marker_tophat",)

    def compute(self, input_files, output_files):
        for input_file, output_file in zip(input_files, output_files):
            write_intensity_image(output_file, "marker_tophat", read_images(input_file, ["marker"])["marker"])


class CheapCells(BatchJobOnContainer):
    """The nuclei as cells instead of the seeded watershed."""

    inputs, outputs = ("nucleus_segmentation",), ("cell_segmentation",)

    def compute(self, input_files, output_files):
        for input_file, output_file in zip(input_files, output_files):
            cells = read_images(input_file, ["nucleus_segmentation"])["nucleus_segmentation"]
            write_label_image(output_file, "cell_segmentation", cells)


class CheapFeatures(BatchJobOnContainer):
    """Two image means as the per-cell table."""

    inputs, outputs = ("cell_segmentation", "serum_IgG", "marker_tophat"), ("tables/cells",)

    def compute(self, input_files, output_files):
        for input_file, output_file in zip(input_files, output_files):
            images = read_images(input_file, ["serum_IgG", "marker_tophat"])
            serum, marker = images["serum_IgG"], images["marker_tophat"]
            table = pd.DataFrame({"label_id": [1], "serum": [float(serum.mean())], "marker": [float(marker.mean())]})
            with open_file(output_file, "a") as container:
                write_table(container, "cells", table)


class CheapBackground(PlateJob):
    """The plate median of the image marker means."""

    outputs = ("tables/plate/backgrounds",)

    def run_plate(self, images, tables_file):
        means = []
        for image in images:
            with open_file(self.container(image), "r") as container:
                means.append(float(read_table(container, "cells")["marker"].iloc[0]))
        with open_file(tables_file, "a") as container:
            write_table(container, "plate/backgrounds", pd.DataFrame({"marker": [float(np.median(means))]}))


class CheapDecision(PlateJob):
    """The plate's cut: its marker background."""

    outputs = ("tables/plate/decision",)

    def run_plate(self, images, tables_file):
        with open_file(self.tables_path, "r") as container:
            background = float(read_table(container, "plate/backgrounds")["marker"].iloc[0])
        with open_file(tables_file, "a") as container:
            write_table(container, "plate/decision", pd.DataFrame({"factor": [background]}))


class CheapInfected(BatchJobOnContainer):
    """Above the plate's cut or not."""

    inputs, outputs = ("tables/cells",), ("tables/infected",)

    def compute(self, input_files, output_files):
        with open_file(self.tables_path, "r") as container:
            background = float(read_table(container, "plate/decision")["factor"].iloc[0])
        for input_file, output_file in zip(input_files, output_files):
            with open_file(input_file, "r") as container:
                cells = read_table(container, "cells")
            with open_file(output_file, "a") as container:
                write_table(container, "infected", cells.assign(is_infected=cells["marker"] > background))


class CheapExchange(BatchJobOnContainer):
    """The infected cells' share, per image."""

    inputs, outputs = ("tables/infected",), ("tables/exchange",)

    def compute(self, input_files, output_files):
        for input_file, output_file in zip(input_files, output_files):
            with open_file(input_file, "r") as container:
                infected = read_table(container, "infected")["is_infected"]
            with open_file(output_file, "a") as container:
                write_table(container, "exchange", pd.DataFrame({"share": [float(infected.mean())]}))


class CheapScores(PlateJob):
    """One row per image."""

    outputs = ("tables/images/default",)

    def run_plate(self, images, tables_file):
        rows = []
        for image in images:
            with open_file(self.container(image), "r") as container:
                rows.append({"image_name": image, "infected": bool(read_table(container, "infected")["is_infected"][0])})
        with open_file(tables_file, "a") as container:
            write_table(container, "images/default", pd.DataFrame(rows))


class CheapExports(PlateJob):
    """The image table as CSV."""

    outputs = ("records/exports",)

    def output_files(self):
        return [Path(self.output_dir) / f"{self.plate_name}_images.csv"]

    def run_plate(self, images, tables_file):
        with open_file(self.tables_path, "r") as container:
            table = read_table(container, "images/default")
        with atomic_write(self.output_files()[0]) as tmp:
            table.to_csv(tmp, index=False)
        with open_file(tables_file, "a") as container:
            container.require_group("records/exports")


CHEAP = {
    Preprocess: CheapPreprocess,
    NucleusSegmentation: CheapNuclei,
    MarkerTophat: CheapTophat,
    CellSegmentation: CheapCells,
    CellFeatures: CheapFeatures,
    PlateBackground: CheapBackground,
    InfectionDecision: CheapDecision,
    InfectedCells: CheapInfected,
    BorderExchange: CheapExchange,
    PlateScores: CheapScores,
    PlateExports: CheapExports,
}
"""The cheap stand-in of each real job on the path to ``PlateExports`` (the report and OME-Zarr export are left out)."""

# CellAnalysis's own step table (antibodies.workflow.STEPS), with each job replaced by its stand-in
JOBS = tuple(tuple(CHEAP[job] for job in row) for row in STEPS if row[0] in CHEAP)
wire_steps(JOBS, PLANNER)
for real, cheap in CHEAP.items():
    cheap.max_batch_size = real.max_batch_size  # the same Luigi batches


class ScaleWorkflow(PlateWorkflow):
    """CellAnalysis's graph with cheap jobs."""

    spec_path = SPEC
    planner = PLANNER
    final_jobs = (CheapExports,)
