/* Live video player: one camera's `/ws/cameras/<id>/live/` socket into Media Source Extensions.
 *
 *   const player = new LivePlayer(container, { cameraId: 12, cameraName: "시청 앞", share: null });
 *   player.destroy();
 *
 * The server sends a JSON `init` ({"type": "init", "mime": "video/mp4; codecs=\"avc1…\""}),
 * then the init segment and one fMP4 fragment per frame as binary messages, and JSON
 * `status` messages (connecting / live / offline) in between. A new `init` (the camera
 * came back with other parameters) starts a new MediaSource: its timeline starts afresh.
 *
 * The player stays near the live edge: more than JUMP_BEHIND_S behind it jumps, between
 * CATCH_UP_FROM_S and that it plays a little faster. A dropped socket reconnects with
 * backoff and jitter; a refusal (close codes 4401/4403/4404) does not — it is shown.
 * Words come from the page (`#player-labels`, translated by the server); Korean otherwise.
 */
(function () {
  "use strict";

  const JUMP_BEHIND_S = 3;
  const CATCH_UP_FROM_S = 1;
  const CATCH_UP_RATE = 1.1;
  const LIVE_TARGET_S = 0.3; // where a jump lands, behind the newest frame
  const KEEP_BEHIND_S = 10; // buffer kept behind the playhead; older media is removed
  const TRIM_EVERY_S = 20;
  const MAX_PENDING = 600; // binary messages held while no SourceBuffer takes them
  const RECONNECT_BASE_MS = 1000;
  const RECONNECT_MAX_MS = 30000;
  const SILENCE_LIMIT_MS = 10000; // a "live" socket with no video for this long is dead
  const TICK_MS = 500;
  const REFUSAL_CODES = { 4401: "unauthenticated", 4403: "forbidden", 4404: "not_found" };

  const DEFAULT_LABELS = {
    connecting: "연결 중…",
    live: "실시간",
    offline: "카메라 오프라인",
    refused: "시청 거부됨",
    unauthenticated: "다시 로그인해야 볼 수 있습니다",
    forbidden: "이 카메라를 볼 권한이 없습니다",
    not_found: "없는 카메라입니다",
    unsupported: "지원하지 않는 코덱",
    no_mse: "이 브라우저는 실시간 영상을 재생할 수 없습니다",
  };

  let labelCache = null;
  function labels() {
    if (labelCache) return labelCache;
    labelCache = { ...DEFAULT_LABELS };
    const node = document.getElementById("player-labels");
    if (node) {
      try {
        Object.assign(labelCache, JSON.parse(node.textContent));
      } catch (err) {
        // keep the defaults
      }
    }
    return labelCache;
  }

  /* One clock for every player on the page: Seoul time whatever the browser's zone. */
  const clockFormat = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const players = new Set();
  let clockTimer = null;

  function seoulNow() {
    const parts = {};
    for (const part of clockFormat.formatToParts(new Date())) parts[part.type] = part.value;
    return [`${parts.year}-${parts.month}-${parts.day} `, `${parts.hour}:${parts.minute}:${parts.second}`];
  }

  function tickAll() {
    const now = seoulNow();
    for (const player of players) player.tick(now);
  }

  function register(player) {
    players.add(player);
    if (clockTimer === null) clockTimer = setInterval(tickAll, TICK_MS);
  }

  function unregister(player) {
    players.delete(player);
    if (!players.size && clockTimer !== null) {
      clearInterval(clockTimer);
      clockTimer = null;
    }
  }

  function mediaSourceClass() {
    return window.MediaSource || window.ManagedMediaSource || null;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function socketUrl(cameraId, share) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = share ? `?share=${encodeURIComponent(share)}` : "";
    return `${scheme}//${location.host}/ws/cameras/${encodeURIComponent(cameraId)}/live/${query}`;
  }

  class LivePlayer {
    constructor(container, { cameraId, cameraName, share = null } = {}) {
      this.container = container;
      this.cameraId = cameraId;
      this.cameraName = cameraName || `#${cameraId}`;
      this.share = share;
      this.state = "connecting";
      this.detail = "";
      this.mime = null;
      this.socket = null;
      this.mediaSource = null;
      this.objectUrl = null;
      this.sourceBuffer = null;
      this.pending = []; // binary messages and removals waiting for the SourceBuffer
      this.attempts = 0;
      this.reconnectTimer = null;
      this.lastDataAt = 0;
      this.lastTrimAt = 0;
      this.seekedToStart = false;
      this.destroyed = false;
      // firstFrameMs: from construction to the first picture (for tests and benchmarks).
      this.stats = { messages: 0, bytes: 0, inits: 0, jumps: 0, reconnects: 0, firstFrameMs: null };
      this.createdAt = performance.now();
      this.build();
      register(this);
      this.tick(seoulNow());
      if (!mediaSourceClass()) {
        this.setState("unsupported", labels().no_mse);
        return;
      }
      this.connect();
    }

    /* ---------- DOM ---------- */

    build() {
      const root = el("div", "live-player");
      root.dataset.cameraId = String(this.cameraId);
      const video = el("video", "live-video");
      // Muted and inline: browsers let such a video start by itself, with no gesture.
      video.muted = true;
      video.defaultMuted = true;
      video.autoplay = true;
      video.playsInline = true;
      video.disableRemotePlayback = true; // required for ManagedMediaSource (Safari)
      video.setAttribute("muted", "");
      video.setAttribute("playsinline", "");
      const name = el("span", "live-name", this.cameraName);
      name.title = this.cameraName;
      const status = el("span", "live-status");
      status.setAttribute("role", "status");
      const message = el("div", "live-message");
      // Date and time apart: a small tile has room for the time only (player.css).
      const clock = el("span", "live-clock");
      const date = el("span", "live-date");
      const time = el("span", "live-time");
      clock.append(date, time, el("span", "live-zone", " KST"));
      root.append(video, name, status, message, clock);
      this.root = root;
      this.video = video;
      this.nodes = { status, message, date, time };
      video.addEventListener("error", () => this.onVideoError());
      video.addEventListener("loadeddata", () => {
        if (this.stats.firstFrameMs === null) this.stats.firstFrameMs = Math.round(performance.now() - this.createdAt);
      });
      this.container.append(root);
      this.setState("connecting");
    }

    tick([date, time]) {
      if (this.nodes.date.textContent !== date) this.nodes.date.textContent = date;
      this.nodes.time.textContent = time;
      this.keepLive();
    }

    setState(state, detail) {
      this.state = state;
      this.detail = detail || "";
      const words = labels();
      this.root.dataset.state = state;
      const text = words[state] || state;
      this.nodes.status.textContent = text;
      this.nodes.status.title = text; // a small tile shows only the dot
      // The states a live picture cannot show get a plain sentence over the video.
      const explain = state === "unsupported" || state === "refused" || state === "offline";
      this.nodes.message.textContent = explain ? (this.detail ? `${text} · ${this.detail}` : text) : "";
      this.nodes.message.hidden = !explain;
    }

    /* ---------- socket ---------- */

    connect() {
      if (this.destroyed) return;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      const socket = new WebSocket(socketUrl(this.cameraId, this.share));
      socket.binaryType = "arraybuffer";
      this.socket = socket;
      this.lastDataAt = Date.now();
      socket.onmessage = (event) => {
        if (this.socket !== socket) return;
        this.stats.messages += 1;
        if (typeof event.data === "string") this.onText(event.data);
        else this.onBinary(event.data);
      };
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        this.socket = null;
        this.onClose(event.code);
      };
    }

    onClose(code) {
      const refusal = REFUSAL_CODES[code] || (code >= 4400 && code < 4500 ? "refused" : null);
      if (refusal) {
        // The server said no (no login, not this operator's centre, an expired share):
        // asking again would get the same answer.
        this.setState("refused", refusal === "refused" ? "" : labels()[refusal]);
        this.root.dataset.refusal = String(code);
        return;
      }
      if (this.state === "unsupported") return;
      this.setState("connecting");
      this.scheduleReconnect();
    }

    scheduleReconnect() {
      if (this.destroyed || this.reconnectTimer !== null) return;
      const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempts);
      const delay = base * (0.75 + Math.random() * 0.5); // jitter: tiles of one outage don't return together
      this.attempts = Math.min(this.attempts + 1, 8);
      this.stats.reconnects += 1;
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
    }

    restart() {
      // Drop the socket and start over; the server sends a fresh init and keyframe.
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close();
      this.setState("connecting");
      this.scheduleReconnect();
    }

    onText(text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch (err) {
        return;
      }
      if (!message || typeof message !== "object") return;
      if (message.type === "init" && typeof message.mime === "string") this.onInit(message.mime);
      else if (message.type === "status") this.onStatus(String(message.state));
    }

    onStatus(state) {
      if (this.state === "unsupported" || this.state === "refused") return;
      if (state === "live" || state === "offline" || state === "connecting") this.setState(state);
      if (state === "live") this.attempts = 0;
    }

    onInit(mime) {
      this.stats.inits += 1;
      const MediaSourceClass = mediaSourceClass();
      if (!MediaSourceClass.isTypeSupported(mime)) {
        // Say it plainly and stop: this browser will never decode this camera's stream.
        this.mime = mime;
        const codec = (mime.match(/codecs="?([^"]+)"?/) || [])[1] || mime;
        this.root.dataset.mime = mime;
        this.setState("unsupported", codec);
        this.teardownMedia();
        const socket = this.socket;
        this.socket = null;
        if (socket) socket.close(1000);
        return;
      }
      // What was queued before this init belongs to it (data may overtake the text
      // message) unless a SourceBuffer already plays: then it is the old stream's.
      const early = this.sourceBuffer ? [] : this.pending.filter((item) => item instanceof ArrayBuffer);
      this.teardownMedia();
      this.pending = early;
      this.mime = mime;
      this.root.dataset.mime = mime;
      this.seekedToStart = false;
      const mediaSource = new MediaSourceClass();
      this.mediaSource = mediaSource;
      mediaSource.addEventListener("sourceopen", () => this.onSourceOpen(mediaSource, mime), { once: true });
      this.objectUrl = URL.createObjectURL(mediaSource);
      this.video.src = this.objectUrl;
    }

    onSourceOpen(mediaSource, mime) {
      if (this.mediaSource !== mediaSource || this.destroyed) return;
      try {
        const buffer = mediaSource.addSourceBuffer(mime);
        buffer.mode = "segments";
        buffer.addEventListener("updateend", () => this.onUpdateEnd(buffer));
        buffer.addEventListener("error", () => this.restart());
        this.sourceBuffer = buffer;
      } catch (err) {
        this.setState("unsupported", mime);
        return;
      }
      this.pump();
    }

    onBinary(data) {
      this.stats.bytes += data.byteLength;
      this.lastDataAt = Date.now();
      if (this.state === "unsupported") return;
      if (this.pending.length >= MAX_PENDING) {
        // Far behind (a hidden tab, a stalled decoder): start again at a keyframe.
        this.pending = [];
        this.restart();
        return;
      }
      this.pending.push(data);
      this.pump();
    }

    /* ---------- MSE ---------- */

    pump() {
      const buffer = this.sourceBuffer;
      if (!buffer || buffer.updating || !this.pending.length) return;
      if (this.mediaSource.readyState !== "open") return;
      const next = this.pending.shift();
      try {
        if (next instanceof ArrayBuffer) buffer.appendBuffer(next);
        else buffer.remove(next.start, next.end);
      } catch (err) {
        if (err && err.name === "QuotaExceededError" && next instanceof ArrayBuffer) {
          this.pending.unshift(next);
          this.trim(true);
          return;
        }
        this.restart();
      }
    }

    onUpdateEnd(buffer) {
      if (buffer !== this.sourceBuffer) return;
      const ranges = this.video.buffered;
      if (!this.seekedToStart && ranges.length) {
        // A viewer joining a shared stream gets times that do not start at 0.
        this.seekedToStart = true;
        this.video.currentTime = ranges.start(0);
        this.play();
      }
      this.trim(false);
      this.pump();
    }

    trim(now) {
      const ranges = this.video.buffered;
      if (!ranges.length || !this.sourceBuffer) return;
      const seconds = Date.now() / 1000;
      if (!now && seconds - this.lastTrimAt < TRIM_EVERY_S) return;
      const end = Math.min(this.video.currentTime, ranges.end(ranges.length - 1)) - KEEP_BEHIND_S;
      if (end <= ranges.start(0)) return;
      this.lastTrimAt = seconds;
      if (this.pending.some((item) => !(item instanceof ArrayBuffer))) return;
      this.pending.unshift({ start: 0, end });
    }

    keepLive() {
      const video = this.video;
      const ranges = video.buffered;
      if (!this.sourceBuffer || !ranges.length) return;
      if (this.state === "live" && Date.now() - this.lastDataAt > SILENCE_LIMIT_MS) {
        this.restart(); // a half-open socket: nothing arrives, nothing says so
        return;
      }
      const edge = ranges.end(ranges.length - 1);
      const behind = edge - video.currentTime;
      const inside = [...Array(ranges.length).keys()].some(
        (i) => video.currentTime >= ranges.start(i) && video.currentTime <= ranges.end(i)
      );
      if (behind > JUMP_BEHIND_S || !inside) {
        // Too far back to catch up smoothly, or in a hole: go to the newest frame.
        const lastStart = ranges.start(ranges.length - 1);
        video.currentTime = Math.max(lastStart, edge - LIVE_TARGET_S);
        video.playbackRate = 1;
        this.stats.jumps += 1;
      } else if (behind > CATCH_UP_FROM_S) {
        video.playbackRate = CATCH_UP_RATE;
      } else if (behind < LIVE_TARGET_S * 2) {
        video.playbackRate = 1;
      }
      if (video.paused) this.play();
    }

    play() {
      const promise = this.video.play();
      if (promise && promise.catch) promise.catch(() => {}); // autoplay refused: the next tick retries
    }

    onVideoError() {
      if (this.destroyed || !this.objectUrl) return;
      this.restart();
    }

    teardownMedia() {
      this.sourceBuffer = null;
      this.pending = [];
      const mediaSource = this.mediaSource;
      this.mediaSource = null;
      if (mediaSource && mediaSource.readyState === "open") {
        try {
          mediaSource.endOfStream();
        } catch (err) {
          // already ending
        }
      }
      if (this.objectUrl) {
        URL.revokeObjectURL(this.objectUrl);
        this.objectUrl = null;
        this.video.removeAttribute("src");
        this.video.load();
      }
    }

    /* ---------- public ---------- */

    destroy() {
      if (this.destroyed) return;
      this.destroyed = true;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      const socket = this.socket;
      this.socket = null;
      if (socket) socket.close(1000);
      this.teardownMedia();
      unregister(this);
      this.root.remove();
    }
  }

  window.LivePlayer = LivePlayer;
})();
