"""Per image: how much light crosses cell borders, the input of the plate's measured spillover width."""
from pathlib import Path

import numpy as np

from luigi_tasks.io import open_file, read_image, read_table, table_key, write_table

from ..analysis.spillover import border_exchange_sums
from ..keys import CELL_SEGMENTATION, INFECTED_CELLS_TABLE, border_exchange_table, cell_table, cell_table_key
from ..settings import setting
from .background import read_image_backgrounds, subtracts_per_cell
from .base import AssayImageJob

__all__ = ["BorderExchange", "container_exchange_sums", "read_exchange_sums"]


def container_exchange_sums(path, sera, subtracted=None):
    """Serum -> `border_exchange_sums` of one image container.

    ``subtracted`` maps each serum to the background its image subtracts; ``None``: each cell's ``local_background``.
    """
    with open_file(path, "r") as container:
        labels = read_image(container, CELL_SEGMENTATION)
        calls = read_table(container, INFECTED_CELLS_TABLE).set_index("label_id")
        sums, cache = {}, {}
        for serum in sera:
            table = read_table(container, cell_table(serum), ["label_id", "means", "local_background"])
            cells = calls.reindex(table["label_id"]).fillna(False)
            background = table["local_background"].to_numpy() if subtracted is None else subtracted[serum]
            sums[serum] = border_exchange_sums(
                labels, read_image(container, serum), table["label_id"].to_numpy(), table["means"].to_numpy(),
                np.broadcast_to(background, len(table)), cells["is_infected"].to_numpy(bool),
                cells["is_control"].to_numpy(bool), cache=cache)
    return sums


class BorderExchange(AssayImageJob):
    """Tables ``border_exchange/<serum>``: one image's `border_exchange_sums` (rows: distance 0..reach px).

    `PlateScores` adds them up over the plate to measure the spillover width (``[scores] spillover = measured``);
    measured here, image by image, they are spread over the workers. They are measured under a fixed width
    too, so that switching between the two rescores the plate without touching the images.
    """

    background_method = setting("background", "method")

    @property
    def inputs(self):
        sera = self.sera()
        return [CELL_SEGMENTATION, f"tables/{INFECTED_CELLS_TABLE}", *sera, *map(cell_table_key, sera)]

    def output_keys(self):
        return [table_key(border_exchange_table(serum)) for serum in self.sera()]

    def compute(self, input_files, output_files, background_method):
        sera = self.sera()
        backgrounds = None if subtracts_per_cell(background_method) else read_image_backgrounds(self.tables_path)
        for input_file, output_file in zip(input_files, output_files):
            image = Path(input_file).name.removesuffix(self.container_extension)
            subtracted = None if backgrounds is None else {s: backgrounds[image][s].median for s in sera}
            sums = container_exchange_sums(input_file, sera, subtracted)
            with open_file(output_file, "a") as container:
                for serum, table in sums.items():
                    write_table(container, border_exchange_table(serum), table.reset_index(names="distance"))


def read_exchange_sums(path, sera):
    """Serum -> one image's border exchange sums, indexed by distance (`border_exchange_sums`' frame)."""
    with open_file(path, "r") as container:
        return {serum: read_table(container, border_exchange_table(serum)).set_index("distance") for serum in sera}
