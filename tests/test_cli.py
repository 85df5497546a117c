"""`mattekit remove` run as a user runs it: a subprocess, real files, exit codes, stderr text.

Images are kept small (--max-size, --preset fast) where the point is the command's behaviour."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

SMALL = ["--preset", "fast", "--max-size", "128"]


def mattekit(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, code: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the real command line (or ``code`` that ends by calling the CLI's main)."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "mattekit"]
    return subprocess.run(
        [*cmd, *args], input=stdin, capture_output=True, cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONIOENCODING": "utf-8"}
    )


def err(proc: subprocess.CompletedProcess) -> str:
    text = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    return text


def rgba_png(path: Path) -> Image.Image:
    img = Image.open(path)
    assert (img.format, img.mode) == ("PNG", "RGBA"), path
    return img


@pytest.fixture
def tree(tmp_path: Path, sample_photo: Path, sample_grey_photo: Path) -> Path:
    """in/a.png, in/sub/c.png, in/sub/deeper/a.jpg: real photos in a folder tree."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(sample_photo, root / "a.png")
    shutil.copy(sample_grey_photo, root / "sub" / "c.png")
    Image.open(sample_photo).convert("RGB").save(root / "sub" / "deeper" / "a.jpg", quality=90)
    (root / "notes.txt").write_text("not an image, and not named like one: ignored")
    return root


def test_version_imports_nothing_heavy() -> None:
    """--version answers without loading onnxruntime, numpy, PyAV, Ray, OpenCV or Pillow."""
    code = textwrap.dedent("""
        import sys
        sys.argv = ["mattekit", "--version"]
        from mattekit.cli import app
        try:
            app()
        except SystemExit:
            pass
        print([m for m in ("onnxruntime", "numpy", "av", "ray", "cv2", "PIL") if m in sys.modules])
    """)
    proc = mattekit(code=code)
    lines = proc.stdout.decode().splitlines()
    assert proc.returncode == 0 and lines[0].startswith("mattekit 0.") and lines[1] == "[]", lines


def test_folder_keeps_structure_reports_bad_files_and_goes_on(tree: Path, tmp_path: Path) -> None:
    (tree / "sub" / "bad.jpg").write_text("this is text, not a JPEG")
    (tree / "empty.png").write_bytes(b"")
    data = (tree / "a.png").read_bytes()
    (tree / "sub" / "truncated.png").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    proc = mattekit("remove", str(tree), "-o", str(out), *SMALL)
    text = err(proc)
    assert proc.returncode == 1, text
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert made == ["a.png", "sub/c.png", "sub/deeper/a.png"], made
    for p in out.rglob("*.png"):
        assert max(rgba_png(p).size) == 128
    for i in range(1, 7):
        assert f"[{i}/6]" in text  # progress, one line per file when stderr is not a terminal
    assert "empty.png" in text and "is empty" in text
    assert "bad.jpg" in text and "not an image we can read" in text
    assert "truncated.png" in text and "truncated or corrupt" in text
    assert "3 done, 3 failed" in text


def test_overwrite_and_skip_existing(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = mattekit("remove", str(tree / "sub"), "-o", str(out), *SMALL)
    assert first.returncode == 0, err(first)
    target = out / "c.png"
    stamp = target.stat().st_mtime_ns
    again = mattekit("remove", str(tree / "sub"), "-o", str(out), *SMALL)
    assert again.returncode == 1 and "exists (use --overwrite or --skip-existing)" in err(again)
    skip = mattekit("remove", str(tree / "sub"), "-o", str(out), "--skip-existing", *SMALL)
    assert skip.returncode == 0 and "skipping 2" in err(skip)
    assert target.stat().st_mtime_ns == stamp
    (tree / "sub" / "new.png").write_bytes((tree / "a.png").read_bytes())
    mixed = mattekit("remove", str(tree / "sub"), "-o", str(out), *SMALL)
    text = err(mixed)  # two exist (reported, counted as failed), one is new (done)
    assert mixed.returncode == 1 and "1 done, 2 failed" in text and (out / "new.png").is_file()
    (tree / "sub" / "new.png").unlink()
    (out / "new.png").unlink()
    over = mattekit("remove", str(tree / "sub"), "-o", str(out), "--overwrite", "--preset", "fast", "--max-size", "64")
    assert over.returncode == 0, err(over)
    assert rgba_png(target).size == (64, 64)


def test_default_output_beside_input_and_never_reprocessed(tree: Path) -> None:
    folder = tree / "sub" / "deeper"
    proc = mattekit("remove", str(folder), *SMALL)
    assert proc.returncode == 0, err(proc)
    assert rgba_png(folder / "a-cutout.png").size == (128, 128)
    again = mattekit("remove", str(folder), "--skip-existing", *SMALL)
    assert again.returncode == 0, err(again)
    assert sorted(p.name for p in folder.iterdir()) == ["a-cutout.png", "a.jpg"]


def test_stdin_to_stdout(sample_photo: Path) -> None:
    proc = mattekit("remove", "-", "-o", "-", "--format", "webp", *SMALL, stdin=sample_photo.read_bytes())
    assert proc.returncode == 0, err(proc)
    img = Image.open(io.BytesIO(proc.stdout))
    assert (img.format, img.mode, img.size) == ("WEBP", "RGBA", (128, 128))
    bad = mattekit("remove", "-", *SMALL, stdin=b"GIF89a but not really")
    assert bad.returncode == 1 and bad.stdout == b"" and "<stdin>" in err(bad)
    with open("/dev/full", "wb") as full:  # stdout redirected to a full disk: said so, not a bug report
        proc = subprocess.run(
            [sys.executable, "-m", "mattekit", "remove", str(sample_photo), "-o", "-", *SMALL],
            stdout=full,
            stderr=subprocess.PIPE,
        )
    assert proc.returncode == 1 and "cannot write to stdout: No space left on device" in err(proc), err(proc)
    assert "internal error" not in err(proc)


def test_single_file_with_background_image_as_jpeg(tree: Path, tmp_path: Path) -> None:
    target = tmp_path / "on-camera.jpg"
    proc = mattekit(
        "remove",
        str(tree / "a.png"),
        "-o",
        str(target),
        "--format",
        "jpg",
        "--bg",
        str(tree / "sub" / "c.png"),
        "--crop",
        "--margin",
        "5%",
        *SMALL,
    )
    assert proc.returncode == 0, err(proc)
    img = Image.open(target)
    assert img.format == "JPEG" and img.mode == "RGB" and max(img.size) <= 128
    assert "→" in err(proc)


def test_glob(tree: Path, tmp_path: Path) -> None:
    proc = mattekit("remove", str(tree / "**" / "*.png"), "-o", str(tmp_path / "g"), "--mask", *SMALL)
    assert proc.returncode == 0, err(proc)
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["a.png", "c.png"]
    assert Image.open(tmp_path / "g" / "c.png").mode == "L"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--format", "gif"], "format must be one of"),
        (["--format", "jpg"], "JPEG has no transparency"),
        (["--ratio", "2"], "ratio must be in (0, 1]"),
        (["--margin", "lots"], "margin must be pixels"),
        (["--bg", "nosuchcolour"], "unknown colour"),
        (["--overwrite", "--skip-existing"], "exclude each other"),
    ],
)
def test_usage_errors_exit_2(tree: Path, args: list[str], message: str) -> None:
    proc = mattekit("remove", str(tree / "a.png"), *args)
    assert proc.returncode == 2 and message in err(proc)


def test_missing_input_exits_2(tmp_path: Path) -> None:
    proc = mattekit("remove", str(tmp_path / "nothing-here.jpg"))
    assert proc.returncode == 2 and "no such file or folder" in err(proc)
    (tmp_path / "empty-dir").mkdir()
    proc = mattekit("remove", str(tmp_path / "empty-dir"))
    assert proc.returncode == 2 and "no images found" in err(proc)


def test_never_overwrites_an_input(tree: Path) -> None:
    proc = mattekit("remove", str(tree / "a.png"), "-o", str(tree / "a.png"), "--overwrite")
    assert proc.returncode == 2 and "overwritten by its own result" in err(proc)


def test_never_overwrites_another_input_or_a_device(tree: Path, tmp_path: Path) -> None:
    """In-process (the rules are mattekit.plan's): a.png's result a-cutout.png is also an input
    (named, or a hard link to one), two globbed files of one name, and -o /dev/stdout."""
    from mattekit.errors import InvalidOption
    from mattekit.plan import plan_files

    photo = tree / "a.png"
    given = tree / "a-cutout.png"
    shutil.copy(photo, given)
    with pytest.raises(InvalidOption, match="the result of .*a.png would overwrite the input .*a-cutout.png"):
        plan_files([str(photo), str(given)], None, "png")
    linked = tmp_path / "elsewhere.png"
    os.link(given, linked)
    with pytest.raises(InvalidOption, match="would overwrite the input .*elsewhere.png"):
        plan_files([str(photo), str(linked)], None, "png")
    for sub in ("x", "y"):
        (tmp_path / "g" / sub).mkdir(parents=True)
        shutil.copy(photo, tmp_path / "g" / sub / "same.png")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidOption, match="same.png and .*same.png would both write .*give their folder"):
        plan_files([str(tmp_path / "g" / "**" / "*.png")], str(out), "png")
    assert len(plan_files([str(tmp_path / "g")], str(out), "png")) == 2  # the folder keeps x/ and y/
    with pytest.raises(InvalidOption, match="not a regular file .*; use -o -"):
        plan_files([str(photo)], "/dev/stdout", "png")


def test_unexpected_errors_cost_one_file_and_print_no_traceback(tree: Path, tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import sys
        from mattekit.matter import Matter
        real = Matter.process
        def buggy(self, source, *a, **k):
            if str(source).endswith("c.png"):
                raise RuntimeError("simulated bug")
            return real(self, source, *a, **k)
        Matter.process = buggy
        sys.argv = ["mattekit", *sys.argv[1:]]
        from mattekit.cli import main
        main()
    """)
    proc = mattekit("remove", str(tree / "sub"), "-o", str(tmp_path / "out"), *SMALL, code=code)
    text = err(proc)
    assert proc.returncode == 1
    assert "internal error (RuntimeError: simulated bug)" in text and "1 done, 1 failed" in text
    assert (tmp_path / "out" / "deeper" / "a.png").is_file()


@pytest.mark.eval
def test_folder_of_dev_images(people_images: list[Path], tmp_path: Path) -> None:
    """Issue 3's acceptance: one RGBA PNG per dev image, structure kept, progress shown."""
    src = people_images[0].parent
    out = tmp_path / "cutouts"
    proc = mattekit("remove", str(src), "-o", str(out), "--preset", "fast", "--max-size", "480", timeout=600)
    text = err(proc)
    assert proc.returncode == 0, text
    for image in people_images:
        result = rgba_png(out / image.with_suffix(".png").name)
        w, h = Image.open(image).size
        assert result.size == ((480, round(h * 480 / w)) if w >= h else (round(w * 480 / h), 480))
    n = len(people_images)
    assert f"[{n}/{n}]" in text and f"{n} done, 0 failed" in text


def test_several_inputs_need_a_folder(tree: Path, tmp_path: Path) -> None:
    proc = mattekit("remove", str(tree / "a.png"), str(tree / "sub" / "c.png"), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and "need a folder for -o" in err(proc)
    assert not (tmp_path / "x.png").exists()


def test_progress_bar_on_a_terminal(tree: Path, tmp_path: Path) -> None:
    """On a terminal, stderr shows a live bar (rich) instead of one line per file."""
    import pty
    import threading

    main_fd, term_fd = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:  # read while it runs: a full terminal buffer would block the bar
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:  # EIO: the other side is closed and drained
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mattekit", "remove", str(tree), "-o", str(tmp_path / "o"), *SMALL],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=term_fd,
            timeout=300,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
    finally:
        os.close(term_fd)
        reader.join(timeout=10)
        os.close(main_fd)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0 and "Traceback" not in text
    assert "removing backgrounds" in text and "3/3" in text and "3 done, 0 failed" in text
    assert "[1/3]" not in text  # the per-file lines are for logs, not terminals


def test_device_reaches_the_engine_without_touching_the_environment(tree: Path, tmp_path: Path) -> None:
    code = textwrap.dedent("""
        import atexit, os, sys
        from mattekit.core import engine
        seen = []
        real = engine.Engine.__init__
        def spy(self, *a, **k):
            seen.append(k.get("device"))
            real(self, *a, **k)
        engine.Engine.__init__ = spy
        atexit.register(lambda: print(seen[:1], os.environ.get("MATTEKIT_DEVICE")))
        sys.argv = ["mattekit", "--device", "CPU", *sys.argv[1:]]
        from mattekit.cli import main
        main()
    """)
    env_device = os.environ.pop("MATTEKIT_DEVICE", None)
    try:
        proc = mattekit("remove", str(tree / "a.png"), "-o", str(tmp_path / "a.png"), *SMALL, code=code)
    finally:
        if env_device is not None:
            os.environ["MATTEKIT_DEVICE"] = env_device
    assert proc.returncode == 0, err(proc)
    assert proc.stdout.decode().split() == ["['cpu']", "None"]


def test_the_still_flags_mean_the_same_in_every_command() -> None:
    """remove and batch take the same still-image flags; video the ones a clip has, same names."""
    from mattekit.cli import app

    def flags(command: str) -> dict[str, tuple]:
        return {
            p.name: (tuple(p.opts), tuple(p.secondary_opts), p.default, getattr(p, "help", None))
            for p in app.commands[command].params
        }

    remove, batch, video = flags("remove"), flags("batch"), flags("video")
    stills = ["format", "preset", "mask", "bg", "bg_fit", "crop", "margin", "ratio", "max_size", "quality", "decontaminate"]
    # The same flags and defaults; the help too, but --format's (remove reads it from -o's name, batch has no -o).
    assert {k: remove[k][:3] for k in stills} == {k: batch[k][:3] for k in stills}
    assert {k: remove[k] for k in stills if k != "format"} == {k: batch[k] for k in stills if k != "format"}
    for name in ("bg", "bg_fit", "mask", "preset", "ratio", "decontaminate"):
        assert video[name][:3] == remove[name][:3], name


def test_output_format_follows_the_file_name(tree: Path, tmp_path: Path) -> None:
    """-o out.jpg holds JPEG bytes, out.webp WebP (issue 28: both held PNG); a name the result
    cannot live under is refused before any work, and so is --format against the name."""
    src = str(tree / "a.png")
    for name, fmt, mode, extra in [
        ("out.jpeg", "JPEG", "RGB", ["--bg", "white"]),
        ("out.webp", "WEBP", "RGBA", []),
        ("matte.JPG", "JPEG", "L", ["--mask"]),
    ]:
        proc = mattekit("remove", src, "-o", str(tmp_path / name), *extra, *SMALL)
        assert proc.returncode == 0, err(proc)
        img = Image.open(tmp_path / name)
        assert (img.format, img.mode) == (fmt, mode), name
    refused = [
        (["-o", str(tmp_path / "cut.jpg")], "names a JPEG, which has no transparency"),
        (["-o", str(tmp_path / "cut.png"), "--format", "webp"], "contradicts the name"),
        (["-o", str(tmp_path / "cut.jpg"), "-f", "png", "--bg", "white"], "contradicts the name"),
        (["-o", str(tmp_path / "cut.bmp")], "not .bmp"),
        ([str(tree / "sub" / "c.png"), "-o", str(tmp_path / "cut.jpg")], "2 inputs need a folder"),
    ]
    for args, message in refused:
        proc = mattekit("remove", src, *args, *SMALL)
        assert proc.returncode == 2 and message in err(proc), (args, err(proc))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "matte.JPG", "out.jpeg", "out.webp"]
    # A name without a format's suffix, and -f jpeg agreeing with .jpg, still work.
    proc = mattekit("remove", src, "-o", str(tmp_path / "plain"), *SMALL)
    assert proc.returncode == 0 and Image.open(tmp_path / "plain").format == "PNG", err(proc)
    proc = mattekit("remove", src, "-o", str(tmp_path / "x.jpg"), "-f", "jpeg", "--bg", "black", *SMALL)
    assert proc.returncode == 0 and Image.open(tmp_path / "x.jpg").format == "JPEG", err(proc)


def test_serve_on_a_busy_port_ends_with_the_error() -> None:
    """Issue 28: uvicorn's bind error came before the model's "ready" line (exit 3); the command
    now ends with one line naming the port, before anything starts."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = mattekit("serve", "--port", str(port), timeout=60)
    lines = err(proc).strip().splitlines()
    assert proc.returncode == 1, lines
    assert lines == [
        f"mattekit: error: cannot listen on 127.0.0.1:{port}: port {port} is already in use "
        "(another server?): choose another --port"
    ]
