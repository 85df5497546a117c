// mattekit web page, Camera mode (/?camera=1): the webcam's picture with the background removed
// live, in this browser. RVM runs here on onnxruntime-web (WebGPU, else WebAssembly): frames
// never leave the device; the server only serves the runtime's files and the model.
//
// One camera session = one recurrent state (RVM's memory of the frames before). It starts empty
// and is reset when the camera or the input size changes. The input size and downsample ratio
// are picked from LEVELS to hold TARGET_FPS; they step down when frames take too long and up
// again when there is room. URL parameters: camera=1 (open this mode and start), size=N (pin the
// input's longer side to N px: no adaptation), fps=N (the frame rate to hold), state=off (a fresh
// state every frame: what an image model would do; for comparisons), wasm=1 (skip WebGPU).
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const params = new URLSearchParams(location.search);
  const els = {
    section: $("#camera"), view: $("#camera-view"), source: $("#camera-source"), start: $("#camera-start"),
    device: $("#camera-device"), record: $("#camera-record"), snapshot: $("#camera-snapshot"),
    fps: $("#camera-fps"), backend: $("#camera-backend"), message: $("#camera-message"),
  };
  if (!els.section) return;
  const ORT = "/camera/ort/";
  const MODEL = "/camera/model.onnx";
  // [input's longer side, downsample ratio]: the low-resolution pass stays ~240-320 px (RVM's
  // guidance for webcams), the full-resolution refinement does the rest.
  const LEVELS = [[1280, 0.25], [960, 1 / 3], [640, 0.5], [480, 0.5], [320, 0.75]];
  const START_SIDE = 640;
  const TARGET_FPS = Math.max(1, parseFloat(params.get("fps")) || 12);
  const PINNED = parseInt(params.get("size"), 10) || 0;
  const RECURRENT = params.get("state") !== "off";

  const runtime = { ort: null, session: null, backend: "", loading: null };
  let stream = null;
  let running = false;
  let busy = false;
  let paused = document.hidden;
  let cameraSession = 0;
  let state = null; // {r1i..r4i}: RVM's recurrent state; null = empty (first frame)
  let levels = LEVELS;
  let level = 0;
  let times = []; // processing time of recent frames at this level, ms
  let slowAt = 0; // when a bigger level last proved too slow
  let done = []; // completion times of recent frames, for the fps
  let frames = 0;
  let recorder = null;
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

  // -- the runtime and the model -------------------------------------------------------------
  async function loadRuntime() {
    if (typeof WebAssembly !== "object") throw new Error("This browser cannot run WebAssembly, which the camera mode needs.");
    say("Loading the matting model (15 MB, once)…");
    const response = await fetch(MODEL);
    if (!response.ok) {
      let message = `the server answered ${response.status}`;
      try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
      throw new Error(`The model is not available: ${message}`);
    }
    const model = new Uint8Array(await response.arrayBuffer());
    const fail = [];
    if (navigator.gpu && params.get("wasm") !== "1") {
      try {
        const adapter = await navigator.gpu.requestAdapter();
        if (adapter) {
          const ort = await import(`${ORT}ort.webgpu.min.mjs`);
          ort.env.wasm.wasmPaths = ORT;
          const session = await ort.InferenceSession.create(model, { executionProviders: ["webgpu"] });
          return { ort, session, backend: "WebGPU", threads: 0 };
        }
      } catch (err) { fail.push(`WebGPU: ${err.message || err}`); }
    }
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
    if (fail.length) console.info("mattekit camera: fell back to WebAssembly:", fail.join("; "));
    return { ort, session, backend: `WASM · ${threads} thread${threads > 1 ? "s" : ""}`, threads, isolated };
  }

  function runtimeReady() {
    if (!runtime.loading) {
      runtime.loading = loadRuntime().then((r) => {
        Object.assign(runtime, r);
        els.backend.textContent = r.backend;
        els.view.dataset.backend = r.backend;
        return r;
      });
      runtime.loading.catch(() => { runtime.loading = null; });
    }
    return runtime.loading;
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
      if (!runtime.session) say("Loading the matting model (15 MB, once)…");
      await loading;
      running = true;
      els.start.textContent = "Stop camera";
      els.record.disabled = els.snapshot.disabled = false;
      say(runtime.isolated === false
        ? "This page gets no WebAssembly threads here (it is not cross-origin isolated): running on one thread, slower."
        : "Live: the picture is matted in this browser and never leaves your device.",
        runtime.isolated === false ? "warn" : "info");
      if (paused) say(PAUSED, "warn");
      schedule();
    } catch (err) {
      say(err.message || String(err), "error");
      if (!running) stop(false);
    } finally {
      els.start.disabled = false;
    }
  }

  function stop(clearMessage = true) {
    running = false;
    if (recorder) recorder.stop();
    if (stream) for (const t of stream.getTracks()) t.stop();
    stream = null;
    els.source.srcObject = null;
    els.start.textContent = "Start camera";
    els.record.disabled = els.snapshot.disabled = true;
    els.fps.textContent = "– fps";
    if (clearMessage) say("Camera off.");
  }

  // A new camera (or a new input size): RVM's memory of the old picture is of no use.
  function newCameraSession() {
    cameraSession++;
    state = null;
    const v = els.source;
    const long = Math.max(v.videoWidth, v.videoHeight) || START_SIDE;
    levels = LEVELS.filter(([side]) => side <= long);
    if (!levels.length) levels = [[long, Math.min(1, 320 / long)]];
    if (PINNED) levels = [[PINNED, (LEVELS.find(([side]) => side === PINNED) || [0, Math.min(1, 320 / PINNED)])[1]]];
    level = Math.max(0, levels.findIndex(([side]) => side <= START_SIDE));
    times = [];
    done = [];
    els.view.dataset.session = String(cameraSession);
  }

  function resetState() { state = null; times = []; els.view.dataset.session = String(++cameraSession); }

  // -- the frame loop ------------------------------------------------------------------------
  const PAUSED = "Paused: this tab is in the background, where browsers stop the camera's frames. It goes on when you come back.";

  function schedule() {
    if (!running) return;
    const v = els.source;
    if (v.requestVideoFrameCallback) v.requestVideoFrameCallback(onFrame);
    else requestAnimationFrame(() => onFrame(performance.now(), null));
  }

  function onFrame(now, meta) {
    if (!running) return;
    if (!busy && !paused && runtime.session && els.source.videoWidth) {
      busy = true;
      step(meta).catch((err) => {
        console.error(err);
        say(`Matting failed: ${err.message || err}`, "error");
        stop(false);
      }).finally(() => { busy = false; });
    }
    schedule();
  }

  function inputSize() {
    const v = els.source;
    const [side, ratio] = levels[level];
    const scale = Math.min(1, side / Math.max(v.videoWidth, v.videoHeight));
    const even = (x) => Math.max(2, 2 * Math.round((x * scale) / 2));
    return { w: even(v.videoWidth), h: even(v.videoHeight), ratio };
  }

  async function step(meta) {
    const t0 = performance.now();
    const { ort, session } = runtime;
    const { w, h, ratio } = inputSize();
    if (input.width !== w || input.height !== h) {
      input.width = fg.width = els.view.width = w;
      input.height = fg.height = els.view.height = h;
      resetState(); // RVM's state is spatial: a new size starts a new one
    }
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
    const out = await session.run({
      src: new ort.Tensor("float32", src, [1, 3, h, w]),
      downsample_ratio: new ort.Tensor("float32", new Float32Array([ratio]), [1]),
      ...rec,
    });
    if (!running || session0 !== cameraSession) return; // the camera changed meanwhile
    state = { r1i: out.r1o, r2i: out.r2o, r3i: out.r3o, r4i: out.r4o };
    const fgr = out.fgr.data;
    const pha = out.pha.data;
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
    const t1 = performance.now();
    frames++;
    const dataset = els.view.dataset;
    dataset.frames = String(frames);
    dataset.frame = String(presented);
    dataset.size = `${w}x${h}`;
    dataset.ratio = String(ratio);
    dataset.state = RECURRENT ? "recurrent" : "off";
    els.view.dispatchEvent(new CustomEvent("camera-frame", { detail: { frames, presented, w, h, ratio, ms: t1 - t0 } }));
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
    const rec = new MediaRecorder(els.view.captureStream(30), { mimeType: type, videoBitsPerSecond: 6e6 });
    const began = performance.now();
    const tick = setInterval(() => { els.record.textContent = `Stop recording (${Math.round((performance.now() - began) / 1000)} s)`; }, 500);
    rec.ondataavailable = (e) => { if (e.data && e.data.size) chunks.push(e.data); };
    rec.onstop = () => {
      clearInterval(tick);
      recorder = null;
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
    paused = document.hidden;
    if (paused && running) say(PAUSED, "warn");
    else if (running) { done = []; say("Live: the picture is matted in this browser and never leaves your device."); }
  });

  if (params.get("camera") === "1") {
    document.body.dataset.mode = "camera";
    els.section.hidden = false;
    start();
  }
})();
