"""The StarDist server: its run folders, and the same answers wherever the model runs."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

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

import pytest
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
    counts = [np.unique(model.run("object_probability_and_instances", image, "none", overlap)[1]).size
              for overlap in (0.0, 1.0)]                   # no overlap allowed / nothing suppressed
    assert counts[0] <= np.unique(instances).size <= counts[1] and counts[0] < counts[1]


LOST_SERVER = """
import contextlib, multiprocessing, os, signal, sys, time
import numpy as np
from antibodies.models import BUNDLED_MODELS_DIR
from antibodies.models import server
from antibodies.settings import SPEC_PATH
from luigi_tasks.config import load_config

TIMEOUTS = {"killed": 100.0, "hung": 3.0}

def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False

def task(how, out):
    runner = server.model_runner(BUNDLED_MODELS_DIR / load_config(None, SPEC_PATH)["cells_model"])
    image = np.random.default_rng(0).random((64, 64, 2)).astype(np.float32)
    served = runner.run("object_probability", image)
    if how == "long_tmpdir":  # no server: the model is in this process from the start
        np.savez(out, served=served, fallback=served, waited=0.0, in_process=isinstance(runner, server._InProcess),
                 server_gone=True)
        return
    pid = server._peer_pid(runner.connection)
    server.REPLY_TIMEOUT = TIMEOUTS[how]  # after the first call, which waits for the server to load the model
    os.kill(pid, signal.SIGSTOP)  # the next call waits: it is in the socket, unread
    if how == "killed":
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        signal.signal(signal.SIGALRM, lambda *_: os.kill(pid, signal.SIGKILL))
    started = time.monotonic()
    fallback = runner.run("object_probability", image)
    waited = time.monotonic() - started
    server_gone = not running(pid)  # the hung one killed by the task, so that the slot starts a new one
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    np.savez(out, served=served, fallback=fallback, waited=waited, in_process=runner.fallback is not None,
             server_gone=server_gone)

if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    child = multiprocessing.Process(target=task, args=sys.argv[1:])  # a task process, as Luigi forks one
    child.start()
    child.join(240)
    sys.exit(child.exitcode if child.exitcode is not None else 99)
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["killed", "hung", "long_tmpdir"])
def test_a_task_whose_server_is_lost_mid_call_answers_with_the_model_itself(tmp_path, how):
    """A server killed while it holds a call (EOF), or stopped so that it never answers (the reply timeout):
    the task loads the model and gives the same answer, instead of waiting forever. A TMPDIR too long for a
    Unix socket: no server, the model in the task (it failed the task before)."""
    import numpy as np

    script = tmp_path / "lost_server.py"
    script.write_text(LOST_SERVER)
    with tempfile.TemporaryDirectory(prefix="bl", dir="/tmp") as short:
        tmpdir = tmp_path / ("x" * 80) if how == "long_tmpdir" else Path(short)
        tmpdir.mkdir(exist_ok=True)
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TMPDIR": str(tmpdir)}
        done = subprocess.run([sys.executable, str(script), how, str(tmp_path / "out.npz")], env=env,
                              capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(tmp_path / "out.npz")
    assert result["in_process"] and result["server_gone"]
    np.testing.assert_array_equal(result["fallback"], result["served"])
    if how == "killed":
        assert result["waited"] < 100.0  # EOF, not the timeout
