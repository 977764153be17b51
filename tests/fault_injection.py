"""Helpers of the reliability tests: kill runs at random moments, validate outputs, checksum raw folders.

``KillLoop`` starts ``luigi`` command-line runs (local scheduler) of one plate,
kills each with SIGKILL after a seeded random delay and reruns, checking after
every kill that nothing complete before it was lost or recomputed.
:func:`validate_outputs` checks every container of an output folder.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import psutil

from luigi_tasks.io.atomic import TMP_MARK
from luigi_tasks.io.tables import read_table
from luigi_tasks.provenance import INDEX_ATTR, PARAMS_ATTR, read_index

ROOT = Path(__file__).resolve().parents[1]
H5_SUFFIXES = (".h5", ".hdf5")
IMAGE_ATTRS = ("Color", "Visible", "Skip", "Alpha", "ScaleFactors", "format_version", "is_label")
STALE_LOCK = re.compile(r"taking the run lock \S+ left by (.*), a run that ended without releasing it$", re.M)
INTERRUPTED = re.compile(r"the previous run was interrupted: pid (\d+) ")


# ---------------------------------------------------------------- raw folders


def tree_digest(folder):
    """Return ``{relative path: (sha256, size, mode, mtime_ns)}`` of everything below ``folder``.

    Folders are listed too (their mtime changes when an entry is added or removed).
    """
    folder = Path(folder)
    digest = {".": ("dir", 0, folder.stat().st_mode, folder.stat().st_mtime_ns)}
    for path in sorted(folder.rglob("*")):
        stat = path.lstat()
        if path.is_dir():
            digest[str(path.relative_to(folder))] = ("dir", 0, stat.st_mode, stat.st_mtime_ns)
        else:
            digest[str(path.relative_to(folder))] = (
                hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size, stat.st_mode, stat.st_mtime_ns)
    return digest


# ---------------------------------------------------------------- output validation


def h5_containers(output):
    """Return the committed h5 containers of an output folder (not temporaries or quarantined copies)."""
    return sorted(p for p in Path(output).iterdir()
                  if p.suffix in H5_SUFFIXES and not p.name.startswith(".") and ".corrupt-" not in p.name)


def stamps(output):
    """Return ``{(container name, key): created}`` of every complete (not failed) key of an output folder."""
    found = {}
    for path in h5_containers(output):
        with h5py.File(path, "r") as f:
            found.update({(path.name, key): s.created for key, s in read_index(f).items() if not s.failed})
    return found


def _check_image_group(group, where):
    problems = [f"{where}: lacks attribute {name}" for name in IMAGE_ATTRS if name not in group.attrs]
    if problems:
        return problems
    n_levels = len(group.attrs["ScaleFactors"])
    levels = sorted((name for name in group if name.startswith("s") and name[1:].isdigit()), key=lambda n: int(n[1:]))
    if levels != [f"s{i}" for i in range(n_levels)]:
        return [f"{where}: levels {levels}, ScaleFactors promise {n_levels}"]
    shape = group["s0"].shape
    for i, name in enumerate(levels):
        expected = tuple(-(-n // 2**i) for n in shape)
        if group[name].shape != expected:
            problems.append(f"{where}/{name}: shape {group[name].shape}, expected {expected}")
        group[name][...]  # every chunk decompresses
    if not group.attrs["is_label"] and "ContrastLimits" not in group.attrs:
        problems.append(f"{where}: lacks ContrastLimits")
    return problems


def _check_table_group(container, key, where):
    group = container[key]
    missing = [name for name in ("cells", "columns", "visible") if name not in group]
    missing += [name for name in ("dtypes", "format_version") if name not in group.attrs]
    if missing:
        return [f"{where}: table lacks {missing}"]
    frame = read_table(container, key.split("/", 1)[1])
    if frame.shape[1] != len(group["columns"]) or len(group["visible"]) != frame.shape[1]:
        return [f"{where}: table columns/visible/cells disagree"]
    return []


def check_container(path, expected_keys=()):
    """Return a list of problems of one h5 container (empty if it is valid).

    Every key its index reports complete must be there with its parameters and,
    for images, the full pyramid and viewer attributes, for tables all parts.
    ``expected_keys`` must all be reported complete.
    """
    problems = []
    try:
        container = h5py.File(path, "r")
    except OSError as error:
        return [f"{path.name}: unreadable ({error})"]
    with container:
        if INDEX_ATTR not in container.attrs:
            return [f"{path.name}: no provenance index"]
        index = read_index(container)
        for key in expected_keys:
            if key not in index or index[key].failed:
                problems.append(f"{path.name}:{key}: not reported complete")
        for key, stamp in index.items():
            where = f"{path.name}:{key}"
            if stamp.failed:
                continue
            if key not in container:
                problems.append(f"{where}: reported complete but missing")
                continue
            node = container[key]
            if PARAMS_ATTR not in node.attrs:
                problems.append(f"{where}: lacks {PARAMS_ATTR}")
            if isinstance(node, h5py.Dataset):
                node[...]
            elif "ScaleFactors" in node.attrs or any(name == "s0" for name in node):
                problems += _check_image_group(node, where)
            elif "cells" in node:
                problems += _check_table_group(container, key, where)
            elif len(node) == 0:
                pass  # a record: a group holding attributes only (e.g. the files an export wrote)
            else:
                problems.append(f"{where}: neither image, table nor dataset")
    return problems


def validate_outputs(output, expected=None):
    """Check every container of ``output``; ``expected`` maps container names to keys that must be complete.

    Also checks that no temporary container is left and that every status file is valid JSON.
    Returns the list of problems.
    """
    output = Path(output)
    expected = expected or {}
    problems = [f"{name}: missing" for name in expected if not (output / name).exists()]
    for path in h5_containers(output):
        problems += check_container(path, expected.get(path.name, ()))
    problems += [f"{p.name}: temporary container left behind" for p in output.iterdir()
                 if TMP_MARK in p.name and p.suffix in H5_SUFFIXES]
    for status in (output / "batchlib").glob("[!.]*.status"):  # .<name>.tmp-*.status: a killed writer's temporary
        try:
            json.loads(status.read_text())
        except ValueError as error:
            problems.append(f"{status.name}: not JSON ({error})")
    return problems


def plain_temporaries(output):
    """Temporaries of plain files (status, CSV, workbook) that killed ``atomic_write`` calls left behind."""
    return [p for p in Path(output).rglob("*") if TMP_MARK in p.name and p.suffix not in H5_SUFFIXES]


def same_data(output, reference, keys):
    """Return ``container:key`` of the images (level s0) and tables among ``keys`` that differ from ``reference``.

    Other keys (records of written files) are not compared.
    """
    differ = []
    for path in h5_containers(reference):
        with h5py.File(path, "r") as ref, h5py.File(Path(output) / path.name, "r") as new:
            for key in keys.get(path.name, ()):
                if isinstance(ref[key], h5py.Dataset):
                    equal = np.array_equal(ref[key][...], new[key][...])
                elif "cells" in ref[key]:
                    equal = read_table(ref, key.split("/", 1)[1]).equals(read_table(new, key.split("/", 1)[1]))
                elif "s0" in ref[key]:
                    equal = np.array_equal(ref[key]["s0"][...], new[key]["s0"][...])
                else:
                    continue
                if not equal:
                    differ.append(f"{path.name}:{key}")
    return differ


# ---------------------------------------------------------------- kill loop


def luigi_env(**extra):
    """Environment for ``luigi`` subprocesses: the repository on PYTHONPATH, no LOGLEVEL."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{k: str(v) for k, v in extra.items()})
    env.pop("LOGLEVEL", None)
    return env


def _temporaries(output):
    return [p.name for p in Path(output).glob(f".*{TMP_MARK}*") if p.suffix in H5_SUFFIXES]


def _open_temporaries(processes):
    """Return True if one of ``processes`` has a temporary h5 container open."""
    for process in processes:
        try:
            if any(TMP_MARK in f.path and f.path.endswith(H5_SUFFIXES) for f in process.open_files()):
                return True
        except psutil.Error:
            continue
    return False


def _pgid_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class KillStats:
    """What the kill loop did; printed by the tests."""

    kills: Counter = field(default_factory=Counter)  # by mode: group, main, task
    aimed: int = 0  # kills made a random 0-80 ms after a temporary container appeared
    in_transaction: int = 0  # the kill left a temporary container of the killed run behind
    during_h5_io: int = 0  # the killed process had a temporary container open (h5 copy, write or fsync)
    runs: int = 0
    completed_rounds: int = 0
    stale_locks: int = 0
    interrupted_reported: int = 0  # killed runs the next run reported as interrupted
    duplicates: int = 0  # computations done twice (runs.log)
    seconds: float = 0.0

    def line(self):
        return (f"kills={sum(self.kills.values())} {dict(self.kills)} aimed={self.aimed} "
                f"in_transaction={self.in_transaction} "
                f"during_h5_io={self.during_h5_io} stale_locks_recovered={self.stale_locks} runs={self.runs} "
                f"completed_rounds={self.completed_rounds} interrupted_reported={self.interrupted_reported} "
                f"duplicate_computations={self.duplicates} seconds={self.seconds:.1f}")


class KillLoop:
    """Run ``command(output)`` as a process group; kill it at random moments; rerun.

    Parameters
    ----------
    command : callable
        ``command(output_dir) -> argv`` of one run.
    output_root : Path
        Round ``k`` writes to ``output_root / f"round{k}"``.
    delays : (float, float)
        Kill delays (seconds after start) are drawn uniformly from this range.
    modes : dict
        ``{mode: weight}``: ``group`` kills the whole run (scheduler process and task
        child), ``main`` only the scheduling process (its task child is orphaned and
        finishes), ``task`` only the task child (the run goes on and fails that task).
    aimed : float
        Fraction of kills made a random 0-80 ms after the run created a temporary
        container (i.e. inside a transaction) instead of after a random delay.
    timeout : float
        Longest wait for a run that is not killed.
    """

    def __init__(self, command, output_root, seed, delays, env, modes=None, aimed=0.0, timeout=120.0):
        self.command, self.output_root, self.env = command, Path(output_root), env
        self.rng = np.random.default_rng(seed)
        self.delays, self.timeout, self.aimed = delays, timeout, aimed
        self.modes = modes or {"group": 1.0}
        self.stats = KillStats()
        self.groups = []  # process groups started (orphans may outlive their leader)
        self.problems = []
        self.history = []  # (run number, kill mode, pid)
        self.expected_stale = {}  # output folder -> pids in the run locks that killed runs left
        self.expected_interrupted = {}  # output folder -> (pid, mode) of killed runs the workflow status says run

    def _start(self, output):
        self._tmp_before = set(_temporaries(output))
        self.stats.runs += 1
        log = open(output.parent / f"{output.name}.run{self.stats.runs}.log", "w")
        process = subprocess.Popen(self.command(output), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        self.groups.append(process.pid)
        return process

    def _kill(self, process, output):
        names, weights = zip(*self.modes.items())
        mode = str(self.rng.choice(names, p=np.array(weights) / sum(weights)))
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.Error:
            children = []
        if mode == "task" and not children:
            mode = "group"  # nothing running in a child right now
        victims = [with_suppress(psutil.Process, process.pid)] if mode != "task" else []
        victims += children if mode != "main" else []
        open_tmp = _open_temporaries([victim for victim in victims if victim is not None])
        if mode == "group":
            with_suppress(os.killpg, process.pid, signal.SIGKILL)  # (the run may have ended just now)
        elif mode == "main":
            process.kill()
        else:
            for child in children:
                with_suppress(child.kill)
        self.stats.kills[mode] += 1
        self.stats.during_h5_io += open_tmp
        if mode == "task":
            process.wait(timeout=self.timeout)  # the run goes on without the task, then exits
        else:
            process.wait()
            for child in children if mode == "group" else []:
                with_suppress(child.wait, timeout=10)
        if mode != "main":  # a temporary this run made and nobody removed: its transaction was cut
            self.stats.in_transaction += bool(set(_temporaries(output)) - self._tmp_before)
        if mode != "task":
            holder = _lock_holder(output)
            if holder is not False:
                self.expected_stale[output].append(holder)
            status = workflow_status(output)
            if status.get("state") == "running" and status.get("pid") == process.pid:
                # after "main" its orphaned task child may still finish the workflow and record that
                self.expected_interrupted[output].append((process.pid, mode))
        return mode

    def _check_kept(self, before, output, when):
        after = stamps(output)
        lost = sorted(k for k in before if k not in after)
        changed = sorted(k for k in before if k in after and after[k] != before[k])
        if lost:
            self.problems.append(f"{when}: complete keys lost: {lost[:8]}")
        if changed:
            self.problems.append(f"{when}: complete keys recomputed: {changed[:8]}")
        return after

    def run(self, min_kills, max_rounds=50, max_failures=3):
        """Kill and rerun until ``min_kills`` kills are done and the current round completes.

        Returns the output folders of the completed rounds.
        """
        started = time.monotonic()
        completed, failures = [], 0
        output = self._new_round()
        known = {}
        while True:
            process = self._start(output)
            kills = sum(self.stats.kills.values())
            kill_at = float(self.rng.uniform(*self.delays)) if kills < min_kills else self.timeout
            aim = kills < min_kills and self.rng.random() < self.aimed
            try:
                if aim:
                    self._wait_for_transaction(process, output, extra=float(self.rng.uniform(0.0, 0.08)))
                else:
                    process.wait(timeout=kill_at)
            except subprocess.TimeoutExpired:
                self.stats.aimed += aim
                if kills >= min_kills:
                    self.cleanup()
                    raise
                mode = self._kill(process, output)
                self.history.append((self.stats.runs, mode, process.pid))
                known = self._check_kept(known, output, f"run {self.stats.runs} (killed, {mode})")
                continue
            known = self._check_kept(known, output, f"run {self.stats.runs} (rc {process.returncode})")
            if process.returncode != 0 or not _finished(output):
                failures += 1
                log = output.parent / f"{output.name}.run{self.stats.runs}.log"
                tail = log.read_text()[-3000:]
                self.problems.append(f"run {self.stats.runs} failed (rc {process.returncode}): {tail}")
                if failures >= max_failures:
                    break
                continue
            self.wait_for_orphans()
            known = self._check_kept(known, output, f"{output.name} after orphans")
            completed.append(output)
            if sum(self.stats.kills.values()) >= min_kills or len(completed) >= max_rounds:
                break
            output, known = self._new_round(), {}
        self.wait_for_orphans()
        if completed:  # a rerun of a finished plate computes nothing
            before = stamps(completed[-1])
            process = self._start(completed[-1])
            if process.wait(timeout=self.timeout) != 0 or stamps(completed[-1]) != before:
                self.problems.append(f"the no-op rerun of {completed[-1].name} failed or changed outputs")
        self.stats.seconds = time.monotonic() - started
        self.stats.completed_rounds = len(completed)
        for out in completed:
            self.stats.duplicates += sum(count - 1 for count in runs_log(out).values())
            recovered = {_holder_pid(text) for text in STALE_LOCK.findall(_workflow_log(out))}
            self.stats.stale_locks += len(recovered)
            expected = set(self.expected_stale.get(out, ()))
            if recovered != expected:
                self.problems.append(f"{out.name}: stale locks recovered {recovered}, left by killed runs {expected}")
            reported = {int(pid) for pid in INTERRUPTED.findall(_workflow_log(out))}
            self.stats.interrupted_reported += len(reported)
            killed = self.expected_interrupted.get(out, ())
            if not {pid for pid, mode in killed if mode == "group"} <= reported <= {pid for pid, _ in killed}:
                said = [line[-200:] for line in _workflow_log(out).splitlines() if "previous run" in line]
                self.problems.append(f"{out.name}: runs reported interrupted {reported}, killed while running "
                                     f"{killed}; history {self.history}; log: {said}")
        return completed

    def _wait_for_transaction(self, process, output, extra):
        """Return when the run finished or ``extra`` seconds after it started a transaction (TimeoutExpired)."""
        deadline = time.monotonic() + self.timeout
        while process.poll() is None and time.monotonic() < deadline:
            if set(_temporaries(output)) - self._tmp_before:
                process.wait(timeout=extra)  # raises TimeoutExpired unless the run ends meanwhile
                return
            time.sleep(0.005)
        process.wait(timeout=0.0 if process.poll() is None else None)

    def _new_round(self):
        output = self.output_root / f"round{len(self.expected_stale)}"
        output.mkdir(parents=True)
        self.expected_stale[output] = []
        self.expected_interrupted[output] = []
        return output

    def wait_for_orphans(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        for pgid in self.groups:
            while _pgid_alive(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)

    def cleanup(self):
        for pgid in self.groups:
            if _pgid_alive(pgid):
                with_suppress(os.killpg, pgid, signal.SIGKILL)


def with_suppress(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (ProcessLookupError, psutil.Error, subprocess.TimeoutExpired):
        return None


def _lock_holder(output):
    """Return the pid in the run lock of ``output`` (None if unreadable), or False if there is no lock."""
    locks = list((output / "batchlib").glob("[!.]*.lock"))  # not the .<file>.lock flock files
    if not locks:
        return False
    try:
        return json.loads(locks[0].read_text())["pid"]
    except (ValueError, KeyError, OSError):
        return None


def _holder_pid(text):
    match = re.search(r"[\"']pid[\"']: (\d+)", text)
    return int(match.group(1)) if match else None


def _workflow_log(output):
    logs = list((output / "batchlib").glob("*Workflow.log")) + list((output / "batchlib").glob("CellAnalysis.log"))
    return "\n".join(p.read_text() for p in logs)


def workflow_status(output):
    """Return the workflow's status record in ``output`` (empty if none or unreadable)."""
    for status in Path(output, "batchlib").glob("*.status"):
        if status.stem.endswith(("Workflow", "Analysis")):
            try:
                return json.loads(status.read_text())
            except ValueError:
                return {}
    return {}


def _finished(output):
    return workflow_status(output).get("state") == "finished"


def reference_run(command, output, env, timeout):
    """Run ``command(output)`` once without faults; return its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run(command(output), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return time.monotonic() - started


def kill_rounds(loop, min_kills, label):
    """Run ``loop`` until ``min_kills`` kills, print its counts, check it saw no problem; return the rounds."""
    try:
        rounds = loop.run(min_kills=min_kills)
    finally:
        loop.cleanup()
    leftovers = sum(len(plain_temporaries(output)) for output in rounds)
    print(f"\n[kill -9, {label}] {loop.stats.line()} plain_file_temporaries_left={leftovers}")
    print("\n".join(p[:3000] for p in loop.problems))
    assert loop.problems == []
    assert sum(loop.stats.kills.values()) >= min_kills and rounds
    return rounds


def check_round(output, reference, expected):
    """A finished round validates, equals the uninterrupted run, quarantined nothing and released its run lock."""
    problems = validate_outputs(output, expected)
    assert problems == [], (output.name, problems)
    differ = same_data(output, reference, expected)
    assert differ == [], (output.name, differ)
    assert list(output.glob("*.corrupt-*")) == []  # a kill never corrupts a committed container
    assert not list((output / "batchlib").glob("[!.]*.lock")), "run lock not released"


def runs_log(output):
    """Return ``Counter`` of ``"<Job> <image>"`` (the first two words of the lines) of the toy workflow's runs.log."""
    log = Path(output) / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(" ".join(line.split()[:2]) for line in lines)
