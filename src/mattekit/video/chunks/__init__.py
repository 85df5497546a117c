"""Chunked video: cut a clip's frames into chunks, matte each on its own (on Ray, across a
cluster), and join the encoded segments into one file without re-encoding the whole.

    plan_chunks      frame ranges, each with the W frames before it to warm RVM's state
    frame_times      the clip's frames' timestamps (demuxed, not decoded): frame-accurate cuts
    run_chunk        one chunk → one segment: seek to the keyframe before its warm-up, decode,
                     warm the state on W frames (not written), matte and encode its own frames
    join_segments    the segments' packets remuxed into the final container, shifted to their
                     place; the source's audio muxed once; PNG frames renumbered into one ZIP/folder
    process_chunked  the whole, with the chunks on Ray (embedded, or a cluster) or in this process

Every segment is a fresh encode, so it starts on a keyframe, and every segment is encoded with the
same row of the outputs table at the same size, so their packets belong in one stream: H.264 (the
matte and composite MP4s), VP9 with alpha (WebM) and ProRes 4444 (MOV) all join this way.

Why W = 20 (:data:`WARMUP_FRAMES`): on the dev clip comp_D (1280x720, 90 frames, default preset),
3 chunks of 30 frames against one continuous run (bench/chunks.py --part seams, Sapphire Rapids,
2 cores): W = 0 gives dtSSD 2.110 against 2.069, seam frames 1.18/255 mean and 92/255 at p99.9
off the continuous run's, the worst frame's SAD 1.197x its one-piece SAD; W = 3 2.087, 0.68 / 56,
1.091x; W = 10 2.076, 0.40 / 34, 1.038x; W = 20 2.071, 0.19 / 16, 1.010x. Twenty frames is under a
second at 25 fps: ~1.3 % more model runs for 60-second chunks, ~3 s a chunk at 1080p there.
"""

from __future__ import annotations

from .join import join_segments
from .process import ChunkedResult, ChunkProgress, chunk_task, process_chunked
from .segments import WARMUP_FRAMES, Chunk, FrameTimes, chunk_options, frame_times, plan_chunks, run_chunk, segment_kind

__all__ = [
    "WARMUP_FRAMES",
    "Chunk",
    "ChunkProgress",
    "ChunkedResult",
    "FrameTimes",
    "chunk_options",
    "chunk_task",
    "frame_times",
    "join_segments",
    "plan_chunks",
    "process_chunked",
    "run_chunk",
    "segment_kind",
]
