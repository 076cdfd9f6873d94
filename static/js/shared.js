/* The partner viewer (/shared/<token>/): the shared cameras live, following the subject.
 *
 * Polls state.json every second: when the subject moves the share's camera set changes
 * and the players follow; when the share expires or is revoked (state.json answers
 * 410/404, or the local clock passes expires_at) every player is destroyed, which
 * closes its video socket, and the page says so. The server closes the sockets too.
 */
(function () {
  "use strict";

  const POLL_MS = 1000;
  const root = document.getElementById("shared");
  const grid = document.getElementById("shared-cameras");
  const empty = document.getElementById("shared-empty");
  const endedNote = document.getElementById("shared-ended");
  const labels = JSON.parse(document.getElementById("shared-labels").textContent);
  let state = JSON.parse(document.getElementById("shared-state").textContent);
  const players = new Map(); // camera id -> { node, player }
  let timer = null;
  let ended = false;

  function field(name) {
    return root.querySelector(`[data-field="${name}"]`);
  }

  function formatTime(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function tile(camera) {
    const node = document.createElement("section");
    node.className = "shared-camera";
    node.dataset.cameraId = String(camera.id);
    const title = document.createElement("h2");
    title.textContent = camera.name;
    const screen = document.createElement("div");
    screen.className = "shared-player";
    node.append(title, screen);
    let player = null;
    if (window.LivePlayer) {
      player = new window.LivePlayer(screen, { cameraId: camera.id, cameraName: camera.name, share: state.share });
    } else {
      screen.textContent = labels.no_player;
    }
    return { node, player };
  }

  function destroy(entry) {
    if (entry.player && typeof entry.player.destroy === "function") entry.player.destroy();
    entry.node.remove();
  }

  function renderCameras(cameras) {
    const wanted = new Map(cameras.map((camera) => [camera.id, camera]));
    for (const [id, entry] of players) {
      if (!wanted.has(id)) {
        destroy(entry);
        players.delete(id);
      }
    }
    cameras.forEach((camera) => {
      let entry = players.get(camera.id);
      if (!entry) {
        entry = tile(camera);
        players.set(camera.id, entry);
      }
      grid.append(entry.node); // keeps rank order
    });
    empty.hidden = cameras.length > 0;
    root.dataset.cameras = cameras.map((camera) => camera.id).join(",");
  }

  function renderFacts() {
    field("label").textContent = state.incident.label;
    field("address").textContent = state.incident.address;
    field("summary").textContent = state.incident.summary;
    field("location").textContent = `${state.incident.location.lat.toFixed(6)}, ${state.incident.location.lon.toFixed(6)}`;
    const expires = field("expires_at");
    expires.dateTime = state.expires_at;
    expires.textContent = formatTime(state.expires_at);
  }

  function clipText(clip) {
    const from = clip.period_start ? formatTime(clip.period_start) : "";
    const seconds = clip.period_start && clip.period_end
      ? Math.round((Date.parse(clip.period_end) - Date.parse(clip.period_start)) / 1000)
      : null;
    return `${clip.camera_name} · ${from}${seconds === null ? "" : ` (${seconds}s)`}`;
  }

  // Saved clips the share allows: links to /shared/<token>/clips/<id>/ (audited downloads).
  function renderClips() {
    const section = document.getElementById("shared-clips");
    const list = document.getElementById("shared-clip-list");
    if (!section || !list) return;
    section.hidden = !state.clips_allowed;
    const clips = state.clips || [];
    list.replaceChildren(...clips.map((clip) => {
      const item = document.createElement("li");
      item.dataset.clipId = String(clip.id);
      const link = document.createElement("a");
      link.href = clip.url;
      link.download = "";
      link.rel = "noreferrer";
      link.textContent = clipText(clip);
      item.append(link);
      return item;
    }));
    document.getElementById("shared-clips-none").hidden = clips.length > 0;
  }

  function end(text) {
    if (ended) return;
    ended = true;
    clearInterval(timer);
    players.forEach(destroy);
    players.clear();
    root.querySelectorAll(".shared-head, .shared-facts, .shared-cameras, .shared-empty, .shared-clips").forEach((node) => node.remove());
    endedNote.textContent = text || labels.ended;
    endedNote.hidden = false;
    root.dataset.ended = "true";
    root.dataset.cameras = "";
  }

  async function poll() {
    if (ended) return;
    let response;
    try {
      response = await fetch("state.json", { cache: "no-store", credentials: "omit" });
    } catch (err) {
      if (Date.parse(state.expires_at) <= Date.now()) end();
      return; // network blip: keep the video, try again
    }
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};
    }
    if (!response.ok || !data.active) {
      if (response.status >= 500) return;
      end(data.error ? labels.ended : undefined);
      return;
    }
    state = data;
    renderFacts();
    renderCameras(state.cameras);
    renderClips();
  }

  renderFacts();
  renderCameras(state.cameras);
  renderClips();
  root.dataset.ended = "false";
  timer = setInterval(poll, POLL_MS);
  window.addEventListener("pagehide", () => players.forEach(destroy));
})();
