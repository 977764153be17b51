"""The same program from a wheel: exit codes, defaults, bundled model and configspec outside the checkout.

The wheel is built from a copy of the sources (nothing is written into the
checkout), installed without dependencies into a fresh venv that borrows the
test environment's packages through a plain ``.pth`` path (so no editable
install or checkout leaks in), and run from a folder without ``luigi.cfg``.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import tifffile

from .conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import json, luigi, antibodies
from luigi.retcodes import retcode
from luigi_tasks.config import load_config
from antibodies.models import BUNDLED_MODEL, resolve_model_folder
from antibodies.workflow import SPEC_PATH
codes = retcode()
print(json.dumps({
    "package": antibodies.__file__,
    "retcodes": {name: getattr(codes, name) for name, _ in codes.get_params()},
    "worker_timeout": luigi.configuration.get_config().getint("worker", "timeout"),
    "gpu_resource": luigi.configuration.get_config().getint("resources", "gpu"),
    "defaults": load_config(None, SPEC_PATH, {}),
    "model": str(resolve_model_folder(BUNDLED_MODEL)),
    "spec": str(SPEC_PATH),
}, default=str))
"""


def clean_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LUIGI_CONFIG_PATH")}
    return env


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("luigi_tasks", "antibodies"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(root / "dist"),
                    str(source)], check=True, cwd=root, timeout=300)
    wheel = next((root / "dist").glob("batchlib-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "shared_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300)
    run_dir = root / "elsewhere"  # no luigi.cfg here or above
    run_dir.mkdir()
    return {"python": python, "site": site, "run_dir": run_dir, "wheel": wheel}


def bad_plate(folder):
    folder.mkdir()
    (folder / "channel_mapping.json").write_text(json.dumps({"DAPI": "nuclei", "GFP": "marker"}))
    path = folder / "WellA01_PointA01_0001_ChannelDAPI,GFP_Seq0001.tiff"
    tifffile.imwrite(path, np.ones((2, 256, 256), "uint16"), photometric="minisblack")
    path.write_bytes(path.read_bytes()[:70000])  # cut after the first IFD
    return folder


def cell_analysis(python, cwd, plate, output, env):
    command = [str(python), "-m", "luigi", "--module", "antibodies", "CellAnalysis", "--local-scheduler",
               "--plate", str(plate), "--output", str(output)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_holds_the_luigi_defaults_model_and_configspec(wheel_venv):
    import zipfile

    names = zipfile.ZipFile(wheel_venv["wheel"]).namelist()
    assert "luigi_tasks/luigi.cfg" in names and "antibodies/configspec.ini" in names
    assert "antibodies/models/vero_nuclei_v2/weights_best.h5" in names


def test_installed_program_has_the_checkouts_defaults(wheel_venv, tmp_path):
    probe = [str(wheel_venv["python"]), "-c", PROBE]
    installed = json.loads(subprocess.run(probe, cwd=wheel_venv["run_dir"], env=clean_env(), capture_output=True,
                                          text=True, check=True, timeout=120).stdout)
    env = dict(clean_env(), PYTHONPATH=str(ROOT))
    checkout = json.loads(subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True,
                                         text=True, check=True, timeout=120).stdout)
    assert installed["package"].startswith(str(wheel_venv["site"]))
    site = str(wheel_venv["site"])
    assert installed["model"].startswith(site) and installed["spec"].startswith(site)
    assert checkout["package"].startswith(str(ROOT))
    assert installed["retcodes"] == checkout["retcodes"] == {
        "unhandled_exception": 40, "missing_data": 20, "task_failed": 30, "already_running": 10,
        "scheduling_error": 35, "not_run": 25,
    }
    assert installed["worker_timeout"] == checkout["worker_timeout"] == 3600
    assert installed["gpu_resource"] == checkout["gpu_resource"] == 1
    assert installed["defaults"] == checkout["defaults"] and installed["defaults"]["nuclei_model"]


def test_refused_run_exits_non_zero_from_the_wheel_as_from_the_checkout(wheel_venv, tmp_path):
    plate = bad_plate(tmp_path / "plate")
    installed = cell_analysis(wheel_venv["python"], wheel_venv["run_dir"], plate, tmp_path / "out1", clean_env())
    checkout = cell_analysis(sys.executable, wheel_venv["run_dir"], plate, tmp_path / "out2",
                             dict(clean_env(), PYTHONPATH=str(ROOT)))
    assert installed.returncode == checkout.returncode == 35, installed.stderr[-2000:]
    assert "TIFF is truncated" in installed.stderr
    missing = cell_analysis(wheel_venv["python"], wheel_venv["run_dir"], tmp_path / "nowhere", tmp_path / "out3",
                            clean_env())
    assert missing.returncode == 35 and "plate folder does not exist" in missing.stderr


def test_a_users_luigi_cfg_overrides_the_packaged_defaults_key_by_key(wheel_venv, tmp_path):
    (tmp_path / "luigi.cfg").write_text("[retcode]\ntask_failed = 3\n")
    probe = [str(wheel_venv["python"]), "-c", PROBE]
    values = json.loads(subprocess.run(probe, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                                       check=True, timeout=120).stdout)
    assert values["retcodes"]["task_failed"] == 3 and values["retcodes"]["scheduling_error"] == 35
    assert values["worker_timeout"] == 3600
