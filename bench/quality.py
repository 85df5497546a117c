"""Matte quality bench: named pipelines scored against ground truth, with their time.

    .venv/bin/python -m bench.quality                         # default pipelines, people + detail
    .venv/bin/python -m bench.quality --pipelines demo,balanced --sets people
    .venv/bin/python -m bench.quality --group sweep --sets people   # the ratio sweep
    .venv/bin/python -m bench.quality --video --colour        # + dtSSD on the GT clip, colour errors

The evaluation set is ``$MATTEKIT_EVAL_DIR`` (default ``../shared/eval`` beside the repo). Every
pipeline is a composition of steps over the engine: a ratio rule (fixed 0.25 as the original demo,
or "auto": the low-resolution pass's longer side in px), warm-up passes, an average over members
(several ratios and/or the mirror image), multi-scale fusion (a low-ratio silhouette with a
high-ratio pass in its uncertain band), and refinement of the semi-transparent band with a guided
filter or PyMatting's closed-form matting. Scores: SAD, MSE, Grad, Conn (``mattekit.metrics``) and
seconds per image, per person and overall; a quality-vs-time Pareto front. Writes
``bench/out/quality.json`` and ``bench/out/quality.md`` (the README table), and contact sheets.

Colour (``--colour``): the people images were built as I = a·F + (1-a)·B from the Debian package
``lomiri-wallpapers-16.04`` backgrounds. We rebuild B the same way (Lanczos cover + centre crop;
it matches I where a = 0 to JPEG noise), so the ground-truth composite over any new background N is
I + (1-a)(N - B) — no F needed. Our composite is α̂·F̂ + (1-α̂)·N with F̂ the original pixels, RVM's
``fgr`` decontamination, or PyMatting's ``estimate_foreground_ml``. The package is fetched with
``apt-get download`` into the cache (``$MATTEKIT_HOME/bench``); without it the colour part is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mattekit import compose, metrics, presets
from mattekit.core.engine import Engine, Matte, get_engine
from mattekit.core.passes import pass_ratio
from mattekit.core.streams import Stream

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "bench" / "out"


def eval_dir() -> Path:
    return Path(os.environ.get("MATTEKIT_EVAL_DIR") or ROOT.parent / "shared" / "eval")


# -- data -------------------------------------------------------------------------------------
@dataclass
class Sample:
    set: str  # "people" | "things" | "detail"
    stem: str
    person: str  # the group a result is reported by: people: the person (C, D, E…); things: the kind; detail: "detail"
    rgb: np.ndarray
    alpha: np.ndarray  # GT, float64 [0, 1]
    subject: str = ""  # things: the object (white_puppy, sieve…); people: the person

    @property
    def background(self) -> str | None:
        return self.stem.split("__", 1)[1] if "__" in self.stem else None


def manifest(folder: Path) -> dict[str, dict[str, str]]:
    """``manifest.csv`` rows by image stem (empty where a set has none, e.g. detail/): the set's
    own list of who and what each image shows, so nothing here counts or names files by hand."""
    import csv

    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {Path(row["image"]).stem: row for row in csv.DictReader(f)}


def _group(subset: str, stem: str, row: dict[str, str] | None) -> tuple[str, str]:
    """(group, subject) of one image: person for people, kind and object for things."""
    if subset == "things":
        if row is None:
            raise ValueError(f"things/{stem}: not in things/manifest.csv")
        return row["kind"], row["object"]
    if subset == "people":
        person = row["fg_id"] if row is not None else stem.split("_", 1)[0]
        return person, person
    return "detail", "detail"


def load_samples(root: Path, subset: str = "people", limit: int | None = None, match: str = "") -> list[Sample]:
    """``image/X`` + ``alpha/X.png`` pairs under ``root/subset`` (sorted; ``limit`` per group)."""
    folder = root / subset
    rows = manifest(folder)
    images = sorted(p for p in (folder / "image").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    out: list[Sample] = []
    per_group: dict[str, int] = {}
    for path in images:
        if match and match not in path.stem:
            continue
        group, subject = _group(subset, path.stem, rows.get(path.stem))
        if limit is not None and per_group.get(group, 0) >= limit:
            continue
        per_group[group] = per_group.get(group, 0) + 1
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(folder / "alpha" / (path.stem + ".png")) as im:
            gt = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
        out.append(Sample(subset, path.stem, group, rgb, gt, subject))
    return out


# -- steps ------------------------------------------------------------------------------------
Step = Callable[[Engine, np.ndarray], Matte]


def plain(ratio: object, passes: int = 1) -> Step:
    """One member: a fixed float ratio or ``("auto", target_px)``."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        h, w = rgb.shape[:2]
        r = pass_ratio("auto", h, w, ratio[1]) if isinstance(ratio, tuple) else ratio
        return engine.matte(rgb, r, passes=passes)

    return step


def recipe_step(rec: presets.Recipe) -> Step:
    """Any recipe (the presets' own code path, so the bench measures what users get)."""
    return lambda engine, rgb: presets.run_recipe(engine, rgb, rec, "auto")


def preset_step(name: str) -> Step:
    return lambda engine, rgb: presets.run(engine, rgb, name, "auto", foreground=False)


_generals: dict[tuple[int, bool], object] = {}


def general_step(size: int = 0, fp32: bool | None = None) -> Step:
    """The general model (ISNet) alone, at ``size`` (0: the library's default) and precision."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        from mattekit.core.models.isnet import DEFAULT_FP32, DEFAULT_SIZE, GeneralEngine

        key = (size or DEFAULT_SIZE, DEFAULT_FP32 if fp32 is None else fp32)
        gen = _generals.get(key)
        if gen is None:
            gen = _generals[key] = GeneralEngine(threads=engine.threads or None, size=key[0], fp32=key[1])
        return Matte(gen.matte(rgb))  # type: ignore[attr-defined]

    return step


def subject_step(subject: str) -> Step:
    """The library's own choice of model (``Options.subject``) with the default preset."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        from mattekit.matter import Matter
        from mattekit.options import Options

        return Matter(engine=engine).matte(rgb, Options(subject=subject)).matte  # type: ignore[arg-type]

    return step


def uncertain_band(alpha: np.ndarray, lo: float = 0.02, hi: float = 0.98, grow: int = 8) -> np.ndarray:
    """Pixels near a partial alpha: the semi-transparent band, widened by ``grow`` px."""
    import cv2

    band = ((alpha > lo) & (alpha < hi)).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(band, k).astype(bool)


def fused(low: Step, high: Step, grow: int = 8) -> Step:
    """Silhouette from ``low``; inside its uncertain band, ``high``'s finer edges (feathered)."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        import cv2

        a_low = low(engine, rgb).alpha
        a_high = high(engine, rgb).alpha
        w = cv2.GaussianBlur(uncertain_band(a_low, grow=grow).astype(np.float32), (0, 0), grow / 2)
        return Matte(a_low * (1 - w) + a_high * w)

    return step


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (box filters from OpenCV)."""
    import cv2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov = box(guide * src) - mean_i * mean_p
    var = box(guide * guide) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def guided(inner: Step, radius: int = 4, eps: float = 1e-3) -> Step:
    """Refine only the uncertain band of ``inner``'s alpha with a guided filter on the photo."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        import cv2

        m = inner(engine, rgb)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        refined = np.clip(guided_filter(grey, m.alpha.astype(np.float32), radius, eps), 0, 1)
        band = uncertain_band(m.alpha, grow=2)
        return Matte(np.where(band, refined, m.alpha).astype(np.float32), m.foreground)

    return step


def closed_form(inner: Step, scale: float = 0.5) -> Step:
    """Re-estimate the uncertain band with PyMatting's closed-form matting on a trimap from
    ``inner``'s alpha (sure = outside the band). Solved at ``scale`` of the image for time."""

    def step(engine: Engine, rgb: np.ndarray) -> Matte:
        import cv2
        from pymatting import estimate_alpha_cf

        m = inner(engine, rgb)
        h, w = m.alpha.shape
        band = uncertain_band(m.alpha, grow=4)
        trimap = np.where(band, 0.5, (m.alpha >= 0.5).astype(np.float64))
        sw, sh = max(16, int(w * scale)), max(16, int(h * scale))
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
        tri = cv2.resize(trimap, (sw, sh), interpolation=cv2.INTER_NEAREST)
        a = estimate_alpha_cf(small, tri)
        a = cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return Matte(np.where(band, np.clip(a, 0, 1), m.alpha).astype(np.float32), m.foreground)

    return step


@dataclass(frozen=True)
class Pipeline:
    name: str
    about: str
    step: Step = field(compare=False)
    groups: tuple[str, ...] = ()


def _rec(name: str, targets: Sequence[int], passes: int, flip: bool) -> presets.Recipe:
    return presets.Recipe(name, tuple(targets), passes, flip, decontaminate=True)


def build_pipelines() -> dict[str, Pipeline]:
    P: list[Pipeline] = [
        Pipeline("demo", "the original demo: fixed ratio 0.25, empty state, one pass", plain(0.25), ("default", "test")),
        Pipeline("fast", "preset fast", preset_step("fast"), ("default", "test", "preset")),
        Pipeline("balanced", "preset balanced (the default)", preset_step("balanced"), ("default", "test", "preset")),
        Pipeline("best", "preset best", preset_step("best"), ("default", "test", "preset")),
        Pipeline("auto512x3", "auto ratio 512 px, 3 passes (the issue's trick)", plain(("auto", 512), 3), ("default",)),
        Pipeline("auto640x3", "auto ratio 640 px, 3 passes", plain(("auto", 640), 3), ("passes",)),
        Pipeline("auto640x6", "auto ratio 640 px, 6 passes", plain(("auto", 640), 6), ("passes",)),
        Pipeline("flip640x3", "640 px + mirror, 3 passes each", recipe_step(_rec("f", (640,), 3, True)), ("default",)),
        Pipeline("ens3", "average of 576/640/768 px, 1 pass each", recipe_step(_rec("e", (576, 640, 768), 1, False)), ("sweep",)),
        Pipeline(
            "ens3x3", "average of 576/640/768 px, 3 passes each", recipe_step(_rec("e", (576, 640, 768), 3, False)), ("default",)
        ),
        Pipeline(
            "ens512-768",
            "average of 512/640/768 px, 1 pass each",
            recipe_step(_rec("e", (512, 640, 768), 1, False)),
            ("ensemble",),
        ),
        Pipeline(
            "ens512-768x2",
            "average of 512/640/768 px, 2 passes each",
            recipe_step(_rec("e", (512, 640, 768), 2, False)),
            ("ensemble",),
        ),
        Pipeline(
            "ens448-768",
            "average of 448/512/576/640/704/768 px, 1 pass each",
            recipe_step(_rec("e", (448, 512, 576, 640, 704, 768), 1, False)),
            ("ensemble",),
        ),
        Pipeline(
            "ens448-768x2",
            "average of 448/512/576/640/704/768 px, 2 passes each",
            recipe_step(_rec("e", (448, 512, 576, 640, 704, 768), 2, False)),
            ("ensemble",),
        ),
        Pipeline(
            "flipens512-640",
            "average of 512/640 px and their mirror images, 1 pass each",
            recipe_step(_rec("e", (512, 640), 1, True)),
            ("ensemble",),
        ),
        # Around the default's own size: each member is a draw of the same "ratio lottery" as
        # the default's one pass (the mirror image too: RVM was trained with flips), so their
        # average is at most their mean SAD, whose expectation is the default's.
        Pipeline("flip512", "512 px + mirror, 1 pass each", recipe_step(_rec("f", (512,), 1, True)), ("around",)),
        Pipeline("flip512x3", "512 px + mirror, 3 passes each", recipe_step(_rec("f", (512,), 3, True)), ("around",)),
        Pipeline(
            "ens448-576", "average of 448/512/576 px, 1 pass each", recipe_step(_rec("e", (448, 512, 576), 1, False)), ("around",)
        ),
        Pipeline(
            "ens448-576x3",
            "average of 448/512/576 px, 3 passes each",
            recipe_step(_rec("e", (448, 512, 576), 3, False)),
            ("around",),
        ),
        Pipeline(
            "flipens448-576",
            "average of 448/512/576 px and their mirror images, 1 pass each",
            recipe_step(_rec("e", (448, 512, 576), 1, True)),
            ("around",),
        ),
        # Photos without a person (docs/quality.md): the general model, and the routing.
        Pipeline("general", "the general model (ISNet) at the library's size and precision", general_step(), ("subject",)),
        Pipeline("general1024", "ISNet at 1024 px, fp16 as shipped", general_step(1024, False), ("subject",)),
        Pipeline("general768fp16", "ISNet at 768 px, fp16 as shipped", general_step(768, False), ("subject",)),
        Pipeline("general640", "ISNet at 640 px, fp32", general_step(640, True), ("subject",)),
        Pipeline(
            "auto", "subject=auto: RVM, or the general model when RVM finds no person", subject_step("auto"), ("subject", "test")
        ),
        Pipeline(
            "fuse",
            "384 px silhouette, 1024 px in its uncertain band",
            fused(plain(("auto", 384)), plain(("auto", 1024))),
            ("default",),
        ),
        Pipeline("guided", "balanced + guided filter in the uncertain band", guided(preset_step("balanced")), ("default",)),
        Pipeline(
            "cf",
            "balanced + PyMatting closed-form in the band (half size; slow)",
            closed_form(preset_step("balanced")),
            ("slow",),
        ),
    ]
    for t in (384, 448, 480, 512, 544, 576, 608, 640, 672, 704, 768, 832, 896):
        P.append(Pipeline(f"auto{t}", f"auto ratio, {t} px, 1 pass", plain(("auto", t)), ("sweep",)))
        P.append(Pipeline(f"auto{t}x3", f"auto ratio, {t} px, 3 passes", plain(("auto", t), 3), ("sweep",)))
    for n in (2, 4, 8):
        P.append(Pipeline(f"auto640x{n}", f"auto ratio 640 px, {n} passes", plain(("auto", 640), n), ("passes",)))
    out: dict[str, Pipeline] = {}
    for p in P:  # a name listed twice is one pipeline in both groups
        first = out.get(p.name)
        out[p.name] = p if first is None else Pipeline(first.name, first.about, first.step, first.groups + p.groups)
    return out


# -- scoring ----------------------------------------------------------------------------------
def run_pipelines(
    engine: Engine, pipelines: Iterable[Pipeline], samples: Sequence[Sample], *, with_conn: bool = True, log=print
) -> list[dict]:
    """One row per (pipeline, image): errors and seconds. The pipelines take turns on each image,
    so on a shared machine a change of load touches all of them alike and time ratios hold."""
    pipelines = list(pipelines)
    rows = []
    for s in samples:
        for p in pipelines:
            t = time.perf_counter()
            alpha = p.step(engine, s.rgb).alpha
            dt = time.perf_counter() - t
            e = metrics.alpha_errors(alpha, s.alpha, with_conn=with_conn)
            # kept: how much of the subject came back (predicted alpha over the truth's, 1 = all
            # of it): a human-matting model on an object keeps little, which SAD alone hides.
            kept = float(alpha.sum() / max(float(s.alpha.sum()), 1.0))
            rows.append(
                {
                    "pipeline": p.name,
                    "set": s.set,
                    "image": s.stem,
                    "person": s.person,
                    "subject": s.subject,
                    "background": s.background,
                    "seconds": dt,
                    "kept": kept,
                    **e.as_dict(),
                }
            )
    if log:
        for p in pipelines:
            mine = [r for r in rows if r["pipeline"] == p.name]
            log(
                f"  {p.name:12s} SAD {np.mean([r['sad'] for r in mine]):8.3f}  {np.mean([r['seconds'] for r in mine]):6.3f} s/img"
            )
    return rows


METRICS = ("sad", "mse", "grad", "conn", "seconds", "kept")


def summarise(rows: Sequence[dict], baseline: str = "demo") -> dict:
    """Per set: per pipeline the mean of each metric overall and per group (a person, or a kind of
    object), SAD vs baseline, and the mean of the groups' ratios (each person weighs the same:
    a person whose images have large errors would otherwise carry the overall mean)."""
    out: dict = {}
    for set_name in sorted({r["set"] for r in rows}):
        sub = [r for r in rows if r["set"] == set_name]
        groups = sorted({r["person"] for r in sub}) if set_name != "detail" else []
        table: dict = {}
        for name in dict.fromkeys(r["pipeline"] for r in sub):
            mine = [r for r in sub if r["pipeline"] == name]
            entry = {m: float(np.mean([r.get(m, float("nan")) for r in mine])) for m in METRICS}
            entry["n"] = len(mine)
            entry["groups"] = {
                who: {m: float(np.mean([r.get(m, float("nan")) for r in mine if r["person"] == who])) for m in METRICS}
                for who in groups
            }
            table[name] = entry
        if baseline in table:
            base = table[baseline]
            for entry in table.values():
                entry["sad_vs_demo"] = entry["sad"] / base["sad"]
                entry["time_vs_demo"] = entry["seconds"] / base["seconds"]
                for who, d in entry["groups"].items():
                    d["sad_vs_demo"] = d["sad"] / base["groups"][who]["sad"]
                if entry["groups"]:
                    entry["group_mean_vs_demo"] = float(np.mean([d["sad_vs_demo"] for d in entry["groups"].values()]))
            # The mean can hide where a gain comes from: count the images won, and the median
            # per-image ratio (a few hard backgrounds carry most of the dev mean).
            demo_sad = {r["image"]: r["sad"] for r in sub if r["pipeline"] == baseline}
            for name, entry in table.items():
                ratios = [r["sad"] / demo_sad[r["image"]] for r in sub if r["pipeline"] == name and demo_sad[r["image"]] > 0]
                entry["wins_vs_demo"] = int(sum(q < 1.0 for q in ratios))
                entry["median_ratio_vs_demo"] = float(np.median(ratios)) if ratios else float("nan")
        out[set_name] = {"pipelines": table, "pareto": pareto(table)}
        if groups and baseline in table:
            out[set_name]["per_image"] = per_image_ratios(sub, baseline)
    return out


def image_key(row: dict) -> str:
    """A row's image as "who/what background": an object with several original composites has
    one ``orig`` each, told apart by their source."""
    who = row.get("subject") or row["person"]
    bg = row.get("background") or row["image"]
    if bg == "orig" and row["set"] == "things":
        source = row["image"].split("__", 1)[0][len(who) + 1 :]
        return f"{who} orig {source}"
    return f"{who} {bg}"


def per_image_ratios(rows: Sequence[dict], baseline: str = "demo") -> dict:
    """SAD vs the baseline for every (person, background) image, per pipeline: where a mean's
    gain comes from, and whether it holds for each person on most backgrounds."""
    demo = {r["image"]: r["sad"] for r in rows if r["pipeline"] == baseline}
    out: dict = {}
    for r in rows:
        if demo.get(r["image"]):
            key = image_key(r)
            out.setdefault(r["pipeline"], {})[key] = r["sad"] / demo[r["image"]]
    return out


def pareto(table: dict) -> list[str]:
    """Pipelines no other beats on both mean SAD and seconds, fastest first."""
    names = sorted(table, key=lambda n: (table[n]["seconds"], table[n]["sad"]))
    front, best = [], float("inf")
    for n in names:
        if table[n]["sad"] < best:
            front.append(n)
            best = table[n]["sad"]
    return front


def markdown(summary: dict, pipelines: dict[str, Pipeline], command: str) -> str:
    lines = [f"Produced by `{command}`.", ""]
    for set_name, part in summary.items():
        table = part["pipelines"]
        groups = sorted({w for e in table.values() for w in e["groups"]})
        conn = any(np.isfinite(e["conn"]) for e in table.values())  # --no-conn: no column
        head = (
            ["pipeline", "SAD", "MSE", "Grad"]
            + (["Conn"] if conn else [])
            + ["kept", "s/img", "SAD vs demo", "time vs demo", "images better than demo", "median per-image ratio"]
        )
        head += (["mean of the groups' ratios"] if groups else []) + [f"SAD {w} (vs demo)" for w in groups] + ["Pareto"]
        lines += [
            f"**{set_name}** ({next(iter(table.values()))['n']} images)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        for name, e in sorted(table.items(), key=lambda kv: kv[1]["sad"]):
            cells = [
                f"`{name}`",
                f"{e['sad']:.2f}",
                f"{e['mse']:.2f}",
                f"{e['grad']:.2f}",
                *([f"{e['conn']:.2f}"] if conn else []),
                f"{e['kept']:.2f}",
                f"{e['seconds']:.2f}",
                f"{e.get('sad_vs_demo', float('nan')):.2f}x",
                f"{e.get('time_vs_demo', float('nan')):.1f}x",
                f"{e.get('wins_vs_demo', 0)}/{e['n']}",
                f"{e.get('median_ratio_vs_demo', float('nan')):.2f}x",
            ]
            if groups:
                cells.append(f"{e.get('group_mean_vs_demo', float('nan')):.2f}x")
            cells += [f"{e['groups'][w]['sad']:.1f} ({e['groups'][w].get('sad_vs_demo', float('nan')):.2f}x)" for w in groups]
            cells.append("*" if name in part["pareto"] else "")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        if part.get("per_image"):
            lines += per_image_markdown(part["per_image"])
    lines.append(
        "Pipelines: "
        + "; ".join(
            f"`{n}` {pipelines[n].about}"
            for n in dict.fromkeys(n for part in summary.values() for n in part["pipelines"])
            if n in pipelines
        )
        + "."
    )
    return "\n".join(lines) + "\n"


# -- video: temporal coherence on the GT clip -------------------------------------------------
def video_frames(root: Path, limit: int | None = None):
    """(rgb, gt alpha) of ``video/comp_D.mp4`` in decode order (frame i ↔ comp_D_alpha/i.png)."""
    import av

    folder = root / "video"
    with av.open(str(folder / "comp_D.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if limit is not None and i >= limit:
                break
            with Image.open(folder / "comp_D_alpha" / f"{i:06d}.png") as im:
                gt = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            yield frame.to_ndarray(format="rgb24"), gt


def video_scores(engine: Engine, root: Path, names: Sequence[str], limit: int | None = None) -> dict:
    """dtSSD and mean SAD of the plain recurrent pass (``engine.stream``) and each preset's stream."""
    frames = list(video_frames(root, limit))
    streams = {"plain": Stream(engine, "auto")}
    streams.update({n: presets.stream(engine, n, "auto") for n in names})
    out = {}
    for name, s in streams.items():
        t = time.perf_counter()
        preds = [s.process(rgb).alpha for rgb, _ in frames]
        dt = (time.perf_counter() - t) / len(frames)
        gts = [g for _, g in frames]
        out[name] = {
            "dtssd": metrics.dtssd(preds, gts),
            "sad": float(np.mean([metrics.sad(p, g) for p, g in zip(preds, gts)])),
            "seconds_per_frame": dt,
            "frames": len(frames),
        }
    return out


# -- colour: composites against the ground-truth composite ------------------------------------
WALLPAPERS = {
    "aitzgorri": "aitzgorri_by_Aitzol_Berasategi.jpg",
    "life": "life_by_Aitzol_Berasategi.jpg",
    "free": "free_by_Peter_Nerlich.jpg",
    "bridge": "Bridge_by_Sander_Klootwijk.jpg",
    "seeding": "seeding_by_Clements_Engelhardt.jpg",
    "picture0b": "Picture_0B_by_freespace.jpg",
}
NEW_PHOTO = "Wine_by_Jakkub_Mede.jpg"  # a wallpaper that is no image's own background


def wallpapers() -> Path | None:
    """The Debian wallpaper folder, fetched once with ``apt-get download`` (None if impossible)."""
    from mattekit.core.store import home

    folder = home() / "bench" / "lomiri-wallpapers-16.04"
    if (folder / NEW_PHOTO).is_file():
        return folder
    try:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["apt-get", "download", "lomiri-wallpapers-16.04"], cwd=tmp, check=True, capture_output=True, timeout=300
            )
            deb = next(Path(tmp).glob("*.deb"))
            subprocess.run(["dpkg-deb", "-x", str(deb), tmp + "/x"], check=True, capture_output=True)
            folder.mkdir(parents=True, exist_ok=True)
            for f in (Path(tmp) / "x/usr/share/backgrounds").glob("*.jpg"):
                os.replace(f, folder / f.name)
    except (OSError, subprocess.SubprocessError, StopIteration) as exc:
        print(f"colour: wallpapers unavailable ({exc}); skipping", file=sys.stderr)
        return None
    return folder


def cover(path: Path, w: int, h: int) -> np.ndarray:
    """The eval set's background rule: Lanczos resize to cover w x h, centre crop. float 0..255."""
    with Image.open(path) as im:
        pic = im.convert("RGB")
    s = max(w / pic.width, h / pic.height)
    nw, nh = max(w, round(pic.width * s)), max(h, round(pic.height * s))
    pic = pic.resize((nw, nh), Image.Resampling.LANCZOS)
    l, t = (nw - w) // 2, (nh - h) // 2
    return np.asarray(pic.crop((l, t, l + w, t + h)), dtype=np.float64)


def foreground_ml(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from pymatting import estimate_foreground_ml

    return estimate_foreground_ml(rgb.astype(np.float64) / 255.0, alpha.astype(np.float64)).astype(np.float32)


def colour_scores(
    engine: Engine, samples: Sequence[Sample], folder: Path, preset: str = "balanced", sheets: int = 2, out: Path = OUT
) -> dict:
    """Mean |colour error| (8-bit levels) of composites over white, black and a new photo, inside
    the GT's semi-transparent band (0 < a < 1), for each way of getting the foreground colour.

    ``at GT alpha`` composites with the GT alpha, isolating the foreground colour; ``at our alpha``
    is what a user sees (alpha and colour errors together)."""

    rows = []
    for k, s in enumerate(samples):
        if s.background not in WALLPAPERS:
            continue  # __orig: its background photo is not available
        h, w = s.alpha.shape
        B = cover(folder / WALLPAPERS[s.background], w, h)
        I = s.rgb.astype(np.float64)
        m = presets.run(engine, s.rgb, preset, "auto", foreground=True, full_foreground=True)  # rvm_fgr_all: everywhere
        fgs = {
            "original": s.rgb.astype(np.float32) / 255.0,
            "rvm_fgr": compose.decontaminate(s.rgb, m.alpha, m.foreground).astype(np.float32) / 255.0,
            "rvm_fgr_all": m.foreground,
            "ml": foreground_ml(s.rgb, m.alpha),
        }
        news = {"white": np.full_like(B, 255.0), "black": np.zeros_like(B), "photo": cover(folder / NEW_PHOTO, w, h)}
        band = (s.alpha > 0.01) & (s.alpha < 0.99)
        a_gt = s.alpha[..., None]
        a_our = m.alpha.astype(np.float64)[..., None]
        for bg_name, N in news.items():
            truth = I + (1.0 - a_gt) * (N - B)
            for fg_name, F in fgs.items():
                F = F.astype(np.float64) * 255.0
                for which, a in (("gt_alpha", a_gt), ("our_alpha", a_our)):
                    comp = a * F + (1.0 - a) * N
                    rows.append(
                        {
                            "image": s.stem,
                            "person": s.person,
                            "bg": bg_name,
                            "fg": fg_name,
                            "alpha": which,
                            "band_err": float(np.abs(comp - truth)[band].mean()),
                        }
                    )
        if k < sheets:
            contact_sheet(s, B, news, fgs, m.alpha, out)
    out: dict = {}
    for which in ("gt_alpha", "our_alpha"):
        for fg in ("original", "rvm_fgr", "rvm_fgr_all", "ml"):
            for bg in news:
                sel = [r["band_err"] for r in rows if r["alpha"] == which and r["fg"] == fg and r["bg"] == bg]
                per = {
                    p: float(
                        np.mean(
                            [
                                r["band_err"]
                                for r in rows
                                if r["alpha"] == which and r["fg"] == fg and r["bg"] == bg and r["person"] == p
                            ]
                        )
                    )
                    for p in sorted({r["person"] for r in rows})
                }
                out.setdefault(which, {}).setdefault(fg, {})[bg] = {"mean": float(np.mean(sel)), "people": per}
    return out


def contact_sheet(s: Sample, B: np.ndarray, news: dict, fgs: dict, alpha: np.ndarray, out: Path = OUT) -> None:
    """A crop around the hair; rows: white, black, photo; columns: the ground-truth composite,
    then ours with the original colours, RVM's ``fgr`` decontamination, PyMatting's ML foreground."""
    ys, xs = np.nonzero((s.alpha > 0.05) & (s.alpha < 0.95))
    if ys.size == 0:
        return
    cy, cx = int(np.median(ys)), int(np.median(xs))
    half = 160
    t, l = max(0, cy - half), max(0, cx - half)
    sl = (slice(t, t + 2 * half), slice(l, l + 2 * half))
    I = s.rgb.astype(np.float64)
    rows = []
    for N in news.values():
        truth = (I + (1.0 - s.alpha[..., None]) * (N - B))[sl]
        cells = [truth]
        for name in ("original", "rvm_fgr", "ml"):
            F = fgs[name].astype(np.float64) * 255.0
            a = alpha.astype(np.float64)[..., None]
            cells.append((a * F + (1.0 - a) * N)[sl])
        rows.append(np.hstack(cells))
    out.mkdir(parents=True, exist_ok=True)
    sheet = np.clip(np.vstack(rows) + 0.5, 0, 255).astype(np.uint8)
    Image.fromarray(sheet).save(out / f"sheet_{s.stem}.png")


def per_image_markdown(per_image: dict) -> list[str]:
    """One row per image (person or object, background), one column per pipeline: SAD vs the
    demo. Rows, not columns, for images: the set grows by images, the pipelines compared stay few."""
    names = [n for n in per_image if n != "demo"]
    keys = sorted({k for v in per_image.values() for k in v})
    lines = [
        "**per image: SAD vs demo**",
        "",
        "| image | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{per_image[n][k]:.2f}" if k in per_image[n] else "" for n in names) + " |")
    return [*lines, ""]


def report_markdown(report: dict, pipes: dict[str, Pipeline]) -> str:
    md = markdown(report["summary"], pipes, report["command"])
    if "video" in report:
        md += "\n**video** (`comp_D.mp4`, GT alpha per frame)\n\n| stream | dtSSD | SAD/frame | s/frame |\n|---|---|---|---|\n"
        for n, v in report["video"].items():
            md += f"| `{n}` | {v['dtssd']:.3f} | {v['sad']:.2f} | {v['seconds_per_frame']:.3f} |\n"
    if "colour" in report:
        md += colour_markdown(report["colour"], report.get("colour_images", 0))
    return md


def colour_markdown(colour: dict, n: int) -> str:
    """One row per foreground estimate: error at the GT alpha (the colour alone: the new
    background cancels out there) and at our alpha over each new background, per person."""
    people = sorted(next(iter(colour["gt_alpha"]["original"].values()))["people"])
    md = (
        f"\n**colour** ({n} images with a known background; mean |error| of the composite in 8-bit levels "
        "inside the GT's semi-transparent band, balanced alpha)\n\n"
    )
    head = ["foreground", "at GT alpha"] + [f"over {b}" for b in ("white", "black", "photo")]
    head += [f"{p}: GT alpha / white / black / photo" for p in people]
    md += "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    for fg in colour["gt_alpha"]:
        gt, our = colour["gt_alpha"][fg]["white"], colour["our_alpha"][fg]
        cells = [f"`{fg}`", f"{gt['mean']:.2f}"] + [f"{our[b]['mean']:.2f}" for b in ("white", "black", "photo")]
        cells += [
            " / ".join([f"{gt['people'][p]:.1f}"] + [f"{our[b]['people'][p]:.1f}" for b in ("white", "black", "photo")])
            for p in people
        ]
        md += "| " + " | ".join(cells) + " |\n"
    return md


# -- main -------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "dir", nargs="?", type=Path, default=None, help="evaluation folder (default $MATTEKIT_EVAL_DIR or ../shared/eval)"
    )
    ap.add_argument("--pipelines", default="", help="comma-separated names (default: the 'default' group)")
    ap.add_argument("--group", default="default", help="pipeline group: default, sweep, slow, test, preset, all")
    ap.add_argument("--sets", default="people,detail", help="people,detail")
    ap.add_argument("--limit", type=int, default=None, help="at most N images per person (people) / N crops (detail)")
    ap.add_argument("--match", default="", help="only images whose name contains this")
    ap.add_argument("--no-conn", action="store_true", help="skip the (slow) connectivity error")
    ap.add_argument("--video", action="store_true", help="dtSSD of the presets on video/comp_D.mp4")
    ap.add_argument("--video-frames", type=int, default=None)
    ap.add_argument("--colour", action="store_true", help="composite colour errors and contact sheets")
    ap.add_argument("--list", action="store_true", help="list pipelines and exit")
    ap.add_argument("--report", type=Path, default=None, help="rebuild quality.md from a saved quality.json (no model runs)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    pipes = build_pipelines()
    if args.report is not None:
        saved = json.loads(args.report.read_text())
        saved["summary"] = summarise(saved["rows"])
        md = report_markdown(saved, pipes)
        args.report.write_text(json.dumps(saved, indent=1))
        (args.report.parent / "quality.md").write_text(md)
        print(md)
        return 0
    if args.list:
        for p in pipes.values():
            print(f"{p.name:12s} [{','.join(p.groups)}] {p.about}")
        return 0
    if args.pipelines:
        names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
        unknown = [n for n in names if n not in pipes]
        if unknown:
            ap.error(f"unknown pipelines: {', '.join(unknown)} (see --list)")
    else:
        names = [n for n, p in pipes.items() if args.group == "all" or args.group in p.groups]
    if "demo" not in names:
        names.insert(0, "demo")
    root = args.dir or eval_dir()
    if not (root / "people").is_dir():
        print(f"evaluation data not found at {root}", file=sys.stderr)
        return 2
    engine = get_engine().load()
    command = "python -m bench.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    report: dict = {"command": command.strip(), "pipelines": {n: pipes[n].about for n in names}}
    rows: list[dict] = []
    for set_name in [s.strip() for s in args.sets.split(",") if s.strip()]:
        samples = load_samples(root, set_name, args.limit, args.match)
        print(f"{set_name}: {len(samples)} images")
        rows += run_pipelines(engine, [pipes[n] for n in names], samples, with_conn=not args.no_conn)
    report.update(summary=summarise(rows), rows=rows)
    if args.video:
        report["video"] = video_scores(engine, root, ["fast", "balanced", "best"], args.video_frames)
    if args.colour:
        folder = wallpapers()
        if folder is not None:
            people = load_samples(root, "people", args.limit, args.match)
            report["colour"] = colour_scores(engine, people, folder, out=args.out)
            report["colour_images"] = len([s for s in people if s.background in WALLPAPERS])
    md = report_markdown(report, pipes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(report, indent=1))
    (args.out / "quality.md").write_text(md)
    print()
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
