// mattekit web page, video part: upload a clip as a job, follow its progress, play the result.
// Transparent WebM plays over the checkerboard, so what is see-through shows as such.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const els = {
    input: $("#video-input"), output: $("#video-output"), cancel: $("#video-cancel"),
    status: $("#video-status"), text: $("#video-text"), bar: $("#video-progress"),
    result: $("#video-result"), player: $("#video-player"), download: $("#video-download"),
  };
  if (!els.input) return;
  let job = null;
  let timer = null;
  let resultUrl = null; // the fetched result when the server needs a key
  let clipName = "video"; // the chosen file's name: the download keeps it, as the CLI does
  // Outputs with see-through pixels: only these are shown over the checkerboard.
  const TRANSPARENT = new Set(["webm", "mov"]);

  // NAME-cutout.EXT, as `mattekit video NAME.mp4` names its output; EXT is the server's.
  function downloadName(serverName) {
    const ext = (/\.[A-Za-z0-9]+$/.exec(serverName || "") || [".webm"])[0];
    const stem = clipName.replace(/\.[^.]*$/, "") || "video";
    return `${stem}-cutout${ext}`;
  }

  function show(text, percent, error = false) {
    els.status.hidden = false;
    els.status.classList.toggle("error", error);
    els.text.textContent = text;
    if (percent !== null) { els.bar.value = percent; els.bar.textContent = `${percent}%`; }
    els.bar.hidden = error;
  }

  function fields() {
    const f = new FormData();
    const output = els.output.value;
    f.append("output", output);
    f.append("preset", $("#preset") ? $("#preset").value : "balanced");
    if (output === "composite") {
      const bg = document.querySelector('input[name="bg"]:checked');
      if (bg && bg.value === "blur") f.append("blur", $("#blur-radius").value);
      else if (bg && bg.value === "colour") f.append("bg", $("#bg-colour-value").value);
      else if (bg && bg.value === "image" && $("#bg-file").files[0]) f.append("bg_file", $("#bg-file").files[0]);
      else f.append("bg", "white");
    }
    return f;
  }

  async function errorText(r) {
    try { return (await r.json()).error.message; } catch (_) { return `the server answered ${r.status}`; }
  }

  async function start(file) {
    stop();
    els.result.hidden = true;
    els.player.removeAttribute("src");
    const form = fields();
    clipName = file.name;
    form.append("file", file, file.name);
    show(`Uploading ${file.name}…`, 0);
    let r;
    try {
      r = await MatteAuth.fetch("/api/v1/jobs", { method: "POST", body: form });
    } catch (_) {
      show("The upload failed: the server could not be reached.", null, true);
      return;
    }
    if (r.status !== 202) { show(`Not accepted: ${await errorText(r)}`, null, true); return; }
    job = await r.json();
    els.cancel.hidden = false;
    poll();
  }

  async function poll() {
    if (!job) return;
    let r;
    try { r = await MatteAuth.fetch(`/api/v1/jobs/${job.id}`); } catch (_) { timer = setTimeout(poll, 1000); return; }
    if (!r.ok) { show(`Lost the job: ${await errorText(r)}`, null, true); stop(); return; }
    const state = await r.json();
    const p = state.progress;
    if (state.state === "queued") show("Waiting for a free worker…", 0);
    if (state.state === "running") {
      const eta = p.fps > 0 && p.frames_total ? Math.max(0, Math.round((p.frames_total - p.frames_done) / p.fps)) : null;
      show(`Frame ${p.frames_done} of ${p.frames_total || "?"} · ${p.fps.toFixed(1)} fps${eta !== null ? ` · about ${eta} s left` : ""}`, Math.round(p.percent));
    }
    if (state.state === "done") { finished(state); return; }
    if (state.state === "failed" || state.state === "cancelled") {
      show(state.state === "cancelled" ? "Cancelled." : `Failed: ${state.error.message}`, null, true);
      stop();
      return;
    }
    timer = setTimeout(poll, 500);
  }

  async function finished(state) {
    // A clip with no person gives its file all the same: say so beside it, not a plain "Done".
    show(`Done: ${state.progress.frames_done} frames.${state.notice ? ` Note: ${state.notice}.` : ""}`, 100);
    els.cancel.hidden = true;
    let url = state.result_url;
    if (MatteAuth.key()) {
      // A <video> or link cannot send the key: fetch the result with it, play it from memory.
      const r = await MatteAuth.fetch(state.result_url);
      if (!r.ok) { show(`Could not fetch the result: ${await errorText(r)}`, null, true); stop(); return; }
      if (resultUrl) URL.revokeObjectURL(resultUrl);
      url = resultUrl = URL.createObjectURL(await r.blob());
    }
    els.player.src = url;
    els.download.href = url;
    // The server's name gives the type's extension (its table of output types); the stem is the clip's.
    els.download.setAttribute("download", downloadName(state.filename));
    // A composite or a matte has no see-through pixels: no checkerboard behind it.
    els.player.parentElement.classList.toggle("checker", TRANSPARENT.has(state.output));
    els.result.hidden = false;
    // Browsers do not play ProRes: offer it as a download only.
    els.player.parentElement.hidden = state.media_type === "video/quicktime";
    if (!els.player.parentElement.hidden) els.player.play().catch(() => {});
    job = null;
  }

  function stop() {
    clearTimeout(timer);
    timer = null;
    job = null;
    els.cancel.hidden = true;
  }

  els.input.addEventListener("change", () => { if (els.input.files[0]) start(els.input.files[0]); els.input.value = ""; });
  els.cancel.addEventListener("click", async () => {
    if (!job) return;
    const id = job.id;
    stop();
    await MatteAuth.fetch(`/api/v1/jobs/${id}`, { method: "DELETE" }).catch(() => {});
    show("Cancelled.", null, true);
  });
})();
