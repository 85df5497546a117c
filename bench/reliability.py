"""Fuzzing and fault figures for the README "Reliability" section.

    .venv/bin/python -m bench.reliability            # bounded fuzz run (as in make test) + faults
    .venv/bin/python -m bench.reliability --long     # the long fuzz campaign (as in make fuzz)
    .venv/bin/python -m bench.reliability --deploy   # only the deployment rows (~1 min)

Runs tests/test_fuzz.py, tests/test_faults.py, tests/test_security.py, tests/test_deploy.py and
tests/test_service_hardening.py
with pytest, reads what every fuzz case ended in (test-output/fuzz-summary.json, written by the
fuzz tests), what the deployment tests measured (test-output/deploy-summary.json) and each
test's result (JUnit XML), and writes bench/out/reliability.json and bench/out/reliability.md
(``--deploy``: bench/out/deploy.json and deploy.md). The load figures come from bench/load.py
(bench/out/load.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

FAULTS = {
    "test_client_disconnect_mid_upload": "client disconnects mid-upload (3×)",
    "test_client_disconnect_mid_download": "client disconnects mid-download (3×)",
    "test_bad_model_at_startup_keeps_process_up_and_says_why[corrupt]": "corrupt model file at start-up",
    "test_bad_model_at_startup_keeps_process_up_and_says_why[missing]": "missing model file at start-up",
    "test_worker_exception_is_contained[fault0-500-internal]": "exception in a worker",
    "test_worker_exception_is_contained[fault1-503-out_of_memory]": "MemoryError in a worker",
    "test_killed_job_cleans_up_and_next_job_runs": "video job killed mid-run",
    "test_full_temp_disk": "temp disk full (1 MiB tmpfs): upload, then mid-job",
}


def _pytest(paths: Sequence[str], xml: Path, extra: Sequence[str] = ()) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *paths, *extra]
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def _cases(xml: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        out[case.get("name", "")] = {
            "result": "failed" if failed else "skipped" if skipped else "passed",
            "seconds": float(case.get("time", 0)),
        }
    return out


MEMORY_PROBE = r"""
import io, json, resource, sys
import numpy as np
from PIL import Image
from tests.samples import sample_path
from mattekit.matter import Matter
m = Matter()
m.process(np.zeros((64, 64, 3), np.uint8))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
w, h = int(sys.argv[1]), int(sys.argv[2])
buf = io.BytesIO()
Image.open(sample_path("astronaut")).convert("RGB").resize((w, h)).save(buf, "JPEG", quality=90)
m.process(buf.getvalue(), preset=sys.argv[3]).encode("png")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"pixels": w * h, "preset": sys.argv[3], "base_mb": base, "peak_mb": peak,
                  "bytes_per_pixel": (peak - base) * 2**20 / (w * h)}))
"""


def memory_per_pixel(sizes: Sequence[tuple[int, int]] = ((2000, 1500), (4000, 3000))) -> list[dict[str, Any]]:
    """Peak memory one still costs, per pixel, in a fresh process (what MATTEKIT_MAX_PIXELS buys)."""
    out = []
    for w, h in sizes:
        for preset in ("fast", "balanced"):
            done = subprocess.run(
                [sys.executable, "-c", MEMORY_PROBE, str(w), str(h), preset], cwd=ROOT, capture_output=True, text=True, check=True
            )
            out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def deploy_markdown(report: dict[str, Any]) -> str:
    """The README "Reliability" rows for deadlines, shedding, stalled uploads, SIGTERM and several processes."""
    d, tests = report["deploy"], report["deploy_tests"]
    rows = ["| what | held | from |", "|---|---|---|"]
    if "deadline" in d and "job_deadline" in d:
        a, j = d["deadline"], d["job_deadline"]
        rows.append(
            f"| deadlines | a still past `MATTEKIT_REQUEST_TIMEOUT={a['timeout_s']:g}` (`best` at ratio 1, 1 worker): "
            f"504 `deadline_exceeded` after {a['answered_s']:.1f} s, the next request served in {a['next_s']:.2f} s; "
            f"a video job past `MATTEKIT_JOB_TIMEOUT={j['timeout_s']:g}` failed after frame {j['frames_done']} "
            f"of {j['frames_total']} with the reason, its files deleted; both counted in "
            "`mattekit_deadline_exceeded_total` | `bench/reliability.py --deploy` |"
        )
    if "slot_after_504" in d:
        sa = d["slot_after_504"]
        rows.append(
            f"| work that stops | the slowest JPEG accepted ({sa['megapixels']:g} MP, {sa['scans']} progressive scans, "
            f"{sa['upload_kb']} KB; ~10 s of libjpeg) at capacity 1, `MATTEKIT_REQUEST_TIMEOUT={sa['deadline_s']:g}`: "
            f"504 after {sa['answered_s']:.1f} s, and a photo sent right after served in {sa['next_s']:.2f} s "
            "(it got 503 while the decode ran on); the same through `/v1.0/removebg` | "
            "`bench/reliability.py --deploy`, `bench/stopping.py` |"
        )
    if "shedding" in d:
        sh = d["shedding"]
        rows.append(
            f"| early shedding | full queue, {sh['body_bytes'] / 2**20:.0f} MiB upload: 503 before the body — "
            f"{sh['sent_with_expect']} body bytes sent with `Expect: 100-continue`, "
            f"{sh['sent_without_expect'] / 1024:.0f} KiB (socket buffers) without, then the connection closed | "
            "`bench/reliability.py --deploy` |"
        )
    if "stalled_uploads" in d:
        su = d["stalled_uploads"]
        row = (
            f"| stalled uploads | {su['uploads']} uploads stalled after {su['sent_mib']:g} MiB at capacity 1: "
            f"{su['refused']} refused (503) before their bodies, one cut off at its {su['deadline_s']:g} s deadline "
            f"after {su['cut_s']:.1f} s; the server +{su['grew_mb']:.0f} MB"
        )
        if "stalled_video_uploads" in d:
            sv = d["stalled_video_uploads"]
            row += (
                f"; the same at the video jobs' capacity of 1: {sv['refused']} refused, one cut off after "
                f"{sv['cut_s']:.1f} s (408), +{sv['grew_mb']:.0f} MB, no file left"
            )
        rows.append(row + " | `bench/reliability.py --deploy` |")
    if "sigterm" in d:
        st = d["sigterm"]
        outcomes = ", ".join(f"{v} {k}" for k, v in sorted(st["outcomes"].items()))
        rows.append(
            f"| SIGTERM under load | {st['clients']} clients + a running and a queued video job, "
            f"`MATTEKIT_DRAIN_SECONDS={st['drain_s']:g}`, `MATTEKIT_GRACE_PERIOD={st['grace_s']:g}`: `/readyz` 503 at once, "
            f"queued job failed with the reason, {st['ok_after_signal']} stills served after the signal, "
            f"exit after {st['exit_s']:.1f} s; client outcomes: {outcomes} (refused = connection refused "
            "once the listener closed: never accepted); no temp files left | `bench/reliability.py --deploy` |"
        )
    if "processes" in d:
        pr = d["processes"]
        rows.append(
            f"| several processes | `mattekit serve --processes {pr['processes']}`, {pr['clients']} clients: "
            f"{pr['ok']} of {pr['requests']} correct results, served by {pr['pids_serving']} processes; "
            f"`/metrics` from either process counts {pr['metrics_total']}; a video job polled, fetched and deleted "
            f"through both | `bench/reliability.py --deploy` |"
        )
    rows += ["", f"Deployment tests: {tests['passed']} passed, {tests['failed']} failed."]
    return "\n".join(rows) + "\n"


def deploy(out: Path) -> tuple[int, dict[str, Any]]:
    summary = ROOT / "test-output" / "deploy-summary.json"
    summary.unlink(missing_ok=True)
    xml = out / "deploy-junit.xml"
    rc = _pytest(["tests/test_deploy.py", "tests/test_service_hardening.py"], xml)
    cases = _cases(xml)
    tally = {k: sum(1 for c in cases.values() if c["result"] == k) for k in ("passed", "failed", "skipped")}
    data = json.loads(summary.read_text()) if summary.exists() else {}
    return rc, {"deploy": data, "deploy_tests": tally}


def markdown(report: dict[str, Any]) -> str:
    fz = report["fuzz"]
    lines = [
        f"Fuzzing ({'long campaign' if fz['long'] else 'bounded run, as in make test'}): "
        f"{fz['cases']} cases in {fz['seconds']:.0f} s from {fz['seeds']} seed files and "
        f"{fz['hostile_files']} hand-made hostile files; each case sandboxed "
        f"(timeout {fz['case_timeout_s']:.0f} s, peak RSS limit {fz['peak_rss_limit_mb']} MiB; "
        f"highest peak seen {fz['peak_rss_mb']} MiB). Fuzz tests: {report['fuzz_tests']['passed']} passed, "
        f"{report['fuzz_tests']['failed']} failed.",
        "",
        "| ended in | cases |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in fz["outcomes"].items()]
    lines += ["", "| fault | result |", "|---|---|"]
    for name, what in FAULTS.items():
        res = report["faults"].get(name, {"result": "not run"})
        lines.append(f"| {what} | {res['result']} |")
    lines += ["", "| still, preset | peak memory of one request | per pixel |", "|---|---|---|"]
    for m in report.get("memory", []):
        lines.append(
            f"| {m['pixels'] / 1e6:.0f} MP, {m['preset']} | {m['peak_mb'] - m['base_mb']:.0f} MiB "
            f"| {m['bytes_per_pixel']:.0f} B |"
        )
    sec = report["security"]
    lines += ["", f"Security checks (CORS, API keys, bg paths, headers): {sec['passed']} passed, {sec['failed']} failed."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--long", action="store_true", help="run the long fuzz campaign (--fuzz-long)")
    ap.add_argument("--deploy", action="store_true", help="only the deployment tests (tests/test_deploy.py)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.deploy:
        rc, dep = deploy(args.out)
        (args.out / "deploy.json").write_text(json.dumps(dep, indent=1))
        (args.out / "deploy.md").write_text(deploy_markdown(dep))
        print(deploy_markdown(dep))
        return rc

    fuzz_xml, fault_xml, sec_xml = (args.out / f"{n}.xml" for n in ("fuzz-junit", "faults-junit", "security-junit"))
    rc = _pytest(["tests/test_fuzz.py"], fuzz_xml, ["--fuzz-long"] if args.long else [])
    rc |= _pytest(["tests/test_faults.py"], fault_xml)
    rc |= _pytest(["tests/test_security.py"], sec_xml)
    dep_rc, dep = deploy(args.out)
    rc |= dep_rc

    def tally(xml: Path) -> dict[str, int]:
        cases = _cases(xml)
        return {k: sum(1 for c in cases.values() if c["result"] == k) for k in ("passed", "failed", "skipped")}

    report = {
        "fuzz": json.loads((ROOT / "test-output" / "fuzz-summary.json").read_text()),
        "fuzz_tests": tally(fuzz_xml),
        "faults": _cases(fault_xml),
        "security": tally(sec_xml),
        "memory": memory_per_pixel(),
        **dep,
    }
    (args.out / "reliability.json").write_text(json.dumps(report, indent=1))
    (args.out / "reliability.md").write_text(markdown(report) + "\n" + deploy_markdown(report))
    print(markdown(report) + "\n" + deploy_markdown(report))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
