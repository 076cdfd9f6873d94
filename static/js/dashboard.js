/* Operator dashboard: live queue, map, incident panel and the /ws/operator/ socket.
 *
 * Plain script, no build step. The server is the only source of truth: the socket's
 * `snapshot` replaces the queue (on every (re)connect, so nothing is missed across a
 * disconnect) and each `incident.*` message upserts one incident, keeping whichever copy
 * has the newest `updated_at` (a push may race the snapshot and arrive twice).
 * Actions are HTTP POSTs (CSRF, audit); their answer and the push that follows both
 * carry the new state. Words come from the page (`#dashboard-labels`, translated).
 */
(function () {
  "use strict";

  const OPEN_STATUSES = new Set(["new", "acknowledged", "dispatched"]);
  const PRIORITY_COLOURS = { 1: "#f85149", 2: "#f0883e", 3: "#d29922", 4: "#58a6ff", 5: "#8b98a5" };
  const CAMERA_COLOURS = { online: "#39c5cf", offline: "#5a636d", unknown: "#7d8fa3" };
  const DEFAULT_VIEW = { center: [37.5636, 126.9976], zoom: 12 };
  const RECONNECT_MAX_MS = 30000;
  const HEARTBEAT_MS = 20000;
  const SILENCE_LIMIT_MS = 50000; // no message (not even a pong) for this long: the socket is dead

  const labels = readJson("dashboard-labels", { status: {}, timeline: {}, outcome: {}, camera: {}, msg: {} });
  const tileUrl = readJson("map-tile-url", "");
  const lang = (document.documentElement.lang || "ko").toLowerCase();
  const locale = lang.startsWith("ko") ? "ko-KR" : "en-GB";

  const state = {
    incidents: new Map(), // id → incident payload (as the server sent it)
    selectedId: null,
    timeline: [],
    timelineFor: null,
    socket: null,
    attempts: 0,
    everOpened: false,
    reconnectTimer: null,
    lastMessageAt: 0,
    snapshots: 0,
    beeps: 0,
    escalation: null, // id shown in the banner
  };

  const $ = (selector, root) => (root || document).querySelector(selector);
  const panel = $("#panel");
  const field = (name) => panel.querySelector(`[data-field="${name}"]`);
  const input = (name) => panel.querySelector(`[name="${name}"]`);

  function readJson(id, fallback) {
    const node = document.getElementById(id);
    if (!node) return fallback;
    try {
      return JSON.parse(node.textContent);
    } catch (err) {
      return fallback;
    }
  }

  function fmt(template, params) {
    return String(template || "").replace(/%\((\w+)\)s/g, (_, key) => (key in params ? String(params[key]) : ""));
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* ---------- time, in Asia/Seoul whatever the browser's zone ---------- */

  const dateTimeFormat = new Intl.DateTimeFormat(locale, {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const timeFormat = new Intl.DateTimeFormat(locale, {
    timeZone: "Asia/Seoul", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const clockParts = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Asia/Seoul", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });

  // Python's isoformat() has microseconds; keep milliseconds so every engine parses it.
  function parseTime(iso) {
    if (!iso) return NaN;
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function formatDateTime(iso) {
    const ms = parseTime(iso);
    return Number.isNaN(ms) ? "" : dateTimeFormat.format(new Date(ms));
  }

  function formatTime(iso) {
    const ms = parseTime(iso);
    return Number.isNaN(ms) ? "" : timeFormat.format(new Date(ms));
  }

  function formatAge(iso) {
    const ms = parseTime(iso);
    if (Number.isNaN(ms)) return "";
    const total = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
  }

  function tickClocks() {
    const parts = {};
    for (const part of clockParts.formatToParts(new Date())) parts[part.type] = part.value;
    $("#clock").textContent = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} KST`;
    for (const node of document.querySelectorAll("[data-age-of]")) {
      node.textContent = formatAge(node.getAttribute("data-age-of"));
    }
  }

  function formatDistance(metres) {
    if (metres === null || metres === undefined) return "";
    return metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
  }

  /* ---------- incidents: the one place state changes ---------- */

  function isNewer(candidate, current) {
    return !current || parseTime(candidate.updated_at) >= parseTime(current.updated_at);
  }

  function upsert(incident) {
    if (!incident || typeof incident.id !== "number") return false;
    const current = state.incidents.get(incident.id);
    if (!isNewer(incident, current)) return false;
    state.incidents.set(incident.id, incident);
    return true;
  }

  function needsAttention(incident) {
    return incident.status === "new" && incident.priority <= 2;
  }

  function applySnapshot(incidents) {
    const first = state.snapshots === 0;
    state.snapshots += 1;
    const next = new Map();
    let missedUrgent = false;
    for (const incident of incidents) {
      const current = state.incidents.get(incident.id);
      if (!current && !first && needsAttention(incident)) missedUrgent = true;
      next.set(incident.id, isNewer(incident, current) ? incident : current);
    }
    // The selected incident may have left the queue (closed) while we were away: keep
    // it on the panel and ask the server for its current state.
    const selected = state.selectedId;
    if (selected !== null && !next.has(selected) && state.incidents.has(selected)) {
      next.set(selected, state.incidents.get(selected));
      scheduleDetail(0);
    }
    state.incidents = next;
    if (missedUrgent) beep();
    if (state.escalation !== null && !next.has(state.escalation)) hideBanner();
    scheduleRender();
    if (selected !== null) renderSelected();
  }

  function onIncidentMessage(message) {
    const incident = message.incident;
    const known = state.incidents.has(incident.id);
    if (!upsert(incident)) return;
    if (message.type === "incident.created" && !known && needsAttention(incident)) beep();
    if (message.type === "incident.escalated") {
      showBanner(incident);
      beep();
    }
    if (state.escalation === incident.id && incident.status !== "new") hideBanner();
    scheduleRender();
    if (incident.id === state.selectedId) {
      renderSelected();
      if (message.type === "incident.location" && map) map.panTo([incident.location.lat, incident.location.lon]);
      scheduleDetail();
    }
  }

  function onCameraStatus(message) {
    const marker = cameraMarkers.get(message.camera);
    if (marker) {
      marker.cameraStatus = message.status;
      marker.setStyle(cameraStyle(message.status));
    }
    let touchesSelection = false;
    for (const incident of state.incidents.values()) {
      for (const camera of incident.cameras || []) {
        if (camera.id === message.camera) {
          camera.status = message.status;
          if (incident.id === state.selectedId) touchesSelection = true;
        }
      }
    }
    if (touchesSelection) renderSelected();
  }

  function handleMessage(message) {
    if (!message || typeof message !== "object") return;
    switch (message.type) {
      case "snapshot":
        applySnapshot(Array.isArray(message.incidents) ? message.incidents : []);
        break;
      case "incident.created":
      case "incident.updated":
      case "incident.location":
      case "incident.escalated":
        if (message.incident) onIncidentMessage(message);
        break;
      case "camera.status":
        onCameraStatus(message);
        break;
      case "share.created":
      case "share.ended":
        if (message.incident === state.selectedId) scheduleDetail();
        break;
      default:
        break; // "pong" and anything newer than this script
    }
  }

  /* ---------- queue ---------- */

  function openIncidents() {
    return [...state.incidents.values()]
      .filter((incident) => OPEN_STATUSES.has(incident.status))
      .sort(
        (a, b) =>
          a.priority - b.priority || parseTime(a.received_at) - parseTime(b.received_at) || a.id - b.id
      );
  }

  let renderPending = false;
  function scheduleRender() {
    // Bursts of messages (dozens a second) become one redraw.
    if (renderPending) return;
    renderPending = true;
    setTimeout(() => {
      renderPending = false;
      renderQueue();
      renderIncidentMarkers();
    }, 16);
  }

  function createRow(incident) {
    const row = el("li", "incident-row");
    row.dataset.incidentId = String(incident.id);
    row.tabIndex = 0;
    row.setAttribute("role", "button");
    row.append(
      el("span", "prio"),
      el("span", "title"),
      el("span", "age"),
      el("span", "addr"),
      el("span", "badge"),
      el("span", "meta")
    );
    return row;
  }

  function updateRow(row, incident) {
    row.className = `incident-row p${incident.priority}`;
    row.classList.toggle("selected", incident.id === state.selectedId);
    row.classList.toggle("flash", needsAttention(incident));
    row.classList.toggle("escalated", Boolean(incident.escalated));
    row.dataset.status = incident.status;
    $(".prio", row).textContent = String(incident.priority);
    $(".title", row).textContent = incident.label || incident.type;
    $(".title", row).title = incident.summary || "";
    const age = $(".age", row);
    age.setAttribute("data-age-of", incident.received_at);
    age.textContent = formatAge(incident.received_at);
    $(".addr", row).textContent = incident.address || coordinates(incident.location);
    const badge = $(".badge", row);
    badge.className = `badge ${incident.status}`;
    badge.textContent = labels.status[incident.status] || incident.status;
    const meta = $(".meta", row);
    meta.replaceChildren(el("span", "", `#${incident.id}`), el("span", "", incident.partner));
    if (incident.assignee) meta.append(el("span", "assignee", `${labels.msg.assignee} ${incident.assignee}`));
    if (incident.escalated) meta.append(el("span", "esc", `⚠ ${labels.msg.escalated}`));
    if (incident.outside_jurisdiction) meta.append(el("span", "esc", labels.msg.outside));
  }

  function renderQueue() {
    const queue = $("#queue");
    const incidents = openIncidents();
    const rows = new Map([...queue.children].map((row) => [row.dataset.incidentId, row]));
    incidents.forEach((incident, index) => {
      const key = String(incident.id);
      let row = rows.get(key);
      if (row) rows.delete(key);
      else row = createRow(incident);
      updateRow(row, incident);
      if (queue.children[index] !== row) queue.insertBefore(row, queue.children[index] || null);
    });
    for (const row of rows.values()) row.remove();
    $("#queue-count").textContent = String(incidents.length);
    $("#queue-empty").hidden = incidents.length > 0;
  }

  function coordinates(location) {
    if (!location) return "";
    const accuracy = location.accuracy_m ? ` (±${Math.round(location.accuracy_m)} m)` : "";
    return `${Number(location.lat).toFixed(5)}, ${Number(location.lon).toFixed(5)}${accuracy}`;
  }

  /* ---------- map ---------- */

  let map = null;
  let canvas = null;
  let tiles = null;
  let tilesLoaded = 0;
  let tileErrors = 0;
  const cameraMarkers = new Map(); // camera id → circleMarker
  const incidentMarkers = new Map(); // incident id → marker
  let centresLayer = null;
  let camerasLayer = null;
  let incidentsLayer = null;
  let selectionLayer = null;

  function setUpMap() {
    if (!window.L) {
      showMapNote(labels.msg.offline_map);
      return;
    }
    canvas = L.canvas({ padding: 0.3 });
    map = L.map("map", { preferCanvas: true, renderer: canvas, zoomControl: true, worldCopyJump: false })
      .setView(DEFAULT_VIEW.center, DEFAULT_VIEW.zoom);
    map.attributionControl.setPrefix(false);
    if (tileUrl) {
      const attribution = /openstreetmap/i.test(tileUrl) ? "&copy; OpenStreetMap contributors" : "";
      tiles = L.tileLayer(tileUrl, { maxZoom: 19, attribution, crossOrigin: false });
      tiles.on("tileload", () => { tilesLoaded += 1; });
      tiles.on("tileerror", onTileError);
      tiles.addTo(map);
    } else {
      goOffline();
    }
    centresLayer = L.layerGroup().addTo(map);
    camerasLayer = L.layerGroup().addTo(map);
    selectionLayer = L.layerGroup().addTo(map);
    // Incidents above the cameras' distance labels: the subject matters more than a label.
    map.createPane("incidents").style.zIndex = 655;
    incidentsLayer = L.layerGroup().addTo(map);
    map.on("zoomend", () => {
      const radius = cameraRadius();
      for (const marker of cameraMarkers.values()) marker.setRadius(radius);
    });
    loadCentres();
    loadCameras();
  }

  function onTileError() {
    // One lost tile on a working server is not an outage; no tile at all, or mostly
    // errors, is. Then drop the layer: jurisdictions, cameras and incidents stay, on a
    // plain dark background, and nothing keeps hammering an unreachable server.
    tileErrors += 1;
    if (tilesLoaded === 0 || (tileErrors >= 8 && tileErrors > tilesLoaded)) goOffline();
  }

  function goOffline() {
    // Only removeLayer: it also unhooks the layer from the map's events (through the
    // layer's own "remove" listener, so never `tiles.off()` first).
    if (tiles && map) map.removeLayer(tiles);
    tiles = null;
    if (map) map.getContainer().classList.add("tiles-offline");
    showMapNote(labels.msg.offline_map);
  }

  function showMapNote(text) {
    const note = $("#map-note");
    note.textContent = text;
    note.hidden = false;
  }

  async function getJson(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (response.redirected && new URL(response.url).pathname.startsWith("/login/")) {
      toLogin();
      throw new Error("logged out");
    }
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  }

  async function loadCentres() {
    try {
      const data = await getJson("/dashboard/centers.geojson");
      const layer = L.geoJSON(data, {
        style: { color: "#58a6ff", weight: 2.5, opacity: 0.9, dashArray: "8 5", fillColor: "#2f81f7", fillOpacity: 0.05 },
        interactive: false,
      });
      centresLayer.addLayer(layer);
      const bounds = layer.getBounds();
      if (bounds.isValid() && state.selectedId === null) map.fitBounds(bounds, { padding: [20, 20] });
    } catch (err) {
      console.warn("centres", err);
    }
  }

  // Thousands of cameras: dots small enough at city scale to leave the outlines readable.
  function cameraRadius() {
    const zoom = map ? map.getZoom() : DEFAULT_VIEW.zoom;
    return zoom <= 11 ? 1.5 : zoom <= 13 ? 2.2 : zoom <= 15 ? 3 : 4;
  }

  function cameraStyle(status) {
    const colour = CAMERA_COLOURS[status] || CAMERA_COLOURS.unknown;
    return {
      renderer: canvas,
      radius: cameraRadius(),
      color: status === "offline" ? "#3a4048" : "#0b1118",
      weight: 1,
      fillColor: colour,
      fillOpacity: status === "offline" ? 0.6 : 0.9,
    };
  }

  async function loadCameras() {
    try {
      const data = await getJson("/dashboard/cameras.geojson");
      for (const feature of data.features || []) {
        const [lon, lat] = feature.geometry.coordinates;
        const status = feature.properties.status;
        const marker = L.circleMarker([lat, lon], cameraStyle(status));
        marker.cameraStatus = status;
        marker.bindTooltip(() => escapeHtml(`${feature.properties.name} · ${labels.camera[marker.cameraStatus] || marker.cameraStatus}`));
        cameraMarkers.set(feature.id, marker);
        camerasLayer.addLayer(marker);
      }
    } catch (err) {
      console.warn("cameras", err);
    }
  }

  function incidentIcon(incident) {
    const classes = ["incident-marker", `p${incident.priority}`];
    if (needsAttention(incident)) classes.push("flash");
    if (incident.id === state.selectedId) classes.push("selected");
    return L.divIcon({
      className: classes.join(" "),
      html: `<span data-incident-marker="${Number(incident.id)}">${Number(incident.priority)}</span>`,
      iconSize: [34, 34],
      iconAnchor: [17, 17],
    });
  }

  function renderIncidentMarkers() {
    if (!map) return;
    const shown = new Map(openIncidents().map((incident) => [incident.id, incident]));
    const selected = state.incidents.get(state.selectedId);
    if (selected) shown.set(selected.id, selected);
    for (const [id, marker] of incidentMarkers) {
      if (!shown.has(id)) {
        incidentsLayer.removeLayer(marker);
        incidentMarkers.delete(id);
      }
    }
    for (const incident of shown.values()) {
      const latlng = [incident.location.lat, incident.location.lon];
      const look = `${incident.priority}|${needsAttention(incident)}|${incident.id === state.selectedId}`;
      let marker = incidentMarkers.get(incident.id);
      if (!marker) {
        marker = L.marker(latlng, { icon: incidentIcon(incident), pane: "incidents", keyboard: false, riseOnHover: true });
        marker.on("click", () => select(incident.id));
        incidentMarkers.set(incident.id, marker);
        incidentsLayer.addLayer(marker);
      } else {
        marker.setLatLng(latlng);
        if (marker.look !== look) marker.setIcon(incidentIcon(incident));
      }
      marker.look = look;
      marker.setZIndexOffset((6 - incident.priority) * 1000 + (incident.id === state.selectedId ? 10000 : 0));
      marker.unbindTooltip();
      // Leaflet writes tooltip strings as HTML; addresses come from partners.
      marker.bindTooltip(escapeHtml(`#${incident.id} ${incident.label} · ${incident.address || ""}`), {
        direction: "top", offset: [0, -16],
      });
    }
  }

  // The point `distance` metres from (lat, lon) going `bearing` degrees clockwise from north.
  function destination(lat, lon, bearing, distance) {
    const R = 6371008.8;
    const rad = Math.PI / 180;
    const d = distance / R;
    const b = bearing * rad;
    const p1 = lat * rad;
    const l1 = lon * rad;
    const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
    const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
    return [p2 / rad, l2 / rad];
  }

  function fieldOfView(camera) {
    const fov = Math.min(Number(camera.fov_deg) || 60, 360);
    const range = Number(camera.range_m) || 50;
    const style = {
      renderer: canvas, interactive: false, weight: 1,
      color: CAMERA_COLOURS[camera.status] || CAMERA_COLOURS.unknown,
      fillColor: CAMERA_COLOURS[camera.status] || CAMERA_COLOURS.unknown,
      fillOpacity: camera.status === "offline" ? 0.08 : 0.22,
    };
    if (fov >= 360) return L.circle([camera.lat, camera.lon], { ...style, radius: range });
    const start = camera.bearing_deg - fov / 2;
    const steps = Math.max(4, Math.ceil(fov / 5));
    const points = [[camera.lat, camera.lon]];
    for (let i = 0; i <= steps; i += 1) points.push(destination(camera.lat, camera.lon, start + (fov * i) / steps, range));
    return L.polygon(points, style);
  }

  function renderSelectionLayer(incident) {
    if (!map) return;
    selectionLayer.clearLayers();
    if (!incident) return;
    const here = [incident.location.lat, incident.location.lon];
    if (incident.location.accuracy_m) {
      selectionLayer.addLayer(L.circle(here, {
        renderer: canvas, radius: incident.location.accuracy_m, interactive: false,
        color: PRIORITY_COLOURS[incident.priority], weight: 1, dashArray: "3 4", fillOpacity: 0.05,
      }));
    }
    const track = (incident.track || []).map((fix) => [fix.lat, fix.lon]);
    if (track.length) {
      const last = track[track.length - 1];
      if (last[0] !== here[0] || last[1] !== here[1]) track.push(here);
    }
    if (track.length >= 2) {
      selectionLayer.addLayer(L.polyline(track, { renderer: canvas, color: "#ff7b72", weight: 4, opacity: 0.9, dashArray: "8 6" }));
      for (const point of track.slice(0, -1)) {
        selectionLayer.addLayer(L.circleMarker(point, { renderer: canvas, radius: 3, color: "#ff7b72", fillColor: "#ff7b72", fillOpacity: 1, weight: 1 }));
      }
    }
    (incident.cameras || []).forEach((camera, index) => {
      if (camera.bearing_deg !== null && camera.bearing_deg !== undefined) selectionLayer.addLayer(fieldOfView(camera));
      const offline = camera.status === "offline";
      const marker = L.circleMarker([camera.lat, camera.lon], {
        renderer: canvas, radius: 7, weight: 2, color: "#e6edf3",
        fillColor: CAMERA_COLOURS[camera.status] || CAMERA_COLOURS.unknown, fillOpacity: 1,
      });
      marker.bindTooltip(`${index + 1} · ${formatDistance(camera.distance_m)}`, {
        permanent: true, direction: "right", offset: [12, 0], className: `cam-tip${offline ? " offline" : ""}`,
      });
      marker.bindPopup(() => `${escapeHtml(camera.name)}<br>${formatDistance(camera.distance_m)} · ${escapeHtml(labels.camera[camera.status] || camera.status)}`);
      selectionLayer.addLayer(marker);
    });
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch]);
  }

  /* ---------- live video tiles of the selected incident ---------- */

  // One LivePlayer (static/js/player.js) per tile, kept across re-renders: a status push
  // or a timeline refresh must not restart sixteen videos. Another incident selected →
  // every tile is torn down (sockets closed) before the new ones open.
  const MAX_TILES = 16;
  const video = { incidentId: null, tiles: new Map(), enlarged: null }; // camera id → {node, player, rankNode}

  function tileCameras(incident) {
    return (incident.cameras || []).filter((camera) => camera.has_stream).slice(0, MAX_TILES);
  }

  function gridColumns(count) {
    return count <= 1 ? 1 : count <= 4 ? 2 : count <= 9 ? 3 : 4;
  }

  function removeTile(id) {
    const tile = video.tiles.get(id);
    if (!tile) return;
    tile.player.destroy();
    tile.node.remove();
    video.tiles.delete(id);
    if (video.enlarged === id) video.enlarged = null;
  }

  function createTile(camera) {
    const node = el("div", "video-tile");
    node.dataset.cameraId = String(camera.id);
    node.tabIndex = 0;
    node.setAttribute("role", "button");
    const box = el("div", "tile-player");
    box.style.cssText = "position:absolute;inset:0";
    const rankNode = el("span", "tile-rank");
    node.append(box, rankNode);
    const player = new window.LivePlayer(box, { cameraId: camera.id, cameraName: camera.name });
    return { node, player, rankNode };
  }

  function renderVideoGrid(incident) {
    const grid = $("#video-grid");
    const tilesNode = $(".video-tiles", grid);
    if (!window.LivePlayer) return;
    const id = incident ? incident.id : null;
    if (id !== video.incidentId) {
      for (const cameraId of [...video.tiles.keys()]) removeTile(cameraId);
      video.incidentId = id;
    }
    const cameras = incident ? tileCameras(incident) : [];
    const wanted = new Set(cameras.map((camera) => camera.id));
    for (const cameraId of [...video.tiles.keys()]) if (!wanted.has(cameraId)) removeTile(cameraId);
    const ranks = new Map((incident ? incident.cameras : []).map((camera, index) => [camera.id, index + 1]));
    cameras.forEach((camera, index) => {
      let tile = video.tiles.get(camera.id);
      if (!tile) {
        tile = createTile(camera);
        video.tiles.set(camera.id, tile);
      }
      tile.node.classList.toggle("offline", camera.status === "offline");
      tile.node.classList.toggle("enlarged", video.enlarged === camera.id);
      tile.node.setAttribute("aria-pressed", String(video.enlarged === camera.id));
      tile.rankNode.textContent = `${ranks.get(camera.id)} · ${formatDistance(camera.distance_m)}`;
      if (tilesNode.children[index] !== tile.node) tilesNode.insertBefore(tile.node, tilesNode.children[index] || null);
    });
    tilesNode.style.setProperty("--cols", String(gridColumns(cameras.length)));
    tilesNode.dataset.count = String(cameras.length);
    tilesNode.classList.toggle("has-enlarged", video.enlarged !== null);
    $('[data-field="tile-count"]', grid).textContent = String(cameras.length);
    const show = cameras.length > 0;
    if (grid.hidden === show) {
      grid.hidden = !show;
      if (map) map.invalidateSize(); // the map's box just changed height
    }
  }

  function toggleEnlarged(cameraId) {
    if (!video.tiles.has(cameraId)) return;
    video.enlarged = video.enlarged === cameraId ? null : cameraId;
    renderVideoGrid(state.incidents.get(state.selectedId));
  }

  /* ---------- selection and the incident panel ---------- */

  function select(id, options) {
    const incident = state.incidents.get(id);
    if (!incident) return;
    const changed = state.selectedId !== id;
    state.selectedId = id;
    if (changed) {
      state.timeline = [];
      state.timelineFor = null;
      setMessage("");
      input("note").value = "";
    }
    renderQueue();
    renderIncidentMarkers();
    renderSelected();
    if (map && (!options || options.fly !== false)) {
      map.flyTo([incident.location.lat, incident.location.lon], Math.max(map.getZoom(), 17), { duration: 0.6 });
    }
    scheduleDetail(0);
  }

  function renderSelected() {
    const incident = state.incidents.get(state.selectedId);
    $('[data-panel="empty"]', panel).hidden = Boolean(incident);
    $('[data-panel="body"]', panel).hidden = !incident;
    renderSelectionLayer(incident);
    renderVideoGrid(incident);
    if (!incident) return;
    const prio = field("priority");
    prio.className = `prio p${incident.priority}`;
    prio.textContent = String(incident.priority);
    field("label").textContent = incident.label || incident.type;
    const status = field("status");
    status.className = `badge ${incident.status}`;
    status.dataset.status = incident.status;
    status.textContent = labels.status[incident.status] || incident.status;
    field("escalated").hidden = !incident.escalated;
    field("outside").hidden = !incident.outside_jurisdiction;
    field("id").textContent = `#${incident.id}`;
    const age = field("age");
    age.setAttribute("data-age-of", incident.received_at);
    age.textContent = formatAge(incident.received_at);
    field("address").textContent = incident.address || "—";
    field("summary").textContent = incident.summary || "—";
    field("partner").textContent = incident.partner;
    field("occurred_at").textContent = formatDateTime(incident.occurred_at);
    field("received_at").textContent = formatDateTime(incident.received_at);
    field("acknowledged_by").textContent = incident.acknowledged_by || "—";
    field("assignee").textContent = incident.assignee || labels.msg.unassigned;
    field("location").textContent = coordinates(incident.location);
    const open = OPEN_STATUSES.has(incident.status);
    for (const button of panel.querySelectorAll("button[data-action]")) {
      const action = button.dataset.action;
      button.disabled = busy || (action === "acknowledge" ? incident.status !== "new" : action !== "note" && !open);
    }
    renderCameraList(incident);
    renderTimeline();
  }

  function renderCameraList(incident) {
    const list = field("cameras");
    list.replaceChildren();
    const cameras = incident.cameras || [];
    if (!cameras.length) {
      list.append(el("li", "muted-item", labels.msg.no_cameras));
      return;
    }
    cameras.forEach((camera, index) => {
      const item = el("li", camera.status);
      item.dataset.cameraId = String(camera.id);
      item.append(
        el("span", "rank", index + 1),
        el("span", "name", camera.name),
        el("span", "dist", formatDistance(camera.distance_m)),
        el("span", "cam-status", labels.camera[camera.status] || camera.status)
      );
      if (camera.has_stream) item.append(clipButton(incident, camera, "last"), clipButton(incident, camera, "next"));
      item.classList.toggle("has-tile", video.tiles.has(camera.id));
      item.addEventListener("click", () => {
        if (map) map.flyTo([camera.lat, camera.lon], Math.max(map.getZoom(), 18), { duration: 0.4 });
        if (video.tiles.has(camera.id) && video.enlarged !== camera.id) toggleEnlarged(camera.id);
      });
      list.append(item);
    });
  }

  // Save 30 s of a camera for the incident: the last 30 (from the relay's buffer, while
  // someone watches it) or the next 30 (recorded by a worker). The result lands on the
  // timeline and in the ledger; here only whether the request was taken.
  function clipButton(incident, camera, mode) {
    const button = el("button", "clip-save", mode === "last" ? labels.msg.clip_last : labels.msg.clip_next);
    button.type = "button";
    button.dataset.clipMode = mode;
    button.addEventListener("click", (event) => {
      event.stopPropagation(); // not a click on the camera row (fly to it / enlarge)
      saveClip(incident.id, camera, mode);
    });
    return button;
  }

  async function saveClip(incidentId, camera, mode) {
    setMessage(fmt(labels.msg.clip_saving, { camera: camera.name }));
    try {
      const response = await fetch(`/incidents/${incidentId}/clips/`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ camera_id: camera.id, seconds: 30, mode }),
      });
      if (response.redirected && new URL(response.url).pathname.startsWith("/login/")) return toLogin();
      let data = {};
      try {
        data = await response.json();
      } catch (err) {
        data = {};
      }
      if (response.ok) setMessage(labels.msg.done, "ok");
      else setMessage(fmt(labels.msg.clip_failed, { error: data.error || response.status }), "error");
    } catch (err) {
      setMessage(labels.msg.network, "error");
    }
    scheduleDetail(0);
  }

  function renderTimeline() {
    const list = field("timeline");
    list.replaceChildren();
    if (state.timelineFor !== state.selectedId) return;
    if (!state.timeline.length) {
      list.append(el("li", "muted-item", labels.msg.no_timeline));
      return;
    }
    for (const entry of [...state.timeline].reverse()) {
      const item = el("li");
      const time = el("time", "", formatTime(entry.at));
      time.dateTime = entry.at;
      time.title = formatDateTime(entry.at);
      const head = el("span", "kind", labels.timeline[entry.kind] || entry.kind);
      if (entry.actor) head.append(el("span", "muted-item", ` · ${entry.actor}`));
      item.append(time, head, el("span", "text", entry.text || ""));
      list.append(item);
    }
  }

  let detailTimer = null;
  function scheduleDetail(delay) {
    // Several pushes for one action (answer, update, timeline) become one fetch.
    clearTimeout(detailTimer);
    detailTimer = setTimeout(loadDetail, delay === undefined ? 150 : delay);
  }

  async function loadDetail() {
    const id = state.selectedId;
    if (id === null) return;
    try {
      const body = await getJson(`/dashboard/incidents/${id}.json`);
      if (state.selectedId !== id) return;
      const { timeline, ...incident } = body;
      upsert(incident);
      state.timeline = Array.isArray(timeline) ? timeline : [];
      state.timelineFor = id;
      scheduleRender();
      renderSelected();
    } catch (err) {
      console.warn("incident detail", err);
    }
  }

  /* ---------- actions ---------- */

  let busy = false;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function setMessage(text, kind) {
    const node = field("message");
    node.textContent = text || "";
    node.className = `action-message${kind ? ` ${kind}` : ""}`;
  }

  function actionBody(action) {
    if (action === "note") {
      const text = input("note").value.trim();
      if (!text) throw new Error(labels.msg.note_empty);
      return { text };
    }
    if (action === "dispatch") return { target: input("dispatch-target").value };
    if (action === "close") {
      const outcome = input("outcome").value;
      if (!outcome) throw new Error(labels.msg.choose_outcome);
      return { outcome, text: input("note").value.trim() };
    }
    return {};
  }

  async function act(action) {
    const id = state.selectedId;
    if (id === null || busy) return;
    let body;
    try {
      body = actionBody(action);
    } catch (err) {
      setMessage(err.message, "error");
      return;
    }
    busy = true;
    renderSelected();
    setMessage("");
    try {
      const response = await fetch(`/incidents/${id}/${action}/`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
      });
      if (response.redirected && new URL(response.url).pathname.startsWith("/login/")) return toLogin();
      let data = {};
      try {
        data = await response.json();
      } catch (err) {
        data = {};
      }
      if (response.ok) {
        upsert(data);
        if (action === "note" || action === "close") input("note").value = "";
        setMessage(labels.msg.done, "ok");
      } else if (response.status === 409) {
        setMessage(fmt(labels.msg.already_acknowledged, { by: data.by || "" }), "error");
      } else {
        setMessage(fmt(labels.msg.failed, { error: data.error || response.status }), "error");
      }
    } catch (err) {
      setMessage(labels.msg.network, "error");
    } finally {
      busy = false;
      scheduleRender();
      renderSelected();
      scheduleDetail(0);
    }
  }

  /* ---------- escalation banner ---------- */

  function showBanner(incident) {
    const banner = $("#banner");
    state.escalation = incident.id;
    const text = el("span", "banner-text", fmt(labels.msg.escalated_banner, { id: incident.id, label: incident.label }));
    if (incident.address) text.append(` · ${incident.address}`);
    text.addEventListener("click", () => select(incident.id));
    const close = el("button", "", "×");
    close.type = "button";
    close.setAttribute("aria-label", "×");
    close.addEventListener("click", hideBanner);
    banner.replaceChildren(el("span", "", "⚠"), text, close);
    banner.hidden = false;
  }

  function hideBanner() {
    state.escalation = null;
    $("#banner").hidden = true;
  }

  /* ---------- sound: Web Audio beeps, unlocked by the first user gesture ---------- */

  const sound = { context: null, enabled: localStorage.getItem("dashboard.sound") !== "off", lockedAtPress: false };

  function soundLocked() {
    return !sound.context || sound.context.state !== "running";
  }

  function unlockSound() {
    sound.lockedAtPress = soundLocked();
    if (!sound.context) {
      const AudioContextClass = window.AudioContext || window.webkitAudioContext;
      if (!AudioContextClass) return;
      sound.context = new AudioContextClass();
    }
    if (sound.context.state === "suspended") sound.context.resume().then(renderSoundToggle, () => {});
    renderSoundToggle();
  }

  let lastBeepAt = 0;
  function beep() {
    state.beeps += 1;
    if (!sound.enabled || !sound.context || sound.context.state !== "running") return;
    // Ten escalations in one sweep are one alarm, not ten overlapping ones.
    if (Date.now() - lastBeepAt < 1500) return;
    lastBeepAt = Date.now();
    const ctx = sound.context;
    const start = ctx.currentTime + 0.02;
    [880, 660, 880].forEach((frequency, i) => {
      const at = start + i * 0.2;
      const oscillator = ctx.createOscillator();
      const gain = ctx.createGain();
      oscillator.type = "square";
      oscillator.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, at);
      gain.gain.exponentialRampToValueAtTime(0.2, at + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.16);
      oscillator.connect(gain).connect(ctx.destination);
      oscillator.start(at);
      oscillator.stop(at + 0.18);
    });
  }

  function renderSoundToggle() {
    const button = $("#sound-toggle");
    const locked = sound.enabled && soundLocked();
    button.setAttribute("aria-pressed", String(sound.enabled));
    button.textContent = locked ? labels.msg.sound_locked : sound.enabled ? labels.msg.sound_on : labels.msg.sound_off;
    button.classList.toggle("locked", locked);
  }

  /* ---------- the socket ---------- */

  function setSocketStatus(kind) {
    const node = $("#ws-status");
    node.dataset.state = kind;
    node.textContent = {
      open: labels.msg.connected,
      forbidden: labels.msg.forbidden,
    }[kind] || labels.msg.reconnecting;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/ws/operator/`);
    let opened = false;
    state.socket = socket;
    socket.addEventListener("open", () => {
      opened = true;
      state.everOpened = true;
      state.attempts = 0;
      state.lastMessageAt = Date.now();
      setSocketStatus("open");
    });
    socket.addEventListener("message", (event) => {
      state.lastMessageAt = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      handleMessage(message);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket !== socket) return;
      state.socket = null;
      if (event.code === 4401) return toLogin();
      if (event.code === 4403) setSocketStatus("forbidden");
      else setSocketStatus("reconnecting");
      // A refused handshake reaches the browser as 1006 without the server's code:
      // find out whether the session is gone before retrying.
      if (!opened) checkSession();
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    const base = Math.min(RECONNECT_MAX_MS, 1000 * 2 ** state.attempts);
    const delay = Math.min(RECONNECT_MAX_MS, base * (0.8 + Math.random() * 0.4)); // jitter: no reconnect stampede
    state.attempts = Math.min(state.attempts + 1, 10);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  async function checkSession() {
    try {
      const response = await fetch("/dashboard/incidents.json", { credentials: "same-origin", redirect: "manual" });
      if (response.type === "opaqueredirect" || response.status === 401 || response.status === 403) toLogin();
    } catch (err) {
      // The server is away; the reconnect loop keeps trying.
    }
  }

  function heartbeat() {
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - state.lastMessageAt > SILENCE_LIMIT_MS) {
      socket.close(); // a half-open connection: start over, the new snapshot resyncs
      return;
    }
    socket.send(JSON.stringify({ type: "ping" }));
  }

  function toLogin() {
    location.assign(`/login/?next=${encodeURIComponent(location.pathname)}`);
  }

  /* ---------- start ---------- */

  function start() {
    setUpMap();
    const watching = document.querySelector(".dash").dataset.watching === "true";
    renderQueue();
    renderSoundToggle();
    tickClocks();
    setInterval(tickClocks, 1000);
    setInterval(heartbeat, HEARTBEAT_MS);

    $("#queue").addEventListener("click", (event) => {
      const row = event.target.closest("[data-incident-id]");
      if (row) select(Number(row.dataset.incidentId));
    });
    $("#queue").addEventListener("keydown", (event) => {
      if (event.key !== "Enter" && event.key !== " ") return;
      const row = event.target.closest("[data-incident-id]");
      if (!row) return;
      event.preventDefault();
      select(Number(row.dataset.incidentId));
    });
    const tiles = $("#video-grid .video-tiles");
    tiles.addEventListener("click", (event) => {
      const tile = event.target.closest(".video-tile");
      if (tile) toggleEnlarged(Number(tile.dataset.cameraId));
    });
    tiles.addEventListener("keydown", (event) => {
      const tile = event.target.closest(".video-tile");
      if (!tile || (event.key !== "Enter" && event.key !== " " && event.key !== "Escape")) return;
      event.preventDefault();
      const id = Number(tile.dataset.cameraId);
      if (event.key !== "Escape" || video.enlarged === id) toggleEnlarged(id);
    });
    panel.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (button && !button.disabled) act(button.dataset.action);
    });
    $("#sound-toggle").addEventListener("click", () => {
      // The press that unlocked the audio was meant to switch sound on, not off.
      if (sound.enabled && sound.lockedAtPress) {
        renderSoundToggle();
        return;
      }
      sound.enabled = !sound.enabled;
      localStorage.setItem("dashboard.sound", sound.enabled ? "on" : "off");
      renderSoundToggle();
    });
    // Browsers keep audio off until the operator touches the page.
    document.addEventListener("pointerdown", unlockSound, { capture: true });
    document.addEventListener("keydown", unlockSound, { capture: true });
    window.addEventListener("online", () => {
      if (!state.socket) {
        state.attempts = 0;
        connect();
      }
    });
    // Someone who watches no centre (a privacy officer) would only be refused by the socket.
    if (watching) connect();
    else setSocketStatus("forbidden");
  }

  // For the browser tests and for curious operators at the console.
  window.dashboard = {
    state,
    select: (id) => select(Number(id)),
    markerIds: () => [...incidentMarkers.keys()],
    cameraCount: () => cameraMarkers.size,
    tilesOffline: () => Boolean(map) && tiles === null,
    beeps: () => state.beeps,
    videoTiles: () => [...video.tiles.keys()],
    enlarged: () => video.enlarged,
  };

  start();
})();
