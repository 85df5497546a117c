"""Start the real server (``uvicorn app:app`` from the repo root) on a free loopback port.

Shared by the tests (:func:`live_server`) and the load benchmark (``bench/load.py``'s ``serve``,
which imports this file by path), so both start, wait for and stop the server the same way.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# What the deployment tests measured, read by bench/reliability.py --deploy (docs/reliability.md rows).
DEPLOY_SUMMARY = ROOT / "test-output" / "deploy-summary.json"
UVICORN = ("uvicorn", "app:app", "--host", LOOPBACK, "--port", "{port}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def record_summary(key: str, value: dict) -> None:
    """Keep ``value`` under ``key`` in :data:`DEPLOY_SUMMARY` (other keys are left as they are)."""
    DEPLOY_SUMMARY.parent.mkdir(exist_ok=True)
    try:
        summary = json.loads(DEPLOY_SUMMARY.read_text())
    except (OSError, ValueError):
        summary = {}
    summary[key] = value
    DEPLOY_SUMMARY.write_text(json.dumps(summary, indent=1))


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


@contextmanager
def start_server(
    command: Sequence[str] = UVICORN,
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    ready_path: str = "/readyz",
    ready_timeout: float = 120.0,
    stop_timeout: float = 20.0,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``python -m COMMAND`` (``{port}`` replaced by a free loopback port) from the repo root
    with ``os.environ`` plus ``env``; yield ``(base_url, process)`` once ``ready_path`` answers
    200; terminate it (and only it) afterwards, killing it after ``stop_timeout`` seconds.

    Its output goes to ``log_path`` (default ``test-output/server-PORT.log``); a server that
    exits or is not ready in ``ready_timeout`` seconds raises with the end of that log.
    """
    port = free_port()
    if log_path is None:
        (ROOT / "test-output").mkdir(exist_ok=True)
        log_path = ROOT / "test-output" / f"server-{port}.log"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *(arg.replace("{port}", str(port)) for arg in command)],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log_path}:\n{_tail(log_path)}")
            try:
                if httpx.get(base + ready_path, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {ready_timeout:.0f} s; see {log_path}:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def live_server(env: dict | None = None, ready_timeout: float = 120.0, command: list[str] | None = None) -> Iterator[str]:
    """Yield the base URL once ``/readyz`` says 200; stop the server (and only it) afterwards.

    ``command`` (default ``uvicorn app:app``) is run with ``python -m``; ``{port}`` in it is
    replaced by the free port chosen here.
    """
    with start_server(command or UVICORN, env=env, ready_timeout=ready_timeout) as (base, _):
        yield base
