/* unweave stem player: synchronised playback of every stem with the Web Audio API.
 *
 * One AudioContext; each stem is an AudioBuffer -> GainNode -> destination. Play starts a
 * fresh AudioBufferSourceNode per stem, all with the same start time, so the stems stay
 * sample-aligned. Volume / mute / solo change the gains live (the remix is heard at once).
 * Waveforms are drawn on canvases from the server's peaks.
 */
"use strict";

const STEM_COLORS = ["#4f46e5", "#e0457b", "#0e9f8e", "#e08a00", "#3b82f6", "#8b5cf6", "#16a34a", "#dc2626"];

class StemPlayer {
  constructor() {
    this.ctx = null;
    this.stems = [];          // {name, buffer, gain (GainNode), volume, muted, solo, peaks, canvas, color}
    this.sources = [];
    this.playing = false;
    this.startedAt = 0;       // ctx time at which offset 0 would have played
    this.offset = 0;          // seconds into the stems while paused
    this.duration = 0;
    this.peakMax = 1;         // loudest peak of all stems: waveforms share one scale
    this.onchange = () => {};
    this._raf = null;
  }

  context() {
    if (!this.ctx) this.ctx = new (window.AudioContext || window.webkitAudioContext)();
    return this.ctx;
  }

  /* Replace the stems. `items`: [{name, url, peaks}], `fetchAudio(url)` -> ArrayBuffer. */
  async load(items, fetchAudio, onStem) {
    this.reset();
    const ctx = this.context();
    const stems = items.map((item, i) => ({
      name: item.name, buffer: null, gain: null, volume: 1, muted: false, solo: false,
      peaks: item.peaks || [], color: STEM_COLORS[i % STEM_COLORS.length], canvas: null,
    }));
    this.stems = stems;
    await Promise.all(items.map(async (item, i) => {
      const data = await fetchAudio(item.url);
      const buffer = await ctx.decodeAudioData(data);
      const gain = ctx.createGain();
      gain.connect(ctx.destination);
      stems[i].buffer = buffer;
      stems[i].gain = gain;
      if (onStem) onStem(stems[i]);
    }));
    this.duration = Math.max(0, ...stems.map((s) => s.buffer.duration));
    this.applyGains();
    this.onchange();
  }

  /* Stop and forget the current stems (their buffers can then be freed). */
  reset() {
    this.stop();
    for (const s of this.stems) if (s.gain) s.gain.disconnect();
    this.stems = [];
  }

  get ready() { return this.stems.length > 0 && this.stems.every((s) => s.buffer); }

  effectiveGain(stem) {
    const anySolo = this.stems.some((s) => s.solo);
    if (stem.muted || (anySolo && !stem.solo)) return 0;
    return stem.volume;
  }

  gains() {
    const out = {};
    for (const s of this.stems) out[s.name] = Math.round(this.effectiveGain(s) * 1000) / 1000;
    return out;
  }

  applyGains() {
    if (!this.ctx) return;
    const now = this.ctx.currentTime;
    for (const s of this.stems) {
      if (s.gain) s.gain.gain.setTargetAtTime(this.effectiveGain(s), now, 0.015);
    }
    this.drawAll();
  }

  position() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.ctx.currentTime - this.startedAt);
  }

  async play() {
    if (!this.ready || this.playing) return;
    const ctx = this.context();
    await ctx.resume();
    if (this.offset >= this.duration) this.offset = 0;
    const when = ctx.currentTime + 0.06;   // one start time for every stem
    this.sources = this.stems.map((s) => {
      const src = ctx.createBufferSource();
      src.buffer = s.buffer;
      src.connect(s.gain);
      src.start(when, this.offset);
      return src;
    });
    this.sources[0].onended = () => { if (this.playing && this.position() >= this.duration - 0.05) this.finish(); };
    this.startedAt = when - this.offset;
    this.playing = true;
    this.tick();
    this.onchange();
  }

  pause() {
    if (!this.playing) return;
    this.offset = this.position();
    this.stopSources();
    this.playing = false;
    this.onchange();
  }

  finish() {
    this.stopSources();
    this.playing = false;
    this.offset = 0;
    this.drawAll();
    this.onchange();
  }

  stop() {
    this.stopSources();
    this.playing = false;
    this.offset = 0;
  }

  stopSources() {
    for (const src of this.sources) { src.onended = null; try { src.stop(); } catch (e) { /* not started */ } }
    this.sources = [];
    cancelAnimationFrame(this._raf);
  }

  seek(seconds) {
    const wasPlaying = this.playing;
    if (wasPlaying) this.pause();
    this.offset = Math.max(0, Math.min(this.duration, seconds));
    if (wasPlaying) this.play(); else { this.drawAll(); this.onchange(); }
  }

  tick() {
    this.drawAll();
    this.onchange();
    if (this.playing) this._raf = requestAnimationFrame(() => this.tick());
  }

  /* --- waveforms --------------------------------------------------------------------- */
  drawAll() { for (const s of this.stems) if (s.canvas) this.draw(s); }

  draw(stem) {
    const canvas = stem.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, w, h);
    const peaks = stem.peaks;
    const n = peaks.length;
    if (!n) return;
    const mid = h / 2;
    const gain = Math.max(0.15, Math.min(1.6, this.effectiveGain(stem) || 0.15));
    const scale = ((h / 2 - 2 * dpr) * gain) / Math.max(0.02, this.peakMax);
    const played = this.duration ? this.position() / this.duration : 0;
    const barW = Math.max(1, Math.floor(dpr));
    for (let x = 0; x < w; x += barW + (dpr > 1 ? 1 : 0)) {
      const from = Math.floor((x / w) * n);
      const to = Math.max(from + 1, Math.floor(((x + barW) / w) * n));
      let p = 0;
      for (let i = from; i < to && i < n; i++) p = Math.max(p, peaks[i]);
      const y = Math.max(dpr, Math.min(h / 2, p * scale));
      g.fillStyle = x / w <= played ? stem.color : hexAlpha(stem.color, 0.38);
      g.fillRect(x, mid - y, barW, 2 * y);
    }
    const px = Math.round(played * w);
    g.fillStyle = "rgba(20,24,45,.65)";
    g.fillRect(px, 0, Math.max(1, dpr), h);
  }
}

function hexAlpha(hex, alpha) {
  const v = parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${alpha})`;
}

function formatTime(seconds) {
  if (!isFinite(seconds) || seconds < 0) seconds = 0;
  const s = Math.floor(seconds % 60), m = Math.floor(seconds / 60) % 60, h = Math.floor(seconds / 3600);
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
}

window.StemPlayer = StemPlayer;
window.STEM_COLORS = STEM_COLORS;
window.formatTime = formatTime;
