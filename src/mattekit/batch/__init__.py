"""Batch at scale: a folder or bucket of photos and videos, on Ray (embedded, or a cluster).

    SRC (any pyarrow/fsspec filesystem) ── list, skip what DST already has
      images → Ray Data: read_binary_files → map_batches(actor pool, one engine per actor)
               → each actor writes its results to DST and returns a small record
      videos → one Ray task per clip (RVM's recurrent state belongs to one video)
      driver  → appends every record to DST/_mattekit_manifest.jsonl, draws the progress bar

Resuming is by output: a result is written under a temporary name (local) or published on close
(object stores), so an output that exists is complete and is skipped on the next run. Failures
are records in the manifest, never a failed job.

One module per part: :mod:`.sources` (where files are, what each becomes, what is still to do),
:mod:`.work` (one photo or clip, written to DST), :mod:`.manifest` (the record of a run) and
:mod:`.driver` (the run, on Ray). Ray is an optional extra, imported only inside the functions that need it.
"""

from __future__ import annotations

from ..errors import ClusterUnavailable, MissingExtra  # importable from here as before (CHANGELOG)
from .driver import Summary, run
from .manifest import Manifest, read_manifest
from .sources import MANIFEST, Item, Location, Plan, Spec, VideoSettings, plan, require_ray, resolve
from .work import Record, process_image, write_bytes

__all__ = [
    "MANIFEST",
    "ClusterUnavailable",
    "Item",
    "Location",
    "Manifest",
    "MissingExtra",
    "Plan",
    "Record",
    "Spec",
    "Summary",
    "VideoSettings",
    "plan",
    "process_image",
    "read_manifest",
    "require_ray",
    "resolve",
    "run",
    "write_bytes",
]
