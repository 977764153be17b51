from collections import Counter

import pytest

from luigi_tasks.testing import make_raw_plate


class ToyRun:
    """A tiny raw plate and its output folder for the toy workflow."""

    def __init__(self, tmp_path):
        self.plate = tmp_path / "plate"
        self.output = tmp_path / "out"
        make_raw_plate(self.plate, wells=("A01", "A02"), sites=2)

    def workflow(self, **kwargs):
        from tests.luigi_tasks.toy_workflow import ToyWorkflow

        return ToyWorkflow(plate=str(self.plate), output=str(self.output), **kwargs)

    def runs(self):
        log = self.output / "runs.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return Counter(line.split()[0] for line in lines)

    def reset_runs(self):
        (self.output / "runs.log").unlink(missing_ok=True)

    def containers(self):
        return sorted(p.name for p in self.output.glob("*.h5"))


@pytest.fixture
def toy(tmp_path):
    return ToyRun(tmp_path)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("LOGLEVEL", raising=False)
    yield
