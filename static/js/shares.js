/* Operator share controls in the incident panel: share now / relay, extend, revoke.
 *
 * Self-contained: it follows the panel's selected incident and its timeline through
 * DOM observation (dashboard.js re-renders the timeline on share.created/share.ended
 * pushes), and talks to /incidents/<id>/shares.json and the share endpoints.
 */
(function () {
  "use strict";

  const box = document.getElementById("share-controls");
  if (!box) return;
  const panel = document.getElementById("panel");
  const labels = JSON.parse(document.getElementById("share-labels").textContent);
  const list = box.querySelector('[data-share="list"]');
  const message = box.querySelector('[data-share="message"]');
  const recipient = box.querySelector('select[name="share-recipient"]');
  const reason = box.querySelector('input[name="share-reason"]');
  let incidentId = null;
  let loading = null;

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const input = document.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  function say(text, kind) {
    message.textContent = text || "";
    message.className = `action-message${kind ? ` ${kind}` : ""}`;
  }

  function selectedId() {
    const node = panel && panel.querySelector('[data-field="id"]');
    const id = node ? parseInt(node.textContent.replace(/[^0-9]/g, ""), 10) : NaN;
    return Number.isNaN(id) ? null : id;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await response.json();
    } catch (err) {
      data = {};
    }
    return { ok: response.ok, status: response.status, data };
  }

  function button(text, onClick) {
    const node = document.createElement("button");
    node.type = "button";
    node.textContent = text;
    node.addEventListener("click", onClick);
    return node;
  }

  function render(data) {
    list.replaceChildren();
    (data.shares || []).forEach((share) => {
      const item = document.createElement("li");
      item.className = share.active ? "share active" : "share ended";
      item.dataset.shareId = String(share.id);
      const until = new Date(share.expires_at).toLocaleTimeString();
      item.append(`${share.partner_name} · ${share.active ? `${labels.until} ${until}` : `${labels.ended} (${share.end_reason})`}`);
      if (share.active) {
        item.append(" ", button(labels.extend, () => act(`/shares/${share.id}/extend/`, { minutes: 15 })));
        item.append(" ", button(labels.revoke, () => {
          if (window.confirm(labels.confirm)) act(`/shares/${share.id}/revoke/`, {});
        }));
      }
      list.append(item);
    });
    const chosen = recipient.value;
    recipient.replaceChildren();
    (data.recipients || []).forEach((partner) => {
      const option = document.createElement("option");
      option.value = partner.slug;
      option.textContent = partner.sender ? `${partner.name} (${labels.sender})` : partner.name;
      recipient.append(option);
    });
    if (chosen) recipient.value = chosen;
  }

  async function refresh() {
    const id = incidentId;
    if (id === null) return;
    const request = fetch(`/incidents/${id}/shares.json`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    loading = request;
    try {
      const response = await request;
      if (loading !== request || id !== incidentId || !response.ok) return;
      render(await response.json());
    } catch (err) {
      /* the dashboard shows connection problems; try again on the next change */
    }
  }

  async function act(url, body) {
    say("");
    try {
      const result = await post(url, body);
      if (result.ok && result.data.viewer_url) {
        say(`${labels.created} ${result.data.viewer_url}`, "ok");
      } else if (result.ok) {
        say(labels.done, "ok");
      } else {
        say(labels.failed.replace("{error}", result.data.error || result.status), "error");
      }
    } catch (err) {
      say(labels.failed.replace("{error}", err.message), "error");
    }
    refresh();
  }

  box.querySelector('[data-share="create"]').addEventListener("click", () => {
    if (incidentId === null) return;
    act(`/incidents/${incidentId}/shares/`, { partner: recipient.value, reason: reason.value.trim() });
  });

  function onPanelChange() {
    const id = selectedId();
    if (id !== incidentId) {
      incidentId = id;
      say("");
      reason.value = "";
      list.replaceChildren();
    }
    refresh();
  }

  const observer = new MutationObserver(() => {
    clearTimeout(observer.timer);
    observer.timer = setTimeout(onPanelChange, 150);
  });
  ["id", "timeline"].forEach((name) => {
    const node = panel && panel.querySelector(`[data-field="${name}"]`);
    if (node) observer.observe(node, { childList: true, characterData: true, subtree: true });
  });
  onPanelChange();
})();
