"""The Makefile's targets name files that exist and arguments their scripts accept."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make_variables():
    text = (ROOT / "Makefile").read_text()
    return dict(re.findall(r"^(\w+) \?= (.*)$", text, flags=re.M)), text


def test_every_python_script_the_makefile_runs_exists():
    _, text = make_variables()
    scripts = re.findall(r"\$\(PY\) ((?:bench|tests|antibodies|luigi_tasks)/[\w/]+\.py)", text)
    assert "bench/scale.py" in scripts
    assert [s for s in scripts if not (ROOT / s).is_file()] == []


def test_make_bench_arguments_are_accepted_by_the_bench_script(tmp_path):
    variables, _ = make_variables()
    args = variables["BENCH_ARGS"].split()
    probe = ("import sys, runpy; sys.argv = ['bench/scale.py', '--help']; "
             "runpy.run_path('bench/scale.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for arg in args:
        if arg.startswith("--"):
            assert arg in done.stdout
        else:
            assert re.search(rf"\b{arg}\b", done.stdout), arg
