"""Start, stop and query the central Luigi scheduler (``luigid``) of this project.

::

    python -m luigi_tasks.scheduler start  --state-dir ~/batchlib-scheduler [--port 8082] [--address 127.0.0.1]
    python -m luigi_tasks.scheduler status --state-dir ~/batchlib-scheduler
    python -m luigi_tasks.scheduler stop   --state-dir ~/batchlib-scheduler

The state folder holds ``luigid.pid`` (the process id), ``luigid.json``
(address, port, start time), ``luigi-state.pickle`` (the scheduler's task
state, saved on stop) and ``luigid.log``. luigid reads the project's
``luigi.cfg`` (``[scheduler]`` settings) unless ``LUIGI_CONFIG_PATH`` is set.

luigid has no authentication: anyone who can reach its port can see task
parameters (file paths) and mark tasks done or failed. It binds to
127.0.0.1 by default; reach it from other machines through an SSH tunnel,
or bind to another address only behind a firewall (see docs/operations.md).
"""
import argparse
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .settings import PROJECT_LUIGI_CFG
from .status import pid_alive

__all__ = ["luigid_command", "wait_for_port", "start", "stop", "status", "api", "task_counts", "main"]

logger = logging.getLogger("Workflow.scheduler")
PID_FILE = "luigid.pid"
INFO_FILE = "luigid.json"
LOG_FILE = "luigid.log"
STATE_FILE = "luigi-state.pickle"


def luigid_command(address, port, state_dir):
    """Return the command line that runs luigid in the foreground with its state in ``state_dir``.

    It imports :mod:`luigi_tasks` first, which installs :mod:`luigi_tasks.luigi_fixes`.
    """
    state_dir = Path(state_dir)
    return [
        sys.executable, "-c", "import luigi_tasks, luigi.cmdline; luigi.cmdline.luigid()",
        "--address", address, "--port", str(port),
        "--state-path", str(state_dir / STATE_FILE), "--logdir", str(state_dir),
    ]


def wait_for_port(address, port, process=None, timeout=30.0):
    """Wait until ``address:port`` accepts connections.

    Raises
    ------
    RuntimeError
        If ``process`` exits first.
    TimeoutError
        If nothing listens within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"luigid exited with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"luigid did not listen on {address}:{port} within {timeout:.0f} s")


def _is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _running_pid(state_dir):
    """Return the pid recorded in ``state_dir`` if that process is alive, else None."""
    try:
        pid = int((Path(state_dir) / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def _info(state_dir):
    try:
        return json.loads((Path(state_dir) / INFO_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _environment():
    env = dict(os.environ)
    if not env.get("LUIGI_CONFIG_PATH") and PROJECT_LUIGI_CFG.exists():
        env["LUIGI_CONFIG_PATH"] = str(PROJECT_LUIGI_CFG)
    root = str(PROJECT_LUIGI_CFG.parents[1])  # luigi_tasks importable without installing the package
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def start(state_dir, port=8082, address="127.0.0.1", timeout=30.0):
    """Start luigid in the background unless it already runs; return its pid.

    Parameters
    ----------
    state_dir : str or Path
        Folder for the pid, state and log files (created if missing).
    port : int
    address : str
        Interface to listen on; anything but a loopback address exposes the
        scheduler to the network without authentication.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = _running_pid(state_dir)
    if pid is not None:
        logger.info("luigid already runs (pid %d) on %s", pid, _url(_info(state_dir)))
        return pid
    if not _is_loopback(address):
        logger.warning("luigid on %s is reachable from the network and has no authentication; "
                       "keep that address behind a firewall (docs/operations.md)", address)
    with open(state_dir / LOG_FILE, "a") as log:
        process = subprocess.Popen(luigid_command(address, port, state_dir), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=state_dir, env=_environment(), start_new_session=True)
    try:
        wait_for_port(address if address not in ("0.0.0.0", "::") else "127.0.0.1", port, process, timeout)
    except (RuntimeError, TimeoutError) as error:
        process.terminate()
        raise RuntimeError(f"{error}; see {state_dir / LOG_FILE} (is port {port} in use? pick another with --port)") from error
    (state_dir / PID_FILE).write_text(f"{process.pid}\n")
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    (state_dir / INFO_FILE).write_text(json.dumps({"address": address, "port": port, "started": started}))
    logger.info("luigid started (pid %d) on %s; state in %s", process.pid, _url(_info(state_dir)), state_dir)
    return process.pid


def stop(state_dir, timeout=30.0):
    """Stop the luigid of ``state_dir`` (it saves its state first); return True if one was running."""
    pid = _running_pid(state_dir)
    if pid is None:
        logger.info("no luigid runs from %s", state_dir)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        raise RuntimeError(f"luigid (pid {pid}) did not stop within {timeout:.0f} s; kill it with: kill -9 {pid}")
    (Path(state_dir) / PID_FILE).unlink(missing_ok=True)
    logger.info("luigid (pid %d) stopped", pid)
    return True


def _url(info):
    address = info.get("address", "127.0.0.1")
    return f"http://{address if address not in ('0.0.0.0', '::') else '127.0.0.1'}:{info.get('port', 8082)}"


def api(url, method, **data):
    """Call luigid's JSON API, e.g. ``api(url, "task_list", status="FAILED")``; return its ``response``."""
    query = urllib.parse.quote(json.dumps(data))
    with urllib.request.urlopen(f"{url}/api/{method}?data={query}", timeout=10) as reply:
        return json.loads(reply.read())["response"]


def task_counts(url, statuses=("RUNNING", "PENDING", "FAILED", "DONE")):
    """Return ``{status: number of tasks}`` from luigid's ``/api/task_list``."""
    counts = {}
    for name in statuses:
        response = api(url, "task_list", status=name)
        counts[name] = response.get("num_tasks", len(response)) if isinstance(response, dict) else len(response)
    return counts


def status(state_dir):
    """Return a dict describing the luigid of ``state_dir`` (``running`` False if none)."""
    pid, info = _running_pid(state_dir), _info(state_dir)
    if pid is None:
        return {"running": False, "state_dir": str(state_dir)}
    result = {"running": True, "pid": pid, "url": _url(info), "started": info.get("started"), "state_dir": str(state_dir)}
    try:
        result["tasks"] = task_counts(result["url"])
    except OSError as error:
        result["error"] = f"not answering: {error}"
    return result


def _print_status(record):
    if not record["running"]:
        print(f"luigid is not running (state folder {record['state_dir']})")
        return 3
    print(f"luigid runs: pid {record['pid']}, {record['url']}, started {record['started']}")
    if "tasks" in record:
        print("  tasks: " + ", ".join(f"{count} {name.lower()}" for name, count in record["tasks"].items()))
    else:
        print(f"  {record['error']}")
    return 0


def main(argv=None):
    """Command line: ``start``, ``stop`` or ``status``; exit 0 on success, 3 from ``status`` if not running."""
    parser = argparse.ArgumentParser(description="Manage this project's central Luigi scheduler (luigid).")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--state-dir", required=True, help="folder for luigid's pid, state and log files")
    parser.add_argument("--port", type=int, default=8082, help="port to listen on (default 8082)")
    parser.add_argument("--address", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; luigid has no authentication)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "start":
            start(args.state_dir, args.port, args.address)
        elif args.command == "stop":
            stop(args.state_dir)
        else:
            return _print_status(status(args.state_dir))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
