// mattekit web page, Camera mode (/?camera=1): the webcam's picture with the background removed
// live, in this browser. RVM runs here on onnxruntime-web: frames never leave the device; the
// server only serves the runtime's files and the model.
//
// Backends, a ladder: WebGPU first (where the browser has it), else WebAssembly. WebGPU is on
// probation until its first frame: no navigator.gpu, no adapter, a failed session, no first frame
// within FIRST_FRAME_BUDGET_MS of starting, an output that is not finite or is constant (a blank
// picture), or a matte that differs from WebAssembly's on the same first frame (mean |Δα| over
// REFEREE_TOLERANCE) demotes it to WebAssembly, with one line under the picture saying why; so
// does a later frame that throws or comes back NaN. WebGPU runs the model with its odd-channel
// Convs padded by one zero channel (onnx-pad.js: onnxruntime-web 1.31.1's WebGPU Conv was wrong
// for 171 input channels, RVM's matte 94-150/255 off; padded, within 1e-7). A demotion is remembered in this browser
// (localStorage), as is the visitor's own choice in the list (Auto, WebGPU, WebAssembly). The
// page says "Live" only once a frame has been drawn. Both backends run the fp32 model.
//
// Output at the camera's size: the network always gets the camera's frame (longer side capped at
// MAX_SIDE) and its low-resolution pass is set by downsample_ratio, so RVM's own deep guided
// filter brings the matte to the camera's size (A, b upsampled bilinearly, then A * src + b: the
// tail the server's fast path reproduces), and Snapshot/Record are at that size.
//
// One camera session = one recurrent state (RVM's memory of the frames before). It starts empty
// and is reset when the camera or the pass size changes. The low-resolution pass's longer side
// is picked from PASSES to hold TARGET_FPS; it steps down when frames take too long and up again
// when there is room. URL parameters: camera=1 (open this mode and start), backend=auto|webgpu|wasm
// (this visit's backend; webgpu means no time budget for its first frame), pass=N (pin the
// low-resolution pass's longer side to N px: no adaptation), fps=N (the frame rate to hold),
// state=off (a fresh state every frame: what an image model would do; for comparisons), view=1
// (the chromeless view for OBS: only the picture, on a transparent page, running on in a hidden
// tab), bg=transparent|blur|RRGGBB (the background to start with), referee=off (for measuring:
// keep WebGPU even when its first matte differs from WebAssembly's), pad=off (WebGPU runs the
// model as it is, without onnx-pad.js's fix: to see the bug). Test hook: fail=TIER, fail=TIER-nan
// or fail=TIER-off (TIER webgpu or wasm) makes that tier's runs throw, return NaN, or return a
// plausible but wrong picture (the camera's own, alpha 0.5 everywhere), without running.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const params = new URLSearchParams(location.search);
  const els = {
    section: $("#camera"), view: $("#camera-view"), source: $("#camera-source"), start: $("#camera-start"),
    device: $("#camera-device"), record: $("#camera-record"), snapshot: $("#camera-snapshot"),
    fps: $("#camera-fps"), backend: $("#camera-backend"), message: $("#camera-message"),
    why: $("#camera-why"), choice: $("#camera-backend-choice"),
  };
  if (!els.section) return;
  const ORT = "/camera/ort/";
  const MODEL = "/camera/model.onnx";
  // The low-resolution pass's longer side, px: ~160-320 (RVM's guidance for webcams is ~256-320;
  // less is coarser but keeps a slow machine live). The camera's frame (up to MAX_SIDE) is the
  // full-resolution input, so downsample_ratio = pass / the frame's longer side.
  const PASSES = [320, 288, 256, 224, 192, 160];
  const MAX_SIDE = 1280;
  const TARGET_FPS = Math.max(1, parseFloat(params.get("fps")) || 12);
  const PINNED = parseInt(params.get("pass"), 10) || 0;
  const RECURRENT = params.get("state") !== "off";
  const VIEW = params.get("view") === "1";
  // WebGPU's probation: from starting its session to its first frame's output. A real GPU takes
  // a few seconds (shader compilation); a software adapter (SwiftShader) ~40 s, measured here.
  const FIRST_FRAME_BUDGET_MS = 20000;
  const ADAPTER_TIMEOUT_MS = 5000;
  const REFEREE_TOLERANCE = 1 / 255; // mean |Δα| allowed between WebGPU's first matte and WebAssembly's
  const CHOICE_KEY = "mattekit.camera.backend"; // the visitor's choice: auto | webgpu | wasm
  const FAILED_KEY = "mattekit.camera.webgpu-failed"; // why WebGPU failed here under auto
  const FAIL = params.get("fail") || ""; // test hook (see above)
  const REFEREE = params.get("referee") !== "off";
  const PAD = params.get("pad") !== "off";
  const LIVE = "Live: the picture is matted in this browser and never leaves your device.";

  const runtime = { ort: null, session: null, tier: "", backend: "", loading: null, probation: false, deadline: 0 };
  let modelBytes = null;
  let live = false; // a frame has been drawn since the camera (or the backend) started
  let stream = null;
  let running = false;
  let busy = false;
  let paused = document.hidden;
  let cameraSession = 0;
  let state = null; // {r1i..r4i}: RVM's recurrent state; null = empty (first frame)
  let levels = PASSES;
  let level = 0;
  let loop = 0; // the frame loop's generation: a callback of an older loop does nothing
  let lastVideoTime = -1;
  let times = []; // processing time of recent frames at this level, ms
  let slowAt = 0; // when a bigger level last proved too slow
  let done = []; // completion times of recent frames, for the fps
  let frames = 0;
  let recorder = null;
  let lastPass = 0;
  let startedAt = performance.now();
  let bgImage = null;
  const input = document.createElement("canvas");
  const inCtx = input.getContext("2d", { willReadFrequently: true });
  const fg = document.createElement("canvas");
  const fgCtx = fg.getContext("2d");
  const viewCtx = els.view.getContext("2d");

  function say(text, kind = "info") {
    els.message.textContent = text;
    els.message.dataset.kind = kind;
  }

  // Progress while loading, which goes on in parallel with opening the camera: never over an error.
  function progress(text) {
    if (els.message.dataset.kind !== "error") say(text);
  }

  function why(text) {
    els.why.textContent = text;
    els.why.hidden = !text;
    if (text) els.view.dataset.why = text;
  }

  const store = {
    get(key) { try { return localStorage.getItem(key) || ""; } catch (_) { return ""; } },
    set(key, value) { try { if (value) localStorage.setItem(key, value); else localStorage.removeItem(key); } catch (_) { /* storage off */ } },
  };
  const CHOICES = ["auto", "webgpu", "wasm"];
  function backendChoice() {
    const asked = params.get("backend");
    if (CHOICES.includes(asked)) return asked;
    const kept = store.get(CHOICE_KEY);
    return CHOICES.includes(kept) ? kept : "auto";
  }

  // -- the runtime and the model -------------------------------------------------------------
  class TierFailure extends Error {}

  function withTimeout(promise, ms, text) {
    let timer;
    const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new TierFailure(text)), ms); });
    return Promise.race([promise, late]).finally(() => clearTimeout(timer));
  }

  async function loadModel() {
    if (modelBytes) return modelBytes;
    if (typeof WebAssembly !== "object") throw new Error("This browser cannot run WebAssembly, which the camera mode needs.");
    progress("Loading the matting model (15 MB, once)…");
    const response = await fetch(MODEL);
    if (!response.ok) {
      let message = `the server answered ${response.status}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(`The model is not available: ${message}`);
    }
    modelBytes = new Uint8Array(await response.arrayBuffer());
    return modelBytes;
  }

  // The test hook: the tier's runs throw, or return NaN, instead of running.
  function hooked(tier, session) {
    if (FAIL !== tier && FAIL !== `${tier}-nan` && FAIL !== `${tier}-off`) return session;
    const run = async (feeds) => {
      if (FAIL === tier) throw new Error(`forced failure (test hook fail=${tier})`);
      const ort = runtime.ort;
      const [, , h, w] = feeds.src.dims;
      const fill = (c, v) => new ort.Tensor("float32", new Float32Array(c * h * w).fill(v), [1, c, h, w]);
      const rec = Object.fromEntries(["r1o", "r2o", "r3o", "r4o"].map((k) => [k, feeds[`r${k[1]}i`]]));
      if (FAIL === `${tier}-off`) return { fgr: new ort.Tensor("float32", feeds.src.data.slice(), [1, 3, h, w]), pha: fill(1, 0.5), ...rec };
      return { fgr: fill(3, NaN), pha: fill(1, NaN), ...rec };
    };
    return { run, release: () => session.release() };
  }

  async function webgpuTier(model, budget) {
    if (!navigator.gpu) throw new TierFailure("this browser has no WebGPU");
    const adapter = await withTimeout(navigator.gpu.requestAdapter(), ADAPTER_TIMEOUT_MS, "the GPU did not answer");
    if (!adapter) throw new TierFailure("no WebGPU adapter (no supported GPU or driver)");
    const ort = await import(`${ORT}ort.webgpu.min.mjs`);
    ort.env.wasm.wasmPaths = ORT;
    const began = performance.now();
    const fixed = PAD && self.mattekitOnnx ? self.mattekitOnnx.padOddConvs(model).model : model;
    const creating = ort.InferenceSession.create(fixed, { executionProviders: ["webgpu"] });
    const session = await withTimeout(creating, budget, `no first frame within ${budget / 1000} s`).catch((err) => {
      creating.then((s) => s.release(), () => {});
      throw err;
    });
    const info = adapter.info || {};
    const gpu = [info.vendor, info.architecture].filter(Boolean).join(" ");
    return {
      ort, session: hooked("webgpu", session), tier: "webgpu", backend: "WebGPU · fp32", gpu,
      probation: true, began, deadline: began + budget,
    };
  }

  async function wasmTier(model) {
    let ort;
    try {
      ort = await import(`${ORT}ort.wasm.min.mjs`);
    } catch (err) {
      throw new Error("The in-browser runtime is not installed on this server (its operator can run `make web`).");
    }
    // Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages.
    const isolated = self.crossOriginIsolated === true && typeof SharedArrayBuffer === "function";
    const threads = isolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1;
    ort.env.wasm.wasmPaths = ORT;
    ort.env.wasm.numThreads = threads;
    const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    return {
      ort, session: hooked("wasm", session), tier: "wasm",
      backend: `WASM · ${threads} thread${threads > 1 ? "s" : ""} · fp32`, threads, isolated, probation: false,
    };
  }

  async function loadRuntime() {
    const model = await loadModel();
    const choice = backendChoice();
    let reason = "";
    if (choice === "auto" && store.get(FAILED_KEY)) {
      reason = `WebGPU failed in this browser before (${store.get(FAILED_KEY)})`;
    } else if (choice !== "wasm") {
      progress(`Starting WebGPU${choice === "auto" ? ` (up to ${FIRST_FRAME_BUDGET_MS / 1000} s for its first frame, else WebAssembly)` : ""}…`);
      try {
        return await webgpuTier(model, choice === "webgpu" ? 24 * 3600e3 : FIRST_FRAME_BUDGET_MS);
      } catch (err) {
        reason = `WebGPU: ${err.message || err}`;
        if (choice === "auto" && !(err instanceof TierFailure && /no WebGPU|has no WebGPU/.test(err.message))) store.set(FAILED_KEY, err.message || String(err));
      }
    }
    const r = await wasmTier(model);
    r.reason = choice === "wasm" ? "" : reason;
    return r;
  }

  function install(r) {
    Object.assign(runtime, { probation: false, deadline: 0, gpu: "", reason: "" }, r);
    els.backend.textContent = r.backend;
    els.view.dataset.backend = r.tier;
    els.backend.title = r.gpu ? `GPU: ${r.gpu}` : "";
    const again = store.get(FAILED_KEY) ? " Choose WebGPU in the list to try it again." : "";
    why(r.reason ? `${r.reason}: running on WebAssembly.${again}` : "");
  }

  function runtimeReady() {
    if (!runtime.loading) {
      runtime.loading = loadRuntime().then((r) => { install(r); return r; });
      runtime.loading.catch(() => { runtime.loading = null; });
    }
    return runtime.loading;
  }

  // A session is released once its last run has settled (a run may still be going on the GPU).
  function release(session, pending) {
    if (!session) return;
    Promise.resolve(pending).catch(() => {}).then(() => session.release()).catch(() => {});
  }

  // WebGPU's first frame, run again on WebAssembly (the session the page falls back to anyway):
  // the same input, the same empty state. Throws a TierFailure carrying that session if the
  // mattes differ; else releases it.
  async function referee(src, w, h, ratio, pha) {
    say("WebGPU: checking its first frame against WebAssembly…");
    const r = await wasmTier(await loadModel());
    const T = r.ort.Tensor;
    const zero = () => new T("float32", new Float32Array(1), [1, 1, 1, 1]);
    const out = await r.session.run({
      src: new T("float32", src, [1, 3, h, w]),
      downsample_ratio: new T("float32", new Float32Array([ratio]), [1]),
      r1i: zero(), r2i: zero(), r3i: zero(), r4i: zero(),
    });
    const ref = out.pha.data;
    let sum = 0;
    for (let i = 0; i < ref.length; i++) sum += Math.abs(ref[i] - pha[i]);
    const mean = sum / ref.length;
    els.view.dataset.webgpuVsWasm = (mean * 255).toFixed(3);
    if (mean > REFEREE_TOLERANCE) {
      const err = new TierFailure(`its matte differs from WebAssembly's on the same frame by ${(mean * 255).toFixed(1)}/255 on average`);
      err.fallback = r;
      throw err;
    }
    release(r.session);
    els.backend.title = [runtime.gpu && `GPU: ${runtime.gpu}`, `first frame after ${els.view.dataset.webgpuFirstFrameMs} ms`,
      `its matte within ${(mean * 255).toFixed(2)}/255 of WebAssembly's`].filter(Boolean).join("; ");
  }

  // WebGPU failed (see the top): WebAssembly takes over, from an empty state.
  async function demote(reason, fallback) {
    const old = runtime.session;
    runtime.session = null;
    if (backendChoice() === "auto") store.set(FAILED_KEY, reason);
    console.warn("mattekit camera: WebGPU demoted:", reason);
    say(`WebGPU failed (${reason}): starting WebAssembly…`, "warn");
    release(old, runtime.pending);
    const r = fallback || await wasmTier(await loadModel());
    r.reason = `WebGPU failed (${reason})`;
    install(r);
    runtime.loading = Promise.resolve(r);
    els.view.dataset.demoted = reason;
    resetState();
    live = false;
  }

  // -- the camera ----------------------------------------------------------------------------
  function cameraError(err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      return "Camera permission was denied. Allow the camera for this site (the icon in the address bar), then press Start camera.";
    }
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") {
      return "No camera found. Plug one in, then press Start camera.";
    }
    if (name === "NotReadableError" || name === "TrackStartError") {
      return "The camera cannot be read: another application may be using it.";
    }
    return `Could not start the camera: ${(err && err.message) || err}`;
  }

  async function openCamera(deviceId) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error(window.isSecureContext
        ? "This browser gives pages no camera access."
        : "Browsers give the camera only to secure pages: open this page over HTTPS (or on localhost).");
    }
    const video = deviceId ? { deviceId: { exact: deviceId } } : { width: { ideal: 1280 }, height: { ideal: 720 } };
    let s;
    try {
      s = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (err) {
      throw new Error(cameraError(err));
    }
    const track = s.getVideoTracks()[0];
    track.addEventListener("ended", () => {
      if (stream === s) { stop(); say("The camera stopped (unplugged, or taken by another application).", "error"); }
    });
    return s;
  }

  async function listCameras(current) {
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
    els.device.replaceChildren(...devices.map((d, i) => new Option(d.label || `Camera ${i + 1}`, d.deviceId)));
    if (current) els.device.value = current;
    els.device.hidden = devices.length < 2;
  }

  async function start(deviceId) {
    els.start.disabled = true;
    startedAt = performance.now();
    try {
      const loading = runtimeReady();
      say("Asking for the camera…");
      const s = await openCamera(deviceId);
      if (stream) for (const t of stream.getTracks()) t.stop();
      stream = s;
      els.source.srcObject = s;
      await els.source.play().catch(() => {});
      if (els.source.readyState < 1) await new Promise((r) => els.source.addEventListener("loadedmetadata", r, { once: true }));
      const settings = s.getVideoTracks()[0].getSettings();
      await listCameras(settings.deviceId).catch(() => {});
      newCameraSession();
      await loading;
      running = true;
      live = false;
      els.start.textContent = "Stop camera";
      els.record.disabled = els.snapshot.disabled = false;
      say(runtime.probation ? "WebGPU: waiting for its first frame…" : "Starting: waiting for the first frame…");
      if (paused) say(PAUSED, "warn");
      restartLoop();
    } catch (err) {
      say(err.message || String(err), "error");
      if (!running) stop(false);
    } finally {
      els.start.disabled = false;
    }
  }

  function stop(clearMessage = true) {
    running = false;
    loop++;
    if (recorder) recorder.stop();
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    els.source.srcObject = null;
    els.start.textContent = "Start camera";
    els.record.disabled = els.snapshot.disabled = true;
    els.fps.textContent = "– fps";
    if (clearMessage) say("Camera off.");
  }

  // A new camera (or a new pass size): RVM's memory of the old picture is of no use.
  function newCameraSession() {
    cameraSession++;
    state = null;
    levels = PINNED ? [PINNED] : PASSES;
    level = 0;
    times = [];
    done = [];
    els.view.dataset.session = String(cameraSession);
  }

  function resetState() { state = null; times = []; els.view.dataset.session = String(++cameraSession); }

  // -- the frame loop ------------------------------------------------------------------------
  const PAUSED = "Paused: this tab is in the background, where browsers stop the camera's frames. It goes on when you come back.";

  // Visible: one frame per camera frame (requestVideoFrameCallback). Hidden (the OBS view only):
  // browsers stop those callbacks and slow a hidden page's timers to one a second, so the next
  // frame starts as soon as the last is done (a message-channel turn, which is not throttled),
  // skipping camera frames already matted.
  const channel = new MessageChannel();
  let tickPending = false; // hidden: at most one tick waits
  function schedule() {
    if (!running) return;
    const v = els.source;
    const id = loop;
    if (document.hidden && VIEW) {
      if (tickPending) return;
      tickPending = true;
      channel.port1.onmessage = () => { tickPending = false; onFrame(id, performance.now(), null); };
      // Nothing new to matte yet: look again a little later (a hidden page's timer: up to 1 s).
      if (busy || !runtime.session || v.currentTime === lastVideoTime) setTimeout(() => channel.port2.postMessage(0), 15);
      else channel.port2.postMessage(0);
    } else if (v.requestVideoFrameCallback) v.requestVideoFrameCallback((now, meta) => onFrame(id, now, meta));
    else requestAnimationFrame((now) => onFrame(id, now, null));
  }

  function onFrame(id, now, meta) {
    if (!running || id !== loop) return;
    const stepping = !busy && !paused && runtime.session && els.source.videoWidth;
    if (stepping) {
      busy = true;
      lastVideoTime = els.source.currentTime;
      const tier = runtime.tier;
      step(meta).catch((err) => {
        if (tier === "webgpu" && running) return demote(err.message || String(err), err.fallback);
        throw err;
      }).catch((err) => {
        console.error(err);
        say(`Matting failed: ${err.message || err}`, "error");
        stop(false);
      }).finally(() => {
        busy = false;
        if (document.hidden && VIEW) schedule();
      });
    }
    if (!(stepping && document.hidden && VIEW)) schedule(); // else the step's end schedules
  }

  function restartLoop() { loop++; schedule(); }

  // The camera's frame (longer side up to MAX_SIDE), and the ratio that gives the pass size.
  function inputSize() {
    const v = els.source;
    const scale = Math.min(1, MAX_SIDE / Math.max(v.videoWidth, v.videoHeight));
    const even = (x) => Math.max(2, 2 * Math.round((x * scale) / 2));
    const w = even(v.videoWidth);
    const h = even(v.videoHeight);
    const pass = levels[level];
    return { w, h, pass, ratio: Math.min(1, pass / Math.max(w, h)) };
  }

  // Why an output cannot be shown: not finite (NaN, Inf), or a constant foreground (a blank
  // picture: a real camera's frame is never one colour). Every `stride`-th value is read.
  function badOutput(fgr, pha, stride) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < pha.length; i += stride) if (!Number.isFinite(pha[i])) return "its matte is not a number (NaN)";
    for (let i = 0; i < fgr.length; i += stride) {
      const v = fgr[i];
      if (!Number.isFinite(v)) return "its picture is not a number (NaN)";
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return hi - lo < 1 / 255 ? "its picture came back blank" : "";
  }

  async function step(meta) {
    const t0 = performance.now();
    const { ort, session, probation, deadline } = runtime;
    const { w, h, pass, ratio } = inputSize();
    if (input.width !== w || input.height !== h) {
      input.width = fg.width = els.view.width = w;
      input.height = fg.height = els.view.height = h;
      resetState(); // RVM's state is spatial: a new size starts a new one
    }
    if (pass !== lastPass) { lastPass = pass; resetState(); } // so is its pass size
    inCtx.drawImage(els.source, 0, 0, w, h);
    const presented = meta ? meta.presentedFrames : frames + 1;
    const pixels = inCtx.getImageData(0, 0, w, h).data;
    const n = w * h;
    const src = new Float32Array(3 * n);
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      src[i] = pixels[j] / 255;
      src[i + n] = pixels[j + 1] / 255;
      src[i + 2 * n] = pixels[j + 2] / 255;
    }
    const zero = () => new ort.Tensor("float32", new Float32Array(1), [1, 1, 1, 1]);
    const rec = (RECURRENT && state) || { r1i: zero(), r2i: zero(), r3i: zero(), r4i: zero() };
    const session0 = cameraSession;
    const running0 = session;
    const ran = session.run({
      src: new ort.Tensor("float32", src, [1, 3, h, w]),
      downsample_ratio: new ort.Tensor("float32", new Float32Array([ratio]), [1]),
      ...rec,
    });
    runtime.pending = ran;
    const out = probation
      ? await withTimeout(ran, Math.max(0, deadline - performance.now()), `no first frame within ${FIRST_FRAME_BUDGET_MS / 1000} s`)
      : await ran;
    if (!running || session0 !== cameraSession || runtime.session !== running0) return; // changed meanwhile
    const fgr = out.fgr.data;
    const pha = out.pha.data;
    const bad = badOutput(fgr, pha, probation ? 1 : 61);
    if (bad) throw new TierFailure(bad);
    if (probation) {
      els.view.dataset.webgpuFirstFrameMs = String(Math.round(performance.now() - runtime.began));
      if (REFEREE) await referee(src, w, h, ratio, pha);
    }
    if (!running || session0 !== cameraSession || runtime.session !== running0) return;
    runtime.probation = false;
    state = { r1i: out.r1o, r2i: out.r2o, r3i: out.r3o, r4i: out.r4o };
    const image = fgCtx.createImageData(w, h);
    const px = image.data; // Uint8ClampedArray: rounds and clamps
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      px[j] = fgr[i] * 255;
      px[j + 1] = fgr[i + n] * 255;
      px[j + 2] = fgr[i + 2 * n] * 255;
      px[j + 3] = pha[i] * 255;
    }
    fgCtx.putImageData(image, 0, 0);
    compose(w, h);
    if (recorder && recorder.track) recorder.track.requestFrame(); // one recorded frame per matted one
    const t1 = performance.now();
    frames++;
    const dataset = els.view.dataset;
    dataset.frames = String(frames);
    dataset.frame = String(presented);
    dataset.size = `${w}x${h}`;
    dataset.pass = String(pass);
    dataset.ratio = String(ratio);
    dataset.state = RECURRENT ? "recurrent" : "off";
    if (!live) {
      live = true;
      dataset.firstFrameMs = String(Math.round(t1 - startedAt));
      say(runtime.isolated === false
        ? "This page gets no WebAssembly threads here (it is not cross-origin isolated): running on one thread, slower."
        : LIVE, runtime.isolated === false ? "warn" : "info");
      if (paused) say(PAUSED, "warn");
    }
    els.view.dispatchEvent(new CustomEvent("camera-frame", { detail: { frames, presented, w, h, pass, ratio, ms: t1 - t0, backend: runtime.tier } }));
    measure(t1, t1 - t0, w, h);
  }

  function measure(now, ms, w, h) {
    done.push(now);
    while (done.length > 2 && now - done[0] > 3000) done.shift();
    if (done.length >= 2) {
      const fps = ((done.length - 1) * 1000) / (now - done[0]);
      els.fps.textContent = `${fps.toFixed(1)} fps at ${w}×${h}`;
      els.fps.dataset.fps = fps.toFixed(2);
    }
    if (PINNED) return;
    times.push(ms);
    if (times.length < 6) return;
    const recent = times.slice(-6).sort((a, b) => a - b);
    const median = (recent[2] + recent[3]) / 2;
    const budget = 1000 / TARGET_FPS;
    if (median > budget * 1.2 && level < levels.length - 1) {
      level++;
      slowAt = now;
      times = [];
    } else if (median < budget * 0.5 && level > 0 && now - slowAt > 15000) {
      level--;
      times = [];
    }
  }

  // -- backgrounds (the page's own options) --------------------------------------------------
  function compose(w, h) {
    const bg = ($('input[name="bg"]:checked') || { value: "transparent" }).value;
    const ctx = viewCtx;
    ctx.save();
    ctx.clearRect(0, 0, w, h);
    if (bg === "colour") {
      ctx.fillStyle = $("#bg-colour-value").value;
      ctx.fillRect(0, 0, w, h);
    } else if (bg === "blur") {
      // The slider's strength is for a 1280 px picture, like the server's.
      const radius = (parseFloat($("#blur-radius").value) || 20) * (w / 1280);
      ctx.filter = `blur(${radius.toFixed(1)}px)`;
      const m = 3 * radius; // the blur reaches ~3 radii: drawn that much larger, no see-through rim
      ctx.drawImage(input, -m, -m, w + 2 * m, h + 2 * m);
      ctx.filter = "none";
    } else if (bg === "image" && bgImage) {
      const fit = $("#bg-fit").checked;
      const s = (fit ? Math.min : Math.max)(w / bgImage.width, h / bgImage.height);
      const bw = bgImage.width * s;
      const bh = bgImage.height * s;
      if (fit) { ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, w, h); }
      ctx.drawImage(bgImage, (w - bw) / 2, (h - bh) / 2, bw, bh);
    }
    ctx.drawImage(fg, 0, 0);
    ctx.restore();
  }

  $("#bg-file").addEventListener("change", async () => {
    const file = $("#bg-file").files[0];
    bgImage = null;
    if (file) { try { bgImage = await createImageBitmap(file); } catch (_) { say("That background picture cannot be read.", "error"); } }
  });

  // -- record and snapshot -------------------------------------------------------------------
  function stamp() { return new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19); }

  function save(blob, name) {
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  els.snapshot.addEventListener("click", () => {
    els.view.toBlob((blob) => { if (blob) save(blob, `camera-${stamp()}.png`); }, "image/png");
  });

  els.record.addEventListener("click", () => {
    if (recorder) { recorder.stop(); return; }
    if (typeof MediaRecorder !== "function") { say("This browser cannot record video.", "error"); return; }
    // VP8/VP9 in WebM: Chromium encodes the canvas's alpha too, so a recording on the
    // "transparent" background plays see-through; browsers that do not get it on black.
    const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
    if (!type) { say("This browser cannot record WebM video.", "error"); return; }
    const chunks = [];
    // captureStream(0) + requestFrame() after each matted frame: the recording holds the frames
    // the page made, at the times it made them (its frame rate is the page's, not a fixed 30).
    const capture = els.view.captureStream(0);
    const rec = new MediaRecorder(capture, { mimeType: type, videoBitsPerSecond: 6e6 });
    rec.track = capture.getVideoTracks()[0];
    const began = performance.now();
    const tick = setInterval(() => { els.record.textContent = `Stop recording (${Math.round((performance.now() - began) / 1000)} s)`; }, 500);
    rec.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    rec.onstop = () => {
      clearInterval(tick);
      recorder = null;
      for (const t of capture.getTracks()) t.stop();
      els.record.textContent = "Record";
      els.record.classList.remove("recording");
      if (chunks.length) save(new Blob(chunks, { type: "video/webm" }), `camera-${stamp()}.webm`);
    };
    rec.start(500);
    recorder = rec;
    els.record.textContent = "Stop recording (0 s)";
    els.record.classList.add("recording");
  });

  // -- page wiring ---------------------------------------------------------------------------
  els.start.addEventListener("click", () => (running ? stop() : start()));
  els.device.addEventListener("change", () => { if (running) { running = false; start(els.device.value); } });
  document.addEventListener("visibilitychange", () => {
    if (VIEW) { if (running) restartLoop(); return; } // the OBS view runs on in a hidden tab
    paused = document.hidden;
    if (paused && running) say(PAUSED, "warn");
    else if (running) { done = []; if (live) say(LIVE); }
  });

  // The backend list: the visitor's choice, kept in this browser; a change restarts the camera.
  els.choice.value = backendChoice();
  els.choice.addEventListener("change", async () => {
    store.set(CHOICE_KEY, els.choice.value);
    store.set(FAILED_KEY, ""); // a choice made again tries WebGPU again
    if (params.has("backend")) { params.delete("backend"); history.replaceState(null, "", `?${params}`); }
    const wasRunning = running;
    stop(false);
    release(runtime.session, runtime.pending);
    Object.assign(runtime, { session: null, loading: null, probation: false });
    if (wasRunning) start(els.device.value || undefined);
  });

  // bg=transparent|blur|RRGGBB: the background to start with (the OBS view has no options form).
  const bgParam = (params.get("bg") || "").replace(/^#/, "");
  if (/^[0-9a-f]{6}$/i.test(bgParam)) {
    $("#bg-colour-value").value = `#${bgParam.toLowerCase()}`;
    $("#bg-colour").checked = true;
    $("#bg-colour").dispatchEvent(new Event("change", { bubbles: true }));
  } else if (bgParam === "blur" || bgParam === "transparent") {
    $(`#bg-${bgParam}`).checked = true;
    $(`#bg-${bgParam}`).dispatchEvent(new Event("change", { bubbles: true }));
  }

  if (params.get("camera") === "1" || VIEW) {
    document.body.dataset.mode = "camera";
    if (VIEW) {
      document.body.dataset.view = "1";
      document.documentElement.dataset.view = "1";
      document.title = "mattekit · camera view";
    }
    els.section.hidden = false;
    start();
  }
})();
