/* unweave web page: upload, follow a job (server-sent events), mix and download stems.
 * Plain JavaScript, no build step; the player lives in player.js. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const TERMINAL = new Set(["done", "failed", "cancelled"]);
  const state = {
    token: localStorage.getItem("unweave-token") || "",
    models: [], formats: ["wav"], maxUploadMb: 0, file: null,
    job: null, events: null, poll: null, player: new StemPlayer(),
  };

  /* --- HTTP helpers -------------------------------------------------------------------- */
  function authHeaders() { return state.token ? { Authorization: "Bearer " + state.token } : {}; }

  function mediaUrl(path) {
    return state.token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(state.token) : path;
  }

  async function askToken() {
    const dialog = $("token-dialog");
    $("token-input").value = state.token;
    dialog.showModal();
    await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
    state.token = $("token-input").value.trim();
    localStorage.setItem("unweave-token", state.token);
  }

  async function api(path, options = {}, retry = true) {
    const res = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
    if (res.status === 401 && retry) { await askToken(); return api(path, options, false); }
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${detail} (HTTP ${res.status})`);
    }
    return res;
  }

  /* --- models and form ----------------------------------------------------------------- */
  const TASKS = { music: "Music stems", vocals: "Vocals / accompaniment", soundtrack: "Film soundtrack", speech: "Speech enhancement" };

  async function loadModels() {
    const data = await (await api("/api/models")).json();
    state.models = data.models;
    state.formats = data.formats;
    state.maxUploadMb = data.max_upload_mb;
    $("limit-mb").textContent = data.max_upload_mb >= 1024 ? (data.max_upload_mb / 1024).toFixed(data.max_upload_mb % 1024 ? 1 : 0) + " GB" : data.max_upload_mb + " MB";
    const select = $("model");
    select.innerHTML = "";
    const groups = {};
    for (const m of data.models) {
      const key = m.name.startsWith("tiny-") ? "tests" : m.task;
      if (!groups[key]) {
        groups[key] = document.createElement("optgroup");
        groups[key].label = key === "tests" ? "Tiny test models (untrained)" : TASKS[m.task] || m.task;
      }
      const opt = new Option(`${TASKS[m.task] || m.task}: ${m.name}${m.trained ? "" : " (untrained)"}${m.default ? " (default)" : ""}`, m.name);
      groups[key].appendChild(opt);
    }
    for (const key of [...Object.keys(TASKS), ...Object.keys(groups)]) {
      if (groups[key] && !groups[key].parentNode) select.appendChild(groups[key]);
    }
    if (data.default) select.value = data.default;
    $("format").innerHTML = data.formats.map((f) => `<option value="${f}">${f.toUpperCase()}</option>`).join("");
    showModel();
  }

  function currentModel() { return state.models.find((m) => m.name === $("model").value); }

  function showModel() {
    const m = currentModel();
    const desc = $("model-desc");
    desc.textContent = m ? m.description + " " : "";
    if (m) {
      const badge = document.createElement("span");
      badge.className = "badge " + (m.trained ? "trained" : "untrained");
      badge.textContent = m.trained ? "trained" : "untrained";
      desc.appendChild(badge);
    }
    const picks = $("stem-picks");
    picks.innerHTML = "";
    for (const s of (m ? m.sources : [])) {
      const label = document.createElement("label");
      label.className = "chip";
      label.innerHTML = `<input type="checkbox" checked value="${escapeHtml(s)}"> ${escapeHtml(s)}`;
      picks.appendChild(label);
    }
  }

  function chooseFile(file) {
    if (!file) return;
    state.file = file;
    $("drop").classList.add("has-file");
    $("drop-main").textContent = file.name;
    $("drop-sub").textContent = `${(file.size / 1048576).toFixed(1)} MB · ready to separate`;
    $("start").disabled = false;
    $("form-error").textContent = "";
  }

  /* --- upload and job following -------------------------------------------------------- */
  function upload() {
    const file = state.file;
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("model", $("model").value);
    form.append("format", $("format").value);
    form.append("shifts", $("shifts").value || "0");
    const picked = [...$("stem-picks").querySelectorAll("input:checked")].map((i) => i.value);
    const all = $("stem-picks").querySelectorAll("input").length;
    if (picked.length && picked.length < all) form.append("stems", picked.join(","));
    if (state.maxUploadMb && file.size > state.maxUploadMb * 1048576) {
      $("form-error").textContent = `This file is larger than the server's limit of ${state.maxUploadMb} MB.`;
      return;
    }
    $("start").disabled = true;
    $("form-error").textContent = "";
    showJobCard({ filename: file.name, model: $("model").value, status: "uploading", progress: 0, stage: "uploading" });
    const xhr = new XMLHttpRequest();   // XHR: fetch has no upload progress
    xhr.open("POST", "/api/jobs");
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) setProgress(e.loaded / e.total, `uploading ${Math.round((100 * e.loaded) / e.total)} %`, null);
    };
    xhr.onload = async () => {
      $("start").disabled = false;
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 401) { await askToken(); upload(); return; }
      if (xhr.status >= 400) {
        $("job-card").hidden = true;
        $("form-error").textContent = `${body.detail || xhr.statusText} (HTTP ${xhr.status})`;
        return;
      }
      follow(body.id);
      refreshJobs();
    };
    xhr.onerror = () => { $("start").disabled = false; $("job-card").hidden = true; $("form-error").textContent = "Upload failed: the server could not be reached."; };
    xhr.send(form);
  }

  function showJobCard(job) {
    $("job-card").hidden = false;
    $("job-title").textContent = job.filename || "…";
    $("job-sub").textContent = job.model ? `model ${job.model}` + (job.duration_seconds ? ` · ${formatTime(job.duration_seconds)}` : "") : "";
    const pill = $("job-status");
    pill.textContent = job.status;
    pill.className = "pill " + job.status;
    $("job-error").textContent = job.error || "";
    $("cancel").hidden = TERMINAL.has(job.status) || job.status === "uploading";
    setProgress(job.progress, job.stage, job.eta_seconds, !TERMINAL.has(job.status));
  }

  function setProgress(fraction, stage, eta, showPercent = true) {
    const pct = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
    $("progress-bar").style.width = pct + "%";
    $("progress").setAttribute("aria-valuenow", pct);
    $("stage").textContent = `${stage || ""}${showPercent && stage && !/%$/.test(stage) ? ` · ${pct} %` : ""}`;
    $("eta").textContent = eta != null ? `about ${formatTime(eta)} left` : "";
  }

  function stopFollowing() {
    if (state.events) { state.events.close(); state.events = null; }
    clearInterval(state.poll);
  }

  function follow(id) {
    stopFollowing();
    location.hash = "job=" + id;
    $("results").hidden = true;
    state.player.stop();
    const update = (job) => {
      state.job = job;
      showJobCard(job);
      if (TERMINAL.has(job.status)) { stopFollowing(); refreshJobs(); if (job.status === "done") showResults(job); }
    };
    const es = new EventSource(mediaUrl(`/api/jobs/${id}/events`));
    state.events = es;
    es.addEventListener("progress", (e) => update(JSON.parse(e.data)));
    es.addEventListener("end", (e) => update(JSON.parse(e.data)));
    es.onerror = () => {   // no SSE (proxy, token, ...): fall back to polling
      es.close();
      if (state.events !== es) return;
      state.events = null;
      state.poll = setInterval(async () => {
        try { update(await (await api(`/api/jobs/${id}`)).json()); } catch (err) { stopFollowing(); $("job-error").textContent = err.message; }
      }, 1000);
    };
  }

  /* --- results: player, mixer, downloads ------------------------------------------------ */
  async function showResults(job) {
    const card = $("results");
    card.hidden = false;
    $("job-card").hidden = true;
    $("results-title").textContent = job.filename;
    $("results-sub").textContent = `${job.stems.length} stems · model ${job.model}` + (job.duration_seconds ? ` · ${formatTime(job.duration_seconds)}` : "");
    $("results-error").textContent = "";
    $("zip").href = mediaUrl(`/api/jobs/${job.id}/stems.zip`);
    $("play").disabled = true;
    $("player-note").textContent = job.duration_seconds > 1800 ? "Long recording: loading every stem into the player takes a while and much memory." : "Loading stems…";
    const container = $("stems");
    container.innerHTML = "";
    const peaks = await (await api(`/api/jobs/${job.id}/peaks`)).json();
    const items = job.stems.map((s) => ({ name: s.name, url: s.url, peaks: peaks.stems[s.name] || [] }));
    const player = state.player;
    player.reset();
    player.duration = peaks.duration_seconds;
    player.peakMax = Math.max(0, ...Object.values(peaks.stems).map((v) => Math.max(0, ...v)));
    const rows = items.map((item, i) => stemRow(job, item, i));
    rows.forEach((r) => container.appendChild(r.el));
    try {
      await player.load(items, async (url) => (await api(url)).arrayBuffer());
      player.stems.forEach((s, i) => { s.canvas = rows[i].canvas; rows[i].bind(s); });
      player.drawAll();
      $("play").disabled = false;
      $("player-note").textContent = "";
    } catch (err) {
      $("player-note").textContent = `The stems could not be loaded for playback (${err.message}); downloads still work.`;
    }
  }

  function stemRow(job, item, index) {
    const el = document.createElement("div");
    el.className = "stem";
    const color = STEM_COLORS[index % STEM_COLORS.length];
    const name = escapeHtml(item.name);
    el.innerHTML = `
      <div class="stem-head"><span class="dot" style="background:${color}"></span><span class="stem-name">${name}</span>
        <a class="stem-dl" href="${mediaUrl(item.url)}" download title="Download ${name}" aria-label="Download ${name}">
          <svg viewBox="0 0 24 24"><path d="M12 4v11m0 0l-4-4m4 4l4-4M5 19h14"/></svg></a></div>
      <div class="stem-controls">
        <button class="toggle mute" aria-pressed="false" title="Mute ${name}">M</button>
        <button class="toggle solo" aria-pressed="false" title="Solo ${name}">S</button>
        <input class="volume" type="range" min="0" max="2" step="0.01" value="1" aria-label="${name} volume">
        <span class="vol-value">100%</span></div>
      <div class="wave-wrap" title="Click to seek"><canvas></canvas></div>`;
    el.dataset.stem = item.name;
    const canvas = el.querySelector("canvas");
    const bind = (stem) => {
      const player = state.player;
      const mute = el.querySelector(".mute"), solo = el.querySelector(".solo"), vol = el.querySelector(".volume");
      const refresh = () => {
        mute.setAttribute("aria-pressed", stem.muted);
        solo.setAttribute("aria-pressed", stem.solo);
        el.querySelector(".vol-value").textContent = Math.round(stem.volume * 100) + "%";
        for (const row of document.querySelectorAll(".stem")) {
          const s = player.stems.find((x) => x.name === row.dataset.stem);
          if (s) row.classList.toggle("silent", player.effectiveGain(s) === 0);
        }
      };
      mute.onclick = () => { stem.muted = !stem.muted; player.applyGains(); refresh(); };
      solo.onclick = () => { stem.solo = !stem.solo; player.applyGains(); refresh(); };
      vol.oninput = () => { stem.volume = parseFloat(vol.value); player.applyGains(); refresh(); };
      stem.reset = () => { stem.volume = 1; stem.muted = false; stem.solo = false; vol.value = 1; refresh(); };
      el.querySelector(".wave-wrap").onclick = (e) => {
        const r = canvas.getBoundingClientRect();
        player.seek(((e.clientX - r.left) / r.width) * player.duration);
      };
      refresh();
    };
    // draw the waveform at once (before audio decoding finishes)
    requestAnimationFrame(() => state.player.draw({ canvas, peaks: item.peaks, color, volume: 1, muted: false, solo: false }));
    return { el, canvas, bind };
  }

  async function renderRemix() {
    const job = state.job;
    if (!job) return;
    const btn = $("render");
    btn.disabled = true;
    btn.textContent = "Rendering…";
    $("results-error").textContent = "";
    try {
      const res = await api(`/api/jobs/${job.id}/remix`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ gains: state.player.gains() }),
      });
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement("a");
      a.href = url;
      a.download = job.filename.replace(/\.[^.]+$/, "") + " - remix.wav";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      $("results-error").textContent = `Remix failed: ${err.message}`;
    } finally {
      btn.disabled = false;
      btn.textContent = "Download remix";
    }
  }

  /* --- recent jobs ---------------------------------------------------------------------- */
  async function refreshJobs() {
    let data;
    try { data = await (await api("/api/jobs?limit=20")).json(); } catch (err) { return; }
    const list = $("jobs");
    list.innerHTML = "";
    if (!data.jobs.length) { list.innerHTML = '<li class="empty">No jobs yet.</li>'; return; }
    for (const job of data.jobs) {
      const li = document.createElement("li");
      const when = new Date(job.created_at * 1000);
      li.innerHTML = `
        <div class="job-main"><button class="job-name" title="Open">${escapeHtml(job.filename)}</button>
          <div class="job-meta">${escapeHtml(job.model)} · ${when.toLocaleString([], { dateStyle: "short", timeStyle: "short" })}${job.duration_seconds ? " · " + formatTime(job.duration_seconds) : ""}</div></div>
        <span class="pill ${job.status}">${job.status === "running" ? Math.round(job.progress * 100) + " %" : job.status}</span>
        <button class="icon-btn" title="Delete job" aria-label="Delete job"><svg viewBox="0 0 24 24"><path d="M6 6l12 12M18 6L6 18"/></svg></button>`;
      li.querySelector(".job-name").onclick = () => openJob(job.id);
      li.querySelector(".icon-btn").onclick = async () => {
        await api(`/api/jobs/${job.id}`, { method: "DELETE" }).catch(() => {});
        if (state.job && state.job.id === job.id) { stopFollowing(); state.player.stop(); $("results").hidden = true; $("job-card").hidden = true; state.job = null; history.replaceState(null, "", " "); }
        refreshJobs();
      };
      list.appendChild(li);
    }
    if (data.jobs.some((j) => !TERMINAL.has(j.status))) { clearTimeout(state.listTimer); state.listTimer = setTimeout(refreshJobs, 3000); }
  }

  async function openJob(id) {
    try {
      const job = await (await api(`/api/jobs/${id}`)).json();
      state.job = job;
      if (job.status === "done") { stopFollowing(); location.hash = "job=" + id; showResults(job); } else { follow(id); }
      window.scrollTo({ top: 0, behavior: "smooth" });
    } catch (err) { $("form-error").textContent = err.message; }
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  /* --- wiring --------------------------------------------------------------------------- */
  function wire() {
    const drop = $("drop"), input = $("file");
    drop.addEventListener("click", () => input.click());
    drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
    input.addEventListener("change", () => chooseFile(input.files[0]));
    for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
    for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.remove("over"); });
    drop.addEventListener("drop", (e) => chooseFile(e.dataTransfer.files[0]));
    $("model").addEventListener("change", showModel);
    $("start").addEventListener("click", upload);
    $("cancel").addEventListener("click", async () => {
      if (!state.job) return;
      try { showJobCard(await (await api(`/api/jobs/${state.job.id}/cancel`, { method: "POST" })).json()); } catch (err) { $("job-error").textContent = err.message; }
    });
    $("play").addEventListener("click", () => (state.player.playing ? state.player.pause() : state.player.play()));
    $("render").addEventListener("click", renderRemix);
    $("reset-mix").addEventListener("click", () => { state.player.stems.forEach((s) => s.reset && s.reset()); state.player.applyGains(); });
    $("refresh").addEventListener("click", refreshJobs);
    state.player.onchange = () => {
      const p = state.player;
      $("play").classList.toggle("playing", p.playing);
      $("play").setAttribute("aria-label", p.playing ? "Pause" : "Play");
      $("clock").textContent = `${formatTime(p.position())} / ${formatTime(p.duration)}`;
    };
    window.addEventListener("resize", () => state.player.drawAll());
    document.addEventListener("keydown", (e) => {
      if (e.code === "Space" && !$("results").hidden && !["INPUT", "SELECT", "BUTTON", "TEXTAREA"].includes(document.activeElement.tagName)) {
        e.preventDefault();
        $("play").click();
      }
    });
  }

  async function init() {
    wire();
    try { await loadModels(); } catch (err) { $("form-error").textContent = `Could not load the model list: ${err.message}`; }
    // The job id in the hash comes from the server and is validated there.
    await refreshJobs();
    const m = /job=([0-9a-f-]{36})/.exec(location.hash);
    if (m) openJob(m[1]);
  }

  init();
})();
