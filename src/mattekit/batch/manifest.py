"""The manifest, ``DST/_mattekit_manifest.jsonl``: one line per finished item, appended by
the driver, so a run says what it did and a failure is a record, never a failed job.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .sources import MANIFEST, Location
from .work import Record, write_bytes

log = logging.getLogger("mattekit.batch")


# -- the manifest -------------------------------------------------------------------------------
class Manifest:
    """``DST/_mattekit_manifest.jsonl``: one JSON line per file attempted, in every run.

    Appended line by line where the filesystem can append (local disks, HDFS); object stores
    cannot, so there it is rewritten whole, at most every ``rewrite_every`` seconds and at close.
    """

    def __init__(self, loc: Location, rewrite_every: float = 10.0) -> None:
        self.loc = loc
        self.path = loc.join(MANIFEST)
        self.rewrite_every = rewrite_every
        self._lines: list[str] | None = None
        self._last = 0.0
        loc.fs.create_dir(loc.path, recursive=True)
        try:
            self._stream = loc.fs.open_append_stream(self.path)
        except Exception:  # pyarrow raises NotImplemented for S3/GCS appends
            self._stream = None
            self._lines = self._read_existing()

    def _read_existing(self) -> list[str]:
        try:
            with self.loc.fs.open_input_stream(self.path) as f:
                text: str = f.read().decode("utf-8")
                return text.splitlines()
        except (FileNotFoundError, OSError):
            return []

    def add(self, record: Record) -> None:
        line = record.to_json()
        if self._stream is not None:
            self._stream.write((line + "\n").encode("utf-8"))
            self._stream.flush()
        else:
            assert self._lines is not None
            self._lines.append(line)
            if time.monotonic() - self._last > self.rewrite_every:
                self._rewrite()

    def _rewrite(self) -> None:
        assert self._lines is not None
        write_bytes(self.loc, self.path, ("\n".join(self._lines) + "\n").encode("utf-8"))
        self._last = time.monotonic()

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        elif self._lines is not None:
            self._rewrite()


def read_manifest(loc: Location) -> list[dict[str, Any]]:
    """Every record of DST's manifest, oldest first (empty if there is none)."""
    try:
        with loc.fs.open_input_stream(loc.join(MANIFEST)) as f:
            text = f.read().decode("utf-8")
    except (FileNotFoundError, OSError):
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
