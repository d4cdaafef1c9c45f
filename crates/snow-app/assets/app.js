// Snow app: live updates (server-sent events) and the sensitivity dialog.
// No inline script anywhere (the Content-Security-Policy forbids it); the
// pages work without this file, only less live.
"use strict";

function csrfAction(form) {
  return form.getAttribute("action");
}

function setBadge(id, n) {
  const b = document.getElementById(id);
  if (!b) return;
  b.textContent = String(n);
  b.hidden = n === 0;
}

// Newest request per element: an older answer arriving late is dropped.
const latest = {};

// Takes the element `id` from the page at `url` and puts it in place of
// ours. The element is looked up after the answer came, since another
// update may have replaced it meanwhile.
async function refresh(id, url) {
  const seq = (latest[id] = (latest[id] || 0) + 1);
  let html;
  try {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) return;
    html = await r.text();
  } catch (_) {
    return;
  }
  if (seq !== latest[id]) return;
  const tpl = document.createElement("template");
  tpl.innerHTML = html.trim();
  const fresh = tpl.content.getElementById(id) || tpl.content.firstElementChild;
  const el = document.getElementById(id);
  if (fresh && el && fresh.id === id) el.replaceWith(fresh);
}

function listen() {
  if (!window.EventSource) return;
  const es = new EventSource("/events");
  const page = document.body.dataset.page;
  const handle = (ev) => {
    let e;
    try { e = JSON.parse(ev.data); } catch (_) { return; }
    setBadge("badge-alerts", e.new_alerts);
    setBadge("badge-chat", e.unread);
    const conn = document.getElementById("conn");
    if (conn) {
      conn.className = "conn " + (e.online ? "online" : "offline");
      if (!e.online) conn.textContent = conn.dataset.offline;
    }
    if (ev.type === "alert") {
      const list = document.getElementById("alert-list");
      if (page === "alerts" && list) {
        refresh("alert-list", "/alerts/list?show=" + encodeURIComponent(list.dataset.show || "new"));
      }
      const live = document.getElementById("live");
      if (live && e.new_alerts > 0) live.textContent = live.dataset.newAlert + " (" + e.new_alerts + ")";
    }
    if (ev.type === "message") {
      const conv = document.getElementById("conversation");
      if (conv && (!e.from || e.from === conv.dataset.with)) {
        refresh("lines", "/chat/with/" + encodeURIComponent(conv.dataset.with) + "/lines");
      }
    }
    if (ev.type === "presence" && document.getElementById("contacts")) {
      // The contact list shows presence: take it from the chat page again
      // (only the list: a form being filled in or sent is left alone).
      refresh("contacts", "/chat");
    }
  };
  for (const kind of ["alert", "message", "presence", "connection"]) es.addEventListener(kind, handle);
}

function sensitivityDialog() {
  const dialog = document.getElementById("sensitivity");
  const form = document.getElementById("send-form");
  if (!dialog || !form || form.dataset.confirmed === "true") return;
  const confirmForm = dialog.querySelector("form");
  const open = () => { if (!dialog.open) dialog.showModal(); };
  // A new conversation: the dialog opens before anything can be written.
  open();
  form.addEventListener("submit", (ev) => {
    if (form.dataset.confirmed !== "true") { ev.preventDefault(); open(); }
  });
  document.getElementById("dialog-cancel").addEventListener("click", () => dialog.close());
  confirmForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch(csrfAction(confirmForm), { method: "POST", credentials: "same-origin", redirect: "manual" });
    if (r.type === "opaqueredirect" || r.ok) {
      form.dataset.confirmed = "true";
      dialog.close();
      document.getElementById("text").focus();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  listen();
  sensitivityDialog();
});
