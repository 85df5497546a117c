// mattekit web page: queue photos, send each to POST /api/v1/remove, show before/after.
// Vanilla JS, no build step, no third-party code.
"use strict";

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const MAX_PARALLEL = 2; // the server queues the rest; two keeps its workers busy
  const MAX_RETRIES = 5;

  const els = {
    drop: $("#drop"), input: $("#file-input"), results: $("#results"), empty: $("#empty"),
    count: $("#count"), all: $("#download-all"), clear: $("#clear"), apply: $("#apply"),
    announce: $("#announce"), template: $("#card"), options: $("#options"),
  };
  const items = [];
  let running = 0;
  let limits = { max_upload_bytes: 32 * 1024 * 1024 };
  let nextId = 1;
  let optionsChanged = false; // since the results on screen were made: offer "apply to all"

  MatteAuth.fetch("/api/v1/limits").then((r) => (r.ok ? r.json() : null)).then((l) => { if (l) limits = l; }).catch(() => {});

  // -- options ------------------------------------------------------------------------------
  function readOptions() {
    const fields = {
      format: $("#format").value,
      preset: $("#preset").value,
      subject: $("#subject").value,
    };
    if ($("#max-size").value) fields.max_size = $("#max-size").value;
    const bg = $('input[name="bg"]:checked').value;
    let bgFile = null;
    if (bg === "colour") fields.bg = $("#bg-colour-value").value;
    if (bg === "blur") fields.blur = $("#blur-radius").value;
    if (bg === "image") {
      bgFile = $("#bg-file").files[0] || null;
      if ($("#bg-fit").checked) fields.bg_fit = "fit";
    }
    if ($("#crop").checked) {
      fields.crop = "true";
      fields.margin = `${$("#margin").value}%`;
    }
    return { fields, bgFile, bg };
  }

  function describe(opts) {
    const bits = [];
    bits.push({ transparent: "transparent", colour: opts.fields.bg, blur: "blur", image: "picture" }[opts.bg]);
    if (opts.fields.crop) bits.push("cropped");
    bits.push(opts.fields.format.toUpperCase());
    return bits.join(" · ");
  }

  function syncOptionPanels() {
    const bg = $('input[name="bg"]:checked').value;
    for (const sub of document.querySelectorAll(".bg-choice .sub")) sub.hidden = sub.dataset.for !== bg;
    $('.sub[data-for="crop"]').hidden = !$("#crop").checked;
    $("#blur-out").textContent = $("#blur-radius").value;
    $("#margin-out").textContent = `${$("#margin").value}%`;
    refreshToolbar();
  }

  function optionsEdited() {
    optionsChanged = items.some((it) => it.state === "done" || it.state === "error");
    syncOptionPanels();
  }

  els.options.addEventListener("input", optionsEdited);
  els.options.addEventListener("change", optionsEdited);
  for (const sw of document.querySelectorAll(".swatch")) {
    sw.addEventListener("click", () => {
      $("#bg-colour-value").value = sw.dataset.colour;
      optionsEdited();
    });
  }
  els.apply.addEventListener("click", () => {
    optionsChanged = false;
    for (const it of items) if (it.state === "done" || it.state === "error") requeue(it);
    pump();
  });
  syncOptionPanels();

  // -- adding files -------------------------------------------------------------------------
  function addFiles(fileList) {
    const files = Array.from(fileList || []);
    for (const file of files) {
      const item = createItem(file);
      if (!/^image\//.test(file.type) && !/\.(jpe?g|png|webp|bmp|tiff?|gif|heic|heif|avif)$/i.test(file.name)) {
        fail(item, "This is not an image file.", true);
      } else if (file.size > limits.max_upload_bytes) {
        fail(item, `Too large: ${formatBytes(file.size)} (the limit is ${formatBytes(limits.max_upload_bytes)}).`, true);
      }
    }
    if (files.length) say(`${files.length} photo${files.length > 1 ? "s" : ""} added`);
    pump();
  }

  els.input.addEventListener("change", () => { addFiles(els.input.files); els.input.value = ""; });
  els.drop.addEventListener("click", () => els.input.click());
  els.drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); els.input.click(); }
  });
  let dragDepth = 0;
  window.addEventListener("dragenter", (e) => { e.preventDefault(); dragDepth++; els.drop.classList.add("over"); });
  window.addEventListener("dragleave", () => { if (--dragDepth <= 0) { dragDepth = 0; els.drop.classList.remove("over"); } });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    dragDepth = 0;
    els.drop.classList.remove("over");
    if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files);
  });
  document.addEventListener("paste", (e) => {
    const files = [];
    for (const entry of (e.clipboardData && e.clipboardData.items) || []) {
      if (entry.kind === "file") {
        const f = entry.getAsFile();
        if (f) files.push(f.name && f.name !== "image.png" ? f : new File([f], `pasted-${Date.now()}.png`, { type: f.type }));
      }
    }
    if (files.length) { e.preventDefault(); addFiles(files); }
  });

  // -- items --------------------------------------------------------------------------------
  function createItem(file) {
    const node = els.template.content.firstElementChild.cloneNode(true);
    const item = {
      id: nextId++, file, node, state: "queued", result: null, resultUrl: null, retries: 0,
      beforeUrl: URL.createObjectURL(file), opts: readOptions(), timer: null,
    };
    node.dataset.id = item.id;
    $(".name", node).textContent = file.name || "pasted image";
    $(".name", node).title = file.name || "";
    const before = $(".before", node);
    before.src = item.beforeUrl;
    before.alt = `Original: ${file.name}`;
    before.addEventListener("error", () => noPreview(node, file));
    before.addEventListener("load", () => {
      $(".compare", node).style.setProperty("--ratio", `${before.naturalWidth} / ${before.naturalHeight}`);
    });
    const slider = $(".slider", node);
    slider.setAttribute("aria-label", `Compare before and after for ${file.name || "pasted image"}`);
    const move = () => $(".compare", node).style.setProperty("--pos", `${slider.value}%`);
    slider.addEventListener("input", move);
    move();
    $(".retry", node).addEventListener("click", () => { item.opts = readOptions(); requeue(item); pump(); });
    $(".discard", node).addEventListener("click", () => discard(item));
    $(".download", node).addEventListener("click", (e) => { if (!item.resultUrl) e.preventDefault(); });
    items.push(item);
    els.results.prepend(node);
    render(item, "Waiting…");
    refreshToolbar();
    return item;
  }

  function requeue(item) {
    item.opts = readOptions();
    item.retries = 0;
    render(item, "Waiting…", "queued");
  }

  function discard(item) {
    const i = items.indexOf(item);
    if (i >= 0) items.splice(i, 1);
    item.discarded = true;
    if (item.controller) item.controller.abort();
    URL.revokeObjectURL(item.beforeUrl);
    if (item.croppedUrl) URL.revokeObjectURL(item.croppedUrl);
    if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
    item.node.remove();
    refreshToolbar();
    say(`Removed ${item.file.name}`);
  }

  function render(item, text, state) {
    if (state) item.state = state;
    item.node.dataset.state = item.state;
    $(".status-text", item.node).textContent = text;
    $(".compare", item.node).setAttribute("aria-busy", String(item.state === "working" || item.state === "queued"));
    refreshToolbar();
  }

  // Chromium draws no HEIC/HEIF (nor some TIFFs): the "before" side would show the cut-out under
  // the slider. Say so instead, and show the cut-out alone when it comes.
  function noPreview(node, file) {
    if (node.classList.contains("no-preview")) return;
    node.classList.add("no-preview");
    const note = document.createElement("p");
    note.className = "preview-note";
    const kind = (/\.([a-z0-9]+)$/i.exec(file.name || "") || [, "this"])[1].toUpperCase();
    note.textContent = `No "before" preview: this browser cannot show ${kind} photos, so the cut-out is shown alone.`;
    $(".compare", node).append(note);
  }

  // 4xx answers are about the request: the same photo with the same options gets the same
  // answer, so Retry is not offered (changing an option offers Apply). Not 408 or 429 (time and
  // rate), nor 401 (the page asks for the key, then the same request can succeed).
  function permanentStatus(status) {
    return status >= 400 && status < 500 && ![401, 408, 429].includes(status);
  }

  function fail(item, message, permanent = false) {
    clearInterval(item.timer);
    item.node.classList.toggle("permanent", permanent);
    render(item, message, "error");
    $(".info", item.node).textContent = "Failed";
    say(`${item.file.name}: ${message}`);
  }

  function refreshToolbar() {
    const done = items.filter((it) => it.state === "done").length;
    const busy = items.filter((it) => it.state === "working" || it.state === "queued").length;
    els.count.textContent = items.length ? `${done}/${items.length}${busy ? ` · ${busy} in progress` : ""}` : "";
    els.all.disabled = done === 0;
    els.all.textContent = done > 1 ? `Download all (${done}, ZIP)` : "Download all";
    els.clear.disabled = items.length === 0;
    els.empty.hidden = items.length > 0;
    els.apply.hidden = !(optionsChanged && items.some((it) => it.state === "done" || it.state === "error"));
  }

  // -- processing ---------------------------------------------------------------------------
  function pump() {
    while (running < MAX_PARALLEL) {
      const next = items.slice().reverse().find((it) => it.state === "queued");
      if (!next) return;
      running++;
      process(next).finally(() => { running--; pump(); });
    }
  }

  async function process(item) {
    const started = performance.now();
    render(item, "Uploading…", "working");
    clearInterval(item.timer);
    item.timer = setInterval(() => {
      const s = ((performance.now() - started) / 1000).toFixed(1);
      $(".status-text", item.node).textContent = `Removing background… ${s} s`;
    }, 200);
    const form = new FormData();
    form.append("file", item.file, "upload");
    for (const [k, v] of Object.entries(item.opts.fields)) form.append(k, v);
    if (item.opts.bg === "image") {
      if (!item.opts.bgFile) { fail(item, "Choose a background picture first (Options → Image)."); return; }
      form.append("bg_file", item.opts.bgFile, "background");
    }
    item.controller = new AbortController();
    let response;
    try {
      response = await MatteAuth.fetch("/api/v1/remove", {
        method: "POST", body: form, signal: item.controller.signal,
        onAsk: () => { clearInterval(item.timer); render(item, "Waiting for the API key (above)…"); },
      });
    } catch (err) {
      if (!item.discarded) fail(item, "Could not reach the server. Check that it is running, then retry.");
      return;
    }
    clearInterval(item.timer);
    if (item.discarded) return;
    if (response.status === 503 && item.retries < MAX_RETRIES) {
      const wait = Math.max(1, parseInt(response.headers.get("Retry-After") || "2", 10));
      item.retries++;
      await countdown(item, wait);
      if (!item.discarded) render(item, "Waiting…", "queued");
      return;
    }
    if (!response.ok) {
      let message = `The server answered ${response.status}.`;
      try { message = (await response.json()).error.message || message; } catch (e) { /* not JSON */ }
      fail(item, message, permanentStatus(response.status));
      return;
    }
    const blob = await response.blob();
    if (item.resultUrl) URL.revokeObjectURL(item.resultUrl);
    item.result = blob;
    item.resultUrl = URL.createObjectURL(blob);
    const ext = item.opts.fields.format === "webp" ? "webp" : "png";
    const after = $(".after", item.node);
    after.alt = `Background removed: ${item.file.name}`;
    await new Promise((resolve) => { after.onload = resolve; after.onerror = resolve; after.src = item.resultUrl; });
    // A crop changes the frame: the server says where it cut (X-Crop-Box), and the original is
    // cut to the same box so the slider compares like with like. Without a usable box (an old
    // server, an original the browser cannot draw) the cut-out is shown alone.
    const box = cropBox(response.headers.get("X-Crop-Box"), response.headers.get("X-Frame-Size"));
    const lined = await showBefore(item, box);
    if (item.discarded) return;
    const cropped = !lined ||
      (Boolean(item.opts.fields.crop) && !box && !sameFrame(after, $(".before", item.node), item.opts.fields.max_size));
    item.node.classList.toggle("cropped", cropped);
    $(".compare", item.node).style.setProperty("--ratio", `${after.naturalWidth} / ${after.naturalHeight}`);
    const link = $(".download", item.node);
    link.href = item.resultUrl;
    link.download = item.name = `${stem(item.file.name)}-cutout.${ext}`;
    link.textContent = `Download ${ext.toUpperCase()}`;
    const secs = parseFloat(response.headers.get("X-Process-Time") || "0");
    $(".info", item.node).textContent =
      `${response.headers.get("X-Image-Size") || ""} · ${formatBytes(blob.size)} · ${secs.toFixed(1)} s · ${describe(item.opts)}`;
    // X-Notice: the server's warning about this result (e.g. no clear person, and no general model).
    const notice = response.headers.get("X-Notice");
    render(item, notice ? `Done. Note: ${notice}` : "Done", "done");
    say(`${item.file.name}: background removed${notice ? `. ${notice}` : ""}`);
  }

  function countdown(item, seconds) {
    return new Promise((resolve) => {
      let left = seconds;
      const tick = () => {
        if (item.discarded || left <= 0) { clearInterval(item.timer); resolve(); return; }
        render(item, `Server busy, retrying in ${left} s…`, "working");
        left--;
      };
      tick();
      item.timer = setInterval(tick, 1000);
    });
  }

  // -- downloads ----------------------------------------------------------------------------
  els.all.addEventListener("click", async () => {
    const done = items.filter((it) => it.state === "done");
    if (done.length === 1) { $(".download", done[0].node).click(); return; }
    els.all.disabled = true;
    const names = new Set();
    const files = done.slice().reverse().map((it) => {
      let name = it.name;
      for (let i = 2; names.has(name); i++) name = it.name.replace(/(\.\w+)$/, `-${i}$1`);
      names.add(name);
      return { name, blob: it.result };
    });
    const zip = await MatteZip.build(files);
    const url = URL.createObjectURL(zip);
    const a = document.createElement("a");
    a.href = url;
    a.download = "mattekit-cutouts.zip";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    refreshToolbar();
  });
  els.clear.addEventListener("click", () => { for (const it of items.slice()) discard(it); say("Cleared"); });

  // -- the "before" of a cropped result -------------------------------------------------------
  // "l,t,r,b" in a frame of "WxH" pixels (the photo as the server processed it) → numbers, or null.
  function cropBox(boxText, frameText) {
    const box = (boxText || "").split(",").map(Number);
    const frame = (frameText || "").split("x").map(Number);
    if (box.length !== 4 || frame.length !== 2 || ![...box, ...frame].every(Number.isFinite)) return null;
    const [l, t, r, b] = box;
    if (!(r > l && b > t && frame[0] > 0 && frame[1] > 0)) return null;
    return { l, t, r, b, w: frame[0], h: frame[1] };
  }

  // Shows the original (cut to ``box`` when given) under the slider; false when it cannot be cut.
  async function showBefore(item, box) {
    const before = $(".before", item.node);
    if (item.croppedUrl) { URL.revokeObjectURL(item.croppedUrl); item.croppedUrl = null; }
    let url = item.beforeUrl;
    if (box) {
      const blob = await cutOriginal(item.beforeUrl, box);
      if (!blob) return false;
      url = item.croppedUrl = URL.createObjectURL(blob);
    }
    if (before.src !== url) {
      await new Promise((resolve) => { before.onload = resolve; before.onerror = resolve; before.src = url; });
    }
    return true;
  }

  // The box scales from the server's frame to the original's own size (max_size may have shrunk
  // the frame; both are upright, as browsers draw photos by their EXIF orientation).
  async function cutOriginal(url, box) {
    const img = new Image();
    try {
      img.src = url;
      await img.decode();
    } catch (_) {
      return null; // e.g. HEIC: the browser cannot draw it
    }
    const sx = img.naturalWidth / box.w;
    const sy = img.naturalHeight / box.h;
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round((box.r - box.l) * sx));
    canvas.height = Math.max(1, Math.round((box.b - box.t) * sy));
    canvas.getContext("2d").drawImage(
      img, box.l * sx, box.t * sy, (box.r - box.l) * sx, (box.b - box.t) * sy, 0, 0, canvas.width, canvas.height);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }

  // -- helpers ------------------------------------------------------------------------------
  function sameFrame(after, before, maxSize) {
    let w = before.naturalWidth;
    let h = before.naturalHeight;
    if (!w || !h) return false;
    const limit = parseInt(maxSize || "0", 10);
    if (limit && Math.max(w, h) > limit) {
      const scale = limit / Math.max(w, h);
      [w, h] = [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale))];
    }
    return Math.abs(after.naturalWidth - w) <= 1 && Math.abs(after.naturalHeight - h) <= 1;
  }

  function stem(name) {
    const base = (name || "image").replace(/^.*[\\/]/, "");
    return base.replace(/\.[^.]+$/, "") || "image";
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / 1048576).toFixed(1)} MB`;
  }

  function say(text) { els.announce.textContent = text; }
})();
