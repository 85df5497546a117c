"""Start the real server (``uvicorn app:app`` from the repo root) on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(
    env: Optional[dict] = None, ready_timeout: float = 120.0, command: Optional[list[str]] = None
) -> Iterator[str]:
    """Yield the base URL once ``/readyz`` says 200; stop the server (and only it) afterwards.

    ``command`` (default ``uvicorn app:app``) is run with ``python -m``; ``{port}`` in it is
    replaced by the free port chosen here.
    """
    port = free_port()
    log = (ROOT / "test-output")
    log.mkdir(exist_ok=True)
    out = open(log / f"server-{port}.log", "wb")
    command = command or ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", *(arg.replace("{port}", str(port)) for arg in command)],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {out.name}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {ready_timeout:.0f} s; see {out.name}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
