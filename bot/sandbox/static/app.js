// The sandbox page: act as a user, send commands, click buttons, watch replies update.
"use strict";

(() => {
  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("command");
  const picker = document.getElementById("user");
  const status = document.getElementById("status");
  const messages = new Map();
  let users = {};

  function currentUser() { return picker.value; }

  function say(text) { status.textContent = text; }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const detail = await response.json().catch(() => ({}));
      say(detail.error || ("request failed: " + response.status));
    } else {
      say("");
    }
  }

  function clickButton(message, element) {
    post("/api/actions", { user: currentUser(), message_id: message.id, action_id: element.action_id });
  }

  function renderMessage(message) {
    const node = document.createElement("div");
    node.className = "msg" + (message.visible_to ? " ephemeral" : "");
    node.dataset.id = message.id;
    node.dataset.user = message.user;
    const head = document.createElement("div");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.user === "opsbot" ? "opsbot" : (users[message.user] || message.user);
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = new Date(message.ts * 1000).toLocaleTimeString();
    head.append(who, when);
    if (message.edited) {
      const edited = document.createElement("span");
      edited.className = "edited";
      edited.textContent = "(edited)";
      head.appendChild(edited);
    }
    if (message.visible_to) {
      const only = document.createElement("span");
      only.className = "only-you";
      only.textContent = " · only visible to you";
      head.appendChild(only);
    }
    node.appendChild(head);
    const body = document.createElement("div");
    body.className = "body";
    if (message.blocks && message.blocks.length) {
      body.appendChild(BlockKit.render(message.blocks, users, (e) => clickButton(message, e)));
    } else {
      body.className = "body bk-section";
      body.append(...BlockKit.mrkdwn(message.text, users));
    }
    if (message.file) {
      const details = document.createElement("details");
      details.className = "bk-file";
      const summary = document.createElement("summary");
      summary.textContent = "📎 " + message.file.filename + (message.file.title ? " — " + message.file.title : "");
      const pre = document.createElement("pre");
      pre.textContent = message.file.content;
      details.append(summary, pre);
      body.appendChild(details);
    }
    node.appendChild(body);
    return node;
  }

  function visible(message) {
    return !message.visible_to || message.visible_to === currentUser();
  }

  function show(message) {
    messages.set(message.id, message);
    const existing = list.querySelector(`.msg[data-id="${CSS.escape(message.id)}"]`);
    if (!visible(message)) { if (existing) existing.remove(); return; }
    const node = renderMessage(message);
    if (existing) existing.replaceWith(node);
    else list.appendChild(node);
    list.scrollTop = list.scrollHeight;
  }

  function redraw() {
    list.replaceChildren();
    [...messages.values()].sort((a, b) => a.ts - b.ts).forEach(show);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    post("/api/commands", { user: currentUser(), text });
  });

  picker.addEventListener("change", () => {
    localStorage.setItem("opsbot-sandbox-user", currentUser());
    redraw();
  });

  async function start() {
    const session = await (await fetch("/api/session")).json();
    users = Object.fromEntries(session.users.map((u) => [u.id, u.name]));
    for (const u of session.users) {
      const option = document.createElement("option");
      option.value = u.id;
      option.textContent = u.name + " (" + u.id + ")";
      picker.appendChild(option);
    }
    const remembered = localStorage.getItem("opsbot-sandbox-user");
    if (remembered && users[remembered]) picker.value = remembered;
    document.getElementById("prefix").textContent = session.command;
    document.getElementById("channel").textContent = "#sandbox (" + session.channel + ")";
    const events = new EventSource("/api/events?since=0");
    events.addEventListener("message", (event) => show(JSON.parse(event.data)));
    events.addEventListener("open", () => { say(""); document.body.dataset.live = "yes"; });
    events.addEventListener("error", () => say("connection to opsbot lost; retrying…"));
  }

  start();
})();
