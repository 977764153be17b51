"""The StarDist server: its run folders, and the same answers wherever the model runs."""
import os
import subprocess
import sys

from antibodies.models.server import SERVER_THREADS, remove_ended_runs


def test_folders_of_ended_runs_are_removed_and_live_ones_kept(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone, alive, other = (tmp_path / f"stardist-{int(ended.stdout)}", tmp_path / f"stardist-{os.getpid()}",
                          tmp_path / "stardist-notes")
    for folder in (gone, alive, other):
        folder.mkdir()
        (folder / "slot0.lock").write_text("")
    remove_ended_runs(tmp_path)
    assert not gone.exists() and alive.exists() and other.exists()


PROBABILITY = """
import sys
import numpy as np
from antibodies.models import BUNDLED_MODELS_DIR
from antibodies.models.server import _InProcess
from antibodies.settings import SPEC_PATH
from luigi_tasks.config import load_config

image = np.random.default_rng(0).random((64, 64, 2)).astype(np.float32)
probability = _InProcess(BUNDLED_MODELS_DIR / load_config(None, SPEC_PATH)["cells_model"]).run("object_probability", image)
np.save(sys.argv[1], probability)
"""


def test_the_model_in_a_task_process_answers_bit_for_bit_as_a_server(tmp_path):
    """A task that lost its server loads the model itself; with TensorFlow's default threads (one per core)
    its probabilities differed from the one-thread server's in the last bits, and so did the cells."""
    import numpy as np

    base = {name: value for name, value in os.environ.items() if name not in SERVER_THREADS}
    base["CUDA_VISIBLE_DEVICES"] = "-1"
    runs = {"task": base, "server": {**base, **dict.fromkeys(SERVER_THREADS, "1")}}
    for name, env in runs.items():
        subprocess.run([sys.executable, "-c", PROBABILITY, str(tmp_path / f"{name}.npy")], env=env, check=True,
                       capture_output=True)
    task, server = np.load(tmp_path / "task.npy"), np.load(tmp_path / "server.npy")
    assert task.shape == (64, 64) and task.std() > 0
    np.testing.assert_array_equal(task, server)


def test_the_cell_model_answers_its_instances_with_the_same_probability():
    import numpy as np

    from antibodies.models import BUNDLED_MODELS_DIR
    from antibodies.models.server import _InProcess
    from antibodies.settings import SPEC_PATH
    from luigi_tasks.config import load_config

    image = np.random.default_rng(0).random((64, 64, 2)).astype(np.float32)
    model = _InProcess(BUNDLED_MODELS_DIR / load_config(None, SPEC_PATH)["cells_model"])
    probability, instances = model.run("object_probability_and_instances", image)
    np.testing.assert_array_equal(probability, model.run("object_probability", image))
    assert instances.shape == (64, 64) and instances.dtype == np.int32
