// API key for a server started with MATTEKIT_API_KEYS: asked for on the first 401, kept for this
// tab only (sessionStorage, gone when the tab closes), sent as X-API-Key on every /api/ call.
"use strict";

window.MatteAuth = (() => {
  const STORE = "mattekit-api-key";
  const $ = (sel) => document.querySelector(sel);
  const form = $("#auth");
  const input = $("#auth-key");
  const error = $("#auth-error");
  let waiting = []; // calls paused until a key is entered

  function key() {
    try { return sessionStorage.getItem(STORE) || ""; } catch (_) { return ""; }
  }

  function headers(extra) {
    const k = key();
    return k ? { ...(extra || {}), "X-API-Key": k } : { ...(extra || {}) };
  }

  // Shows the key field and resolves once the user has entered a key.
  function ask(rejected) {
    form.hidden = false;
    error.textContent = rejected ? "That key was not accepted: check it and enter it again." : "";
    if (document.activeElement !== input) input.focus();
    return new Promise((resolve) => waiting.push(resolve));
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const k = input.value.trim();
    if (!k) { error.textContent = "Enter the key first."; input.focus(); return; }
    try { sessionStorage.setItem(STORE, k); } catch (_) { /* storage off: asked again next load */ }
    input.value = "";
    form.hidden = true;
    const resume = waiting;
    waiting = [];
    for (const r of resume) r();
  });

  // fetch() with the key; on 401 asks for one and tries again with it (a FormData body can be
  // sent twice, a stream could not: the page only sends FormData).
  async function fetchWithKey(url, options = {}) {
    for (;;) {
      const sent = key();
      const r = await fetch(url, { ...options, headers: headers(options.headers) });
      if (r.status !== 401) return r;
      if (options.signal && options.signal.aborted) return r;
      if (key() && key() !== sent) continue; // a new key came in while this call was out
      if (options.onAsk) options.onAsk();
      await ask(Boolean(sent));
    }
  }

  return { key, headers, fetch: fetchWithKey };
})();
