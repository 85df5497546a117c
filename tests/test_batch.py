"""`mattekit batch`: Ray Data over folders, resumable, failures in the manifest.

The cluster test starts a real two-node Ray cluster (head + one worker over loopback, one CPU
each) with `ray start`, runs the command as a user would, and takes down only the processes it
started. Ray is an optional extra: without it these tests skip, saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("ray", reason="batch needs the cluster extra: pip install 'mattekit[cluster]'")

import contextlib

from mattekit import batch, cluster
from mattekit.batch import MANIFEST, Location, Spec, VideoSettings, sources
from mattekit.errors import InvalidInput, InvalidOption
from mattekit.options import Options, parse_background

VENV_BIN = Path(sys.executable).parent
MATTEKIT = [sys.executable, "-m", "mattekit"]
# One setting for every process of a test cluster (head, worker, driver): a mismatch makes the
# worker fail with InvalidAuthToken (KNOWN_GROUND.md).
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _env() -> dict[str, str]:
    return {**os.environ, **RAY_ENV}


# -- process hygiene: find and end exactly the processes a test started ------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it, now (Ray's workers leave the process group)."""
    tree, found, todo = _children(), set(), [pid]
    while todo:
        p = todo.pop()
        if p not in found:
            found.add(p)
            todo.extend(tree.get(p, []))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def end_processes(pids: set[int], grace: float = 3.0) -> None:
    """SIGTERM, a short grace, then SIGKILL — only for these pids."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)


# -- a real two-node cluster on loopback --------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _node_count(address: str) -> int:
    out = subprocess.run(
        [str(VENV_BIN / "ray"), "status", f"--address={address}"], env=_env(), capture_output=True, text=True, timeout=30
    ).stdout
    return sum(1 for line in out.splitlines() if line.strip().startswith("1 node_"))


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Head + one worker node, 1 CPU each, capped memory; yields the head's address."""
    port = _free_port()
    temp = Path(f"/tmp/mkray{os.getpid()}")  # Ray's socket paths must stay short
    logs = tmp_path_factory.mktemp("ray-logs")
    common = [
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--memory=2000000000",
        "--object-store-memory=500000000",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
        "--block",
    ]
    address = f"127.0.0.1:{port}"
    nodes: list[subprocess.Popen[bytes]] = []
    pids: set[int] = set()
    try:
        nodes.append(
            subprocess.Popen(
                [str(VENV_BIN / "ray"), "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                env=_env(),
                stdout=open(logs / "head.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        deadline = time.monotonic() + 90
        while _node_count(address) < 1:
            assert time.monotonic() < deadline, (logs / "head.log").read_text()
            assert nodes[0].poll() is None, (logs / "head.log").read_text()
            time.sleep(0.5)
        nodes.append(
            subprocess.Popen(
                [str(VENV_BIN / "ray"), "start", f"--address={address}", *common],
                env=_env(),
                stdout=open(logs / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        while _node_count(address) < 2:
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()
            assert nodes[1].poll() is None, (logs / "worker.log").read_text()
            time.sleep(0.5)
        yield address
    finally:
        for node in nodes:
            pids |= descendants(node.pid)
        end_processes(pids)
        for node in nodes:
            node.wait(timeout=10)
        shutil.rmtree(temp, ignore_errors=True)
        assert not [p for p in pids if _alive(p)], "a Ray process of the test cluster survived"


def _run_batch(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MATTEKIT, "batch", *args], env=_env(), capture_output=True, text=True, timeout=timeout)


def _manifest(dst: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (dst / MANIFEST).read_text().splitlines() if line.strip()]


def _expected_size(path: Path, max_size: int) -> tuple[int, int]:
    from mattekit import decode

    h, w = decode.decode(path, Options(max_size=max_size)).rgb.shape[:2]
    return w, h


@pytest.mark.cluster
def test_interrupted_batch_resumes_without_redoing_finished_files(tmp_path: Path) -> None:
    """Kill the command mid-run (a crash, not a polite Ctrl-C), run it again: finished files are
    neither redone nor recorded twice, and every output ends up complete."""
    from samples import sample_path

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    photos = [sample_path("astronaut"), sample_path("camera"), sample_path("rocket")]
    for i in range(16):
        shutil.copy(photos[i % 3], src / f"{i:02d}{photos[i % 3].suffix}")
    args = [str(src), str(dst), "--workers", "1", "--max-size", "256"]

    first = subprocess.Popen(
        [*MATTEKIT, "batch", *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            pids |= descendants(first.pid)
            if (dst / MANIFEST).exists() and sum(r["status"] == "ok" for r in _manifest(dst)) >= 2:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before it could be interrupted: " + first.stderr.read().decode()  # type: ignore[union-attr]
        pids |= descendants(first.pid)
        first.kill()
        first.wait(timeout=10)
    finally:
        end_processes(pids)  # the embedded Ray it started goes with it
    assert not [p for p in pids if _alive(p)]

    done_before = {Path(r["input"]).name for r in _manifest(dst) if r["status"] == "ok"}
    outputs_before = {p.name: p.stat().st_mtime_ns for p in dst.glob("*.png")}
    assert 2 <= len(done_before) < 16
    assert {Path(n).stem for n in done_before} <= {Path(n).stem for n in outputs_before}

    second = subprocess.run([*MATTEKIT, "batch", *args], env=_env(), capture_output=True, text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    assert "max_restarts" not in second.stderr  # Ray's noise line is dropped (issue 28)
    assert f"{len(outputs_before)} already done" in second.stderr

    records = _manifest(dst)
    ok = [Path(r["input"]).name for r in records if r["status"] == "ok"]
    assert sorted(set(ok)) == sorted(p.name for p in src.iterdir())
    assert len(ok) == len(set(ok)), "a finished file was processed twice"
    for name, mtime in outputs_before.items():
        assert (dst / name).stat().st_mtime_ns == mtime, f"{name} was rewritten"
    assert not list(dst.rglob("*.part")), "a killed run's temp file was left behind"
    for p in src.iterdir():
        with Image.open(dst / (p.stem + ".png")) as img:
            img.load()  # complete, not a half-written file
            assert img.mode == "RGBA" and max(img.size) == 256


# -- pieces, without Ray ------------------------------------------------------------------------
def test_ray_noise_is_dropped_from_stderr_and_nothing_else() -> None:
    """Issue 28: Ray's core printed `core_worker.cc … max_restarts > 0` on every batch. The filter
    drops that line from fd 2 (where Ray's C++ writes) and passes everything else, in order."""
    code = (
        "import os, sys\n"
        "from mattekit.cli.batch import without_ray_noise\n"
        "with without_ray_noise():\n"
        "    os.write(2, b'[2026-12-06 08:38:36,585 E 2197 2197] core_worker.cc:2465: Actor with class name: "
        "\\'MapWorker(MapBatches(ImageWorker))\\' and ID: \\'7afa\\' has constructor arguments in the object "
        "store and max_restarts > 0. If the arguments go out of scope, the actor restart will fail.\\n')\n"
        "    os.write(2, b'[2026-12-06 08:38:37,000 E 2197 2197] core_worker.cc:99: a real error\\n')\n"
        "    print('ours', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    # Python's lines go straight out, fd 2's through the filter thread: the two may interleave,
    # but all of fd 2's are out before the filter ends.
    assert sorted(lines[:-1]) == ["[2026-12-06 08:38:37,000 E 2197 2197] core_worker.cc:99: a real error", "ours"]
    assert lines[-1] == "after"


def test_pool_leaves_a_cpu_slot_for_reads_when_workers_ask_for_every_cpu() -> None:
    """Two single-CPU nodes, two workers: each actor must ask for less than its node's CPU, or
    Ray Data's read tasks never get scheduled and the pipeline deadlocks."""
    pool = cluster.size_pool([1.0, 1.0], workers=2)
    assert pool.size == 2 and pool.threads == 1
    assert pool.actor_cpus + cluster.READ_CPUS <= 1.0
    big = cluster.size_pool([16.0, 16.0])
    assert big.size == 32 and big.threads == 1  # one single-threaded engine per core
    assert 16 * big.actor_cpus + cluster.READ_CPUS <= 16
    assert cluster.size_pool([1.0, 1.0], workers=5).size == 2  # never more actors than fit
    assert cluster.size_pool([8.0], workers=2) == cluster.Pool(2, 4, 3.6)  # threads = CPUs per worker
    assert cluster.size_pool([2.0, 1.0], threads=8).threads == 2  # no actor bigger than a node


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_plan_keeps_relative_paths_skips_done_outputs_and_ignores_the_rest(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "in" / "out"  # DST inside SRC: its files are not inputs
    _tree(
        src,
        {
            "a.jpg": b"x",
            "sub/b.PNG": b"x",
            "sub/deep/c.webp": b"x",
            "clip.mp4": b"x",
            "notes.txt": b"x",
            ".hidden/d.jpg": b"x",
            "sub/b.jpg": b"x",
        },
    )
    _tree(
        dst,
        {
            "a.png": b"done",
            "x.png": b"x",
            "sub/.b.png.0a1b2c3d.part": b"half",
            ".clip.webm.123.456.part.webm": b"half",
            ".keep": b"x",
        },
    )
    spec = Spec(batch.resolve(str(src)), batch.resolve(str(dst)), Options(), VideoSettings())
    work = batch.plan(spec)
    todo = {i.rel: (i.kind, Path(i.target).relative_to(dst).as_posix()) for i in work.todo}
    assert todo == {
        "clip.mp4": ("video", "clip.webm"),
        "sub/b.PNG": ("image", "sub/b.png"),
        "sub/deep/c.webp": ("image", "sub/deep/c.png"),
    }
    assert [i.rel for i in work.done] == ["a.jpg"]
    assert [i.rel for i in work.clashes] == ["sub/b.jpg"]  # would overwrite sub/b.png
    assert work.ignored == 2  # notes.txt, .hidden/d.jpg
    assert sorted(Path(p).name for p in work.stale) == [".b.png.0a1b2c3d.part", ".clip.webm.123.456.part.webm"]
    assert {i.rel for i in batch.plan(spec, overwrite=True).todo} >= {"a.jpg"}
    # DST = SRC would skip every input and report "0 done" as a success; so would a folder
    # without a photo or a video in it.
    with pytest.raises(InvalidOption, match="the output folder is the input folder"):
        batch.plan(Spec(spec.src, batch.resolve(str(src)), Options(), VideoSettings()))
    _tree(tmp_path / "notes", {"a.txt": b"x", ".hidden.jpg": b"x"})
    with pytest.raises(InvalidOption, match=r"no photos or videos found in .*notes \(2 other files left out"):
        batch.plan(Spec(batch.resolve(str(tmp_path / "notes")), batch.resolve(str(dst)), Options(), VideoSettings()))


def test_video_outputs_follow_the_options() -> None:
    assert VideoSettings().suffix(Options()) == ".webm"
    assert VideoSettings().suffix(Options(background=parse_background("white"))) == ".mp4"
    assert VideoSettings().kind(Options(mask=True)) == "matte"
    assert VideoSettings(output="mov").suffix(Options()) == ".mov"
    with pytest.raises(InvalidOption):
        VideoSettings(output="png-dir").suffix(Options())


def test_manifest_appends_across_runs(tmp_path: Path) -> None:
    loc = batch.resolve(str(tmp_path / "out"))
    for run in range(2):
        m = batch.Manifest(loc)
        m.add(batch.Record(f"in{run}.jpg", f"out{run}.png", "image", "ok", None, 0.5))
        m.close()
    assert [r["input"] for r in batch.read_manifest(loc)] == ["in0.jpg", "in1.jpg"]


def test_remote_filesystems_go_through_fsspec_and_rewrite_the_manifest() -> None:
    """Object stores cannot append (pyarrow's S3/GCS raise NotImplemented): outputs are written
    whole and the manifest is rewritten. fsspec's in-memory filesystem stands in for a bucket,
    with appending refused as S3 refuses it."""
    import fsspec
    import pyarrow.fs as pafs

    loc = batch.resolve("memory://mattekit-test/out")
    assert loc.scheme == "memory" and not loc.local
    batch.write_bytes(loc, loc.join("a/b.png"), b"png")
    with loc.fs.open_input_stream(loc.join("a/b.png")) as f:
        assert f.read() == b"png"

    class NoAppend(pafs.FSSpecHandler):  # type: ignore[misc]  # pyarrow has no types
        def open_append_stream(self, path: Any, metadata: Any) -> None:
            raise NotImplementedError("append is not supported")

    loc = Location(pafs.PyFileSystem(NoAppend(fsspec.filesystem("memory"))), "/mattekit-test/bucket", "memory")
    m = batch.Manifest(loc, rewrite_every=0)
    assert m._stream is None  # the rewrite path
    m.add(batch.Record("memory://in/a.jpg", "memory://out/a/b.png", "image", "ok", None, 0.1))
    m.add(batch.Record("memory://in/c.jpg", "memory://out/c.png", "image", "error", "bad", 0.1))
    m.close()
    assert [r["status"] for r in batch.read_manifest(loc)] == ["ok", "error"]
    m = batch.Manifest(loc, rewrite_every=3600)  # a second run keeps the first run's lines
    m.add(batch.Record("memory://in/c.jpg", "memory://out/c.png", "image", "ok", None, 0.1))
    m.close()
    assert [r["status"] for r in batch.read_manifest(loc)] == ["ok", "error", "ok"]
    assert loc.display(loc.join("x")).startswith("memory://")


def test_cli_explains_how_to_get_ray_when_it_is_missing(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what `import ray` sees without the extra
        "from mattekit.cli import main; sys.argv = ['mattekit', 'batch', sys.argv[1], sys.argv[2]]; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(tmp_path / "out")], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "pip install 'mattekit[cluster]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_rejects_bad_usage_before_starting_ray(tmp_path: Path) -> None:
    proc = _run_batch(str(tmp_path / "missing"), str(tmp_path / "out"), timeout=60)
    assert proc.returncode == 2 and "not a folder" in proc.stderr
    proc = _run_batch(str(tmp_path), str(tmp_path / "out"), "--format", "jpg", timeout=60)
    assert proc.returncode == 2 and "background" in proc.stderr
    proc = _run_batch(str(tmp_path), str(tmp_path / "out"), "--start", "5", "--end", "2", timeout=60)
    assert proc.returncode == 2 and "end must be after start" in proc.stderr
    clips = tmp_path / "clips"
    _tree(clips, {"c.mp4": b"x"})
    proc = _run_batch(str(clips), str(tmp_path / "out"), "--mask", "--video-output", "webm", timeout=60)
    assert proc.returncode == 2 and "--mask asks for the matte" in proc.stderr, proc.stderr


def test_video_only_refusals_wait_for_a_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--mask or --bg with a --video-output that cannot carry it is refused before Ray starts, but
    only when SRC has a video: photos take --mask --bg (the mask wins) and --crop."""
    from mattekit.batch import driver

    class Started(Exception):
        pass

    def connect(*_args: Any, **_kwargs: Any) -> None:
        raise Started  # the checks passed: Ray would start here

    monkeypatch.setattr(driver, "connect", connect)
    _tree(tmp_path / "in", {"a.jpg": b"x"})
    options = Options(mask=True, crop=True, background=parse_background("white"))
    spec = Spec(batch.resolve(str(tmp_path / "in")), batch.resolve(str(tmp_path / "out")), options, VideoSettings(output="webm"))
    with pytest.raises(Started):
        batch.run(spec)
    _tree(tmp_path / "in", {"b.mp4": b"x"})
    with pytest.raises(InvalidOption, match="two different videos"):
        batch.run(spec)


def test_an_unreachable_cluster_is_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"x")
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    proc = _run_batch(str(tmp_path), str(tmp_path / "out"), "--address", f"127.0.0.1:{port}", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert f"cannot reach a Ray cluster at 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 45


def test_location_of_a_local_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loc = batch.resolve("photos")
    assert isinstance(loc, Location) and loc.local and loc.path == str(tmp_path / "photos")
    assert batch.resolve(f"file://{tmp_path}").path == str(tmp_path)
    with pytest.raises(InvalidOption):
        batch.resolve("nosuchscheme://x/y")


# -- the cluster run (last in the file: its cluster lives until the module ends) ------------
@pytest.fixture(scope="module")
def cluster_run(
    ray_cluster: Any, people_images: Any, evaldir: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, list[Path], subprocess.CompletedProcess[str]]:
    src = tmp_path_factory.mktemp("batch-src")
    dst = tmp_path_factory.mktemp("batch-dst") / "out"
    picked = people_images[:3]
    (src / "people").mkdir()
    for p in picked:
        shutil.copy(p, src / "people" / p.name)
    shutil.copy(evaldir / "video" / "carphone.mp4", src / "carphone.mp4")
    from samples import sample_path

    shutil.copy(sample_path("bigbuckbunny"), src / "bunny.mp4")  # no person in any frame
    (src / "broken.jpg").write_bytes(picked[0].read_bytes()[:2000])  # a truncated JPEG
    (src / "notes.txt").write_text("not an image")
    proc = _run_batch(str(src), str(dst), "--address", ray_cluster, "--workers", "2", "--max-size", "320", "--max-frames", "12")
    return src, dst, picked, proc


@pytest.mark.cluster
@pytest.mark.eval
def test_batch_on_a_two_node_cluster_writes_every_output(cluster_run: Any) -> None:
    _src, dst, picked, proc = cluster_run
    assert proc.returncode == 0, proc.stderr
    assert "on 2 workers x 1 threads" in proc.stderr  # one engine on each node, a read slot left
    for p in picked:
        out = dst / "people" / (p.stem + ".png")
        with Image.open(out) as img:
            assert img.format == "PNG" and img.mode == "RGBA"
            assert img.size == _expected_size(p, 320)
            alpha = np.asarray(img)[..., 3]
        assert alpha.min() == 0 and alpha.max() == 255  # a real matte: background and person

    from mattekit.video import read_frames

    frames = list(read_frames(dst / "carphone.webm"))
    assert len(frames) == 12
    assert frames[0].shape == (144, 176, 4)  # transparent VP9 keeps its alpha plane
    assert not (dst / "notes.png").exists()


@pytest.mark.cluster
@pytest.mark.eval
def test_a_bad_file_is_recorded_and_the_job_still_succeeds(cluster_run: Any) -> None:
    _src, dst, picked, proc = cluster_run
    assert proc.returncode == 0, proc.stderr
    records = {Path(r["input"]).name: r for r in _manifest(dst)}
    assert set(records) == {p.name for p in picked} | {"carphone.mp4", "bunny.mp4", "broken.jpg"}
    bad = records["broken.jpg"]
    assert bad["status"] == "error" and bad["error"] and bad["kind"] == "image"
    assert "Traceback" not in bad["error"]
    assert not (dst / "broken.png").exists()
    # A clip with no person is written but not a success, as `mattekit video` exits 1.
    bunny = records["bunny.mp4"]
    assert bunny["status"] == "error" and "no person found in any frame" in bunny["error"], bunny
    assert Path(bunny["output"]).is_file()
    for name, rec in records.items():
        if name not in ("broken.jpg", "bunny.mp4"):
            assert rec["status"] == "ok" and rec["error"] is None and rec["seconds"] > 0
            assert Path(rec["output"]).is_file()
    assert records["carphone.mp4"]["kind"] == "video"
    assert "broken.jpg" in proc.stderr  # the user sees it too


def test_object_keys_never_write_outside_dst(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Object stores allow keys with empty segments and '..': none of them may leave DST."""
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    dst.mkdir()
    spec = Spec(batch.resolve(str(src)), batch.resolve(str(dst)), Options(), VideoSettings())
    keys = [
        f"{src}//abs/path.jpg",
        f"{src}/../escape.jpg",
        f"{src}/./a/../../b.jpg",
        f"{src}/ok.jpg",
        f"{src}///{tmp_path}/twice.jpg",
    ]
    monkeypatch.setattr(sources, "list_files", lambda loc: keys if loc is spec.src else [])
    work = batch.plan(spec)
    targets = sorted(Path(i.target).relative_to(dst).as_posix() for i in work.todo)
    assert targets == ["abs/path.png", "ok.png", f"{tmp_path.relative_to('/')}/twice.png"], targets
    assert work.ignored == 2  # the keys with '..'
    for rel in ("../x.png", "a/../../x.png", "", "/"):
        with pytest.raises(InvalidInput):
            spec.dst.join(rel)
    assert spec.dst.join("//etc/passwd") == f"{dst}/etc/passwd"
