"""Two workers on one study in PostgreSQL (an RDB URL, the storage for many machines), on a throwaway server.

The server is Debian's PostgreSQL (``apt-get install postgresql``), started on 127.0.0.1 on a free
port in a temporary folder (as the ``postgres`` user when the tests run as root: PostgreSQL refuses
root) and stopped afterwards. Without it or without the driver SQLAlchemy uses for ``postgresql://``
(``psycopg``, in the dev extras) the test is skipped with the reason, or fails when
``NASX_REQUIRE_POSTGRES=1`` (as in CI).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ROOT, tiny_config, tiny_data, trained_per_digest, workers

from nasx.search import status


def _missing() -> str | None:
    if not sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        return "PostgreSQL is not installed (apt-get install postgresql)"
    from sqlalchemy.engine import make_url

    try:
        make_url("postgresql://").get_dialect().import_dbapi()
    except ImportError as exc:
        return f"no PostgreSQL driver for SQLAlchemy's postgresql:// ({exc}; the dev extras install psycopg[binary])"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL refuses to run as root"
    return None


def _as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    why = _missing()
    if why:
        if os.environ.get("NASX_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"NASX_REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)
    bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="nasx-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    data, port = home / "data", _free_port()
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(_as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"), **run)
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"), **run
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_study_in_postgresql(tmp_path: Path, postgres_url: str) -> None:
    budget = 8
    common = {
        "budget": {"trials": budget},
        "early_stopping": {"kind": "none"},
        "fidelity": {"epochs": 2},
        "baselines": ["resnet20_cifar"],
        "storage": postgres_url,
    }
    with workers(tmp_path, 2, dry_run_s=0.8, **common) as procs:
        assert [p.wait(timeout=180) for p in procs] == [0, 0]
    assert not (tmp_path / "runs" / "tiny" / "journal.log").exists(), "the trials are in PostgreSQL"
    p, rows = status(tiny_config(tmp_path, **common), tmp_path / "runs")
    cand = [r for r in rows if r["role"] == "candidate"]
    assert p.trials == budget and not any(r["state"] in ("running", "waiting") for r in rows)
    assert max(trained_per_digest(rows).values()) == 1 and sum(r["role"] == "baseline" for r in rows) == 1
    assert len({r["worker"] for r in cand}) == 2, "both workers ran candidates"


HEARTBEAT_WORKER = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from helpers import TinySpace, tiny_config
from nasx.search import run_search

run_search(tiny_config(Path({folder!r}), **{overrides!r}), root=Path({folder!r}) / "runs", space=TinySpace(), dry_run_s={dry_run_s!r})
"""


@pytest.mark.slow
def test_a_killed_workers_trial_is_recovered_by_another_machine_through_the_heartbeat(tmp_path: Path, postgres_url: str) -> None:
    """Two workers as two machines (``NASX_HOST``): one is killed in the middle of a trial; the other cannot see
    its lock file, finds the trial's heartbeat stale after the grace period, fails it as worker_lost and retries it."""
    import sys
    import time

    import optuna

    common = {
        "name": "beat",
        "budget": {"trials": 3},
        "early_stopping": {"kind": "none"},
        "fidelity": {"epochs": 1},
        "storage": postgres_url,
        "heartbeat": {"interval": 1, "grace": 3},
    }
    tiny_data(tmp_path)
    tests = str(ROOT / "tests")

    def start(host: str, dry_run_s: float) -> subprocess.Popen[bytes]:
        script = HEARTBEAT_WORKER.format(tests=tests, folder=str(tmp_path), overrides=common, dry_run_s=dry_run_s)
        env = {**os.environ, "NASX_HOST": host, "NASX_CACHE": str(tmp_path / "cache")}
        return subprocess.Popen([sys.executable, "-c", script], env=env)

    doomed = start("alpha", dry_run_s=600.0)  # its trial would take ten minutes
    other = None
    try:
        deadline = time.time() + 120
        victim = None
        while victim is None and time.time() < deadline:
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="beat", storage=postgres_url)
            except KeyError:
                continue
            held = [t for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) if t.user_attrs.get("training")]
            victim = held[0].number if held else None
        assert victim is not None, "the first worker never started a trial"
        other = start("beta", dry_run_s=0.3)
        time.sleep(1.0)
        doomed.kill()  # kill -9 in the middle of its trial: nothing on this side removes it
        doomed.wait()
        assert other.wait(timeout=180) == 0
    finally:
        for p in (doomed, other):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    p, rows = status(tiny_config(tmp_path, **common), tmp_path / "runs")
    lost = rows[victim]
    assert lost["failure"] == "worker_lost" and lost["retried"] and "heartbeat" in lost["reason"], lost
    again = [r for r in rows if r["retry_of"] == victim]
    assert len(again) == 1 and again[0]["state"] in ("complete", "duplicate") and again[0]["worker"].startswith("beta-")
    assert p.trials == 3 and not any(r["state"] == "running" for r in rows)
