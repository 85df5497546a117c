"""The batch pipeline (workers overlapping the stages of consecutive images) and the fast encoders."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mattekit import encode
from mattekit.core.engine import Engine
from mattekit.errors import InvalidInput, MattekitError
from mattekit.matter import Matter
from mattekit.options import Options
from mattekit.pipeline import process_files


@dataclass
class Job:
    source: Any
    display: str


@pytest.fixture(scope="module")
def photos() -> list[bytes]:
    """Real photos (tests/samples.py), JPEG-encoded at a small size: speed is not the point here."""
    from samples import sample_path

    out = []
    for name in ("astronaut", "rocket", "camera"):
        img = Image.open(sample_path(name)).convert("RGB")
        img.thumbnail((320, 320))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=92)
        out.append(buf.getvalue())
    return out


FAST = Options(preset="fast")


def test_results_come_in_order_identical_to_one_at_a_time(photos):
    matter = Matter(FAST, Engine(threads=2))
    jobs = [Job(photos[0], "a"), Job(b"not an image", "bad"), Job(photos[1], "b"), Job(photos[2], "c"), Job(photos[0], "a again")]
    out = list(process_files(jobs, FAST, matter=matter))
    assert [j.display for j, _ in out] == [j.display for j in jobs]
    assert isinstance(out[1][1], InvalidInput)  # a bad file is a value, the others go on
    # workers run a single-threaded copy of the engine; the bytes must not depend on it
    for job, outcome in out:
        if job.display != "bad":
            assert outcome == matter.remove_bytes(job.source, FAST), job.display
    cut = Image.open(io.BytesIO(out[0][1]))
    assert cut.mode == "RGBA" and cut.size == Image.open(io.BytesIO(photos[0])).size


class CountingMatter(Matter):
    """A real Matter that records how many images are in its hands at once."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def process(self, source, options=None, **changes):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        try:
            return super().process(source, options, **changes)
        finally:
            with self.lock:
                self.now -= 1


def test_workers_overlap_but_stay_bounded(photos, monkeypatch):
    import mattekit.pipeline as pipeline

    seen: list[CountingMatter] = []
    real_matter = pipeline.Matter

    def make(options, engine=None, general=None):
        m = CountingMatter(options, engine, general)
        seen.append(m)
        return m

    monkeypatch.setattr(pipeline, "Matter", make)
    jobs = [Job(photos[i % 3], str(i)) for i in range(8)]
    out = list(process_files(jobs, FAST, matter=real_matter(FAST, Engine(threads=2))))
    assert all(isinstance(o, bytes) for _, o in out)
    worker = seen[-1]
    assert worker.calls == len(jobs)
    assert 1 <= worker.peak <= 2  # one image per core (threads=2), never more


def test_stopping_early_leaves_no_work_running(photos):
    jobs = [Job(photos[i % 3], str(i)) for i in range(6)]
    gen = process_files(jobs, FAST, matter=Matter(FAST, Engine(threads=2)))
    first_job, first = next(gen)
    assert first_job.display == "0" and isinstance(first, bytes)
    gen.close()  # the consumer stops (e.g. Ctrl-C): pool shut down, queued images cancelled
    assert not [t for t in threading.enumerate() if t.name.startswith("mattekit-still")]


def test_single_thread_engine_runs_one_image_at_a_time(photos):
    jobs = [Job(p, str(i)) for i, p in enumerate(photos)]
    out = list(process_files(jobs, FAST, matter=Matter(FAST, Engine(threads=1))))
    assert [j.display for j, _ in out] == ["0", "1", "2"] and all(isinstance(o, bytes) for _, o in out)


# -- encoders ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L"])
def test_png_is_lossless_in_every_mode(mode):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (37, 53, len(mode)), dtype=np.uint8)
    img = Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode)
    data = encode.encode(img, "png")
    back = Image.open(io.BytesIO(data))
    assert back.format == "PNG" and back.mode == mode
    assert np.array_equal(np.asarray(back), np.asarray(img))


def test_png_of_a_real_cutout_decodes_everywhere(photos):
    """The fpng stream must be a plain PNG: Pillow and OpenCV both read it back exactly."""
    import cv2

    cut = Matter(FAST).remove(photos[0])
    data = encode.encode(cut, "png")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(cut))
    bgra = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA), np.asarray(cut))


def test_errors_in_a_batch_are_mattekit_errors(photos, tmp_path):
    missing = tmp_path / "gone.jpg"
    out = list(process_files([Job(str(missing), "gone"), Job(photos[1], "ok")], FAST, matter=Matter(FAST, Engine(threads=2))))
    assert isinstance(out[0][1], MattekitError) and isinstance(out[1][1], bytes)
