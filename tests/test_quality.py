"""Matte quality: the presets against the original demo, on the dev set's ground truth.

The dev set is three people (``people/manifest.csv`` says who; nothing here counts files), and
a margin measured on them does not transfer: per person, one pass at one size lands anywhere in
about ±30 % of the demo (five people so far, dev and an independent check). So these tests hold
the presets to what their *mechanisms* promise, not to a dev score:

- ``balanced`` costs the model what the demo did at 1080p (RVM's 512 px rule against ratio 0.25),
  so it is held to a band around the demo, not to a gain: no person worse by more than a third,
  the mean over people within 10 %.
- ``best`` averages the default's pass with its mirror image, three passes each: the average's
  SAD is never above its members' mean (checked on every image, the exact identity and the
  inequality), and it must not be worse than the default for any person.
- Video: no preset's stream is less stable than the plain recurrent pass.

The numbers come from the bench's own functions (``bench/quality.py``), so the test and the
tables in docs/quality.md measure the same thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench import quality as bench

from mattekit import presets
from mattekit.errors import InvalidOption

pytestmark = pytest.mark.unit  # make unit: in-process and fast

ROOT = Path(__file__).resolve().parents[1]


# -- recipes, no evaluation data needed -------------------------------------------------------
def test_every_preset_has_a_recipe_and_unknown_names_are_refused():
    from mattekit.options import PRESET_NAMES

    assert set(PRESET_NAMES) == set(presets.RECIPES)
    with pytest.raises(InvalidOption):
        presets.recipe("ultra")


def test_the_default_is_rvms_published_rule_and_fast_is_cheaper():
    """balanced: one pass with the longer side at 512 px (ratio = min(512 / long side, 1)), about
    the demo's model cost at 1080p; fast: one smaller pass; best: the default's pass and its
    mirror image, three passes each."""
    balanced, fast, best = (presets.recipe(n) for n in ("balanced", "fast", "best"))
    assert balanced.runs("auto", 1080, 1920) == 1 and balanced.ratios("auto", 1080, 1920) == [512 / 1920]
    assert balanced.ratios("auto", 300, 200) == [1.0]
    assert fast.runs("auto", 1080, 1920) == 1 and fast.ratios("auto", 1080, 1920)[0] < 512 / 1920
    r = balanced.ratios("auto", 1080, 1920)[0]
    assert best.members("auto", 1080, 1920) == [(r, False), (r, True)] and best.passes == 3
    assert best.ratios(0.25, 1080, 1920) == [0.25]  # a fixed ratio replaces the sizes


def test_the_default_costs_the_model_about_what_the_demo_did():
    """The network's time follows its input's pixels: at 1080p, 512x288 against the demo's 480x270
    (1.14x); on larger photos the demo's fixed ratio grows with the photo, the rule does not."""
    balanced = presets.recipe("balanced")
    for h, w, most in ((1080, 1920, 1.2), (2160, 3840, 0.3)):
        ours = (h * balanced.ratios("auto", h, w)[0]) * (w * balanced.ratios("auto", h, w)[0])
        assert ours <= most * (h * 0.25) * (w * 0.25)


def test_video_keeps_its_640_px_pass_for_every_preset():
    for name in presets.PRESETS:
        assert presets.video_recipe(name).ratios("auto", 720, 1280) == [0.5]


def test_a_preset_stream_starts_exactly_like_the_still_and_keeps_its_shape(engine):
    """The first frame of a preset's stream is the still result of its video recipe; the next
    frames are one run per member (the recurrent state is the warm-up)."""
    from PIL import Image
    from samples import sample_path

    with Image.open(sample_path("astronaut")) as im:
        rgb = np.asarray(im.convert("RGB").resize((192, 192)))
    for name in presets.PRESETS:
        still = presets.run_recipe(engine, rgb, presets.video_recipe(name), "auto", foreground=True)
        s = presets.stream(engine, name, "auto", foreground=True)
        first = s.process(rgb)
        np.testing.assert_allclose(first.alpha, still.alpha, atol=1e-6)
        np.testing.assert_allclose(first.foreground, still.foreground, atol=1e-6)
        second = s.process(rgb)
        assert second.alpha.shape == rgb.shape[:2] and second.foreground.shape == rgb.shape
        assert second.alpha.min() >= 0.0 and second.alpha.max() <= 1.0
        s.reset()
        np.testing.assert_allclose(s.process(rgb).alpha, still.alpha, atol=1e-6)


# -- on the dev set ---------------------------------------------------------------------------
# One pass at one size is a lottery per person (about ±30 % of the demo, five people so far): a
# person may come out worse by up to a third without the preset being wrong, and the mean over
# the people (each weighing the same) shrinks that noise, so it is held to 10 %.
PERSON_BAND = 4 / 3
MEAN_BAND = 1.10


@pytest.fixture(scope="module")
def people_summary(evaldir, engine):
    pipes = bench.build_pipelines()
    samples = bench.load_samples(evaldir, "people")
    listed = bench.manifest(evaldir / "people")
    assert {s.stem for s in samples} == set(listed)  # every listed pair, and nothing else
    assert {s.person for s in samples} == {row["fg_id"] for row in listed.values()}
    rows = bench.run_pipelines(engine, [pipes[n] for n in ("demo", "balanced", "best")], samples, with_conn=False, log=None)
    return bench.summarise(rows)["people"]["pipelines"]


def _ratios(summary: dict, name: str) -> dict[str, float]:
    demo = summary["demo"]["groups"]
    return {who: d["sad"] / demo[who]["sad"] for who, d in summary[name]["groups"].items()}


@pytest.mark.eval
def test_the_default_stays_in_the_band_around_the_demo(people_summary):
    ratios = _ratios(people_summary, "balanced")
    assert len(ratios) >= 3
    for who, q in ratios.items():
        assert q <= PERSON_BAND, f"person {who}: balanced SAD {q:.2f}x the demo's"
    mean = float(np.mean(list(ratios.values())))
    assert mean <= MEAN_BAND, f"balanced: mean over people {mean:.2f}x the demo's ({ratios})"


@pytest.mark.eval
def test_best_is_not_worse_than_the_default_for_any_person(people_summary):
    best, balanced = people_summary["best"]["groups"], people_summary["balanced"]["groups"]
    for who, d in best.items():
        assert d["sad"] <= balanced[who]["sad"], f"person {who}: best SAD {d['sad']:.2f} vs balanced {balanced[who]['sad']:.2f}"


@pytest.mark.eval
def test_an_average_is_never_worse_than_its_members(evaldir, engine):
    """``best`` is exactly the mean of its members (the mirror member mirrored back), so its SAD
    is at most their mean SAD, on every image: a property of averaging, not of the data. Two
    images per person (each member costs three passes)."""
    from mattekit import metrics

    rec = presets.recipe("best")
    for s in bench.load_samples(evaldir, "people", limit=2):
        h, w = s.alpha.shape
        members = []
        for r, flip in rec.members("auto", h, w):
            src = np.ascontiguousarray(s.rgb[:, ::-1]) if flip else s.rgb
            a = engine.matte(src, r, passes=rec.passes).alpha
            members.append(a[:, ::-1] if flip else a)
        best = presets.run(engine, s.rgb, "best", "auto", foreground=False).alpha
        np.testing.assert_allclose(best, np.mean(members, axis=0), atol=1e-5)
        mean_sad = np.mean([metrics.sad(a, s.alpha) for a in members])
        assert metrics.sad(best, s.alpha) <= mean_sad + 1e-6, s.stem


@pytest.mark.eval
def test_presets_are_not_less_stable_on_video_than_the_plain_recurrent_pass(evaldir, engine):
    """dtSSD on the GT clip (first 30 frames: the first frame's warm-up matters most at the start)."""
    scores = bench.video_scores(engine, evaldir, list(presets.PRESETS), limit=30)
    plain = scores["plain"]["dtssd"]
    for name in presets.PRESETS:
        assert scores[name]["dtssd"] <= plain * 1.001, f"{name}: dtSSD {scores[name]['dtssd']:.4f} vs plain {plain:.4f}"
