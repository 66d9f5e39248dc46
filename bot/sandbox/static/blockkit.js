// Renders the Block Kit JSON opsbot sends to Slack: header, section (text and fields),
// context, divider and actions with buttons, plus Slack mrkdwn. Builds DOM nodes with
// textContent only, so nothing in a message can inject HTML.
"use strict";

const BlockKit = (() => {
  const EMOJI = {
    warning: "⚠️", x: "❌", boom: "💥", lock: "🔒", white_check_mark: "✅",
    hourglass: "⏳", hourglass_flowing_sand: "⏳", rocket: "🚀", rewind: "⏪",
    arrow_right: "➡️", no_entry: "⛔", question: "❓", bell: "🔔", wrench: "🔧",
    fire: "🔥", eyes: "👀", ok: "🆗", stop_sign: "🛑", clock3: "🕒", tada: "🎉",
  };

  function decode(text) {
    return text.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function textNode(text) {
    const withEmoji = decode(text).replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);
    return document.createTextNode(withEmoji);
  }

  function el(tag, className, children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  // <@U123>, <#C123|name>, <!here>, <https://x|label>
  function special(inner, users) {
    if (inner.startsWith("@")) {
      const id = inner.slice(1).split("|")[0];
      return el("span", "mention", [document.createTextNode("@" + (users[id] || id))]);
    }
    if (inner.startsWith("#")) {
      const [id, name] = inner.slice(1).split("|");
      return el("span", "mention", [document.createTextNode("#" + (name || id))]);
    }
    if (inner.startsWith("!")) {
      return el("span", "mention", [document.createTextNode("@" + inner.slice(1).split("|")[0])]);
    }
    const [url, label] = inner.split("|");
    if (/^(https?:|mailto:)/.test(url)) {
      const a = el("a", null, [document.createTextNode(decode(label || url))]);
      a.href = decode(url);
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      return a;
    }
    return document.createTextNode("<" + decode(inner) + ">");
  }

  const INLINE = [
    { re: /<([^<>\n]+)>/, make: (m, users) => special(m[1], users) },
    { re: /`([^`\n]+)`/, make: (m) => el("code", null, [document.createTextNode(decode(m[1]))]) },
    { re: /\*([^*\n]+)\*/, make: (m, users) => el("strong", null, inline(m[1], users)) },
    { re: /(?:^|(?<=[\s(]))_([^_\n]+)_(?=$|[\s).,!?:;])/, make: (m, users) => el("em", null, inline(m[1], users)) },
    { re: /~([^~\n]+)~/, make: (m, users) => el("s", null, inline(m[1], users)) },
  ];

  function inline(text, users) {
    const out = [];
    let rest = text;
    while (rest) {
      let best = null;
      for (const rule of INLINE) {
        const m = rule.re.exec(rest);
        if (m && (best === null || m.index < best.m.index)) best = { m, rule };
      }
      if (!best) { out.push(textNode(rest)); break; }
      if (best.m.index > 0) out.push(textNode(rest.slice(0, best.m.index)));
      out.push(best.rule.make(best.m, users));
      rest = rest.slice(best.m.index + best.m[0].length);
    }
    return out;
  }

  function mrkdwn(text, users) {
    const out = [];
    const parts = text.split("```");
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        out.push(el("pre", null, [el("code", null, [document.createTextNode(decode(part.replace(/^\n/, "")))])]));
      } else if (part) {
        out.push(...inline(part, users));
      }
    });
    return out;
  }

  function textObject(obj, users) {
    if (!obj) return [];
    if (obj.type === "plain_text") return [textNode(obj.text)];
    return mrkdwn(obj.text || "", users);
  }

  function button(element, onButton) {
    const b = el("button", "bk-button" + (element.style ? " " + element.style : ""),
      [document.createTextNode(decode(element.text.text))]);
    b.type = "button";
    b.dataset.actionId = element.action_id;
    b.addEventListener("click", () => {
      if (element.confirm && !window.confirm(decode(element.confirm.text.text))) return;
      onButton(element);
    });
    return b;
  }

  function block(b, users, onButton) {
    switch (b.type) {
      case "header":
        return el("div", "bk-header", textObject(b.text, users));
      case "section": {
        const node = el("div", "bk-block");
        if (b.text) node.appendChild(el("div", "bk-section", textObject(b.text, users)));
        if (b.fields) node.appendChild(el("div", "bk-fields",
          b.fields.map((f) => el("div", "bk-field", textObject(f, users)))));
        return node;
      }
      case "context":
        return el("div", "bk-context", (b.elements || []).flatMap((e) => textObject(e, users)));
      case "divider":
        return el("hr", "bk-divider");
      case "actions":
        return el("div", "bk-actions", (b.elements || [])
          .filter((e) => e.type === "button").map((e) => button(e, onButton)));
      default:
        return el("div", "bk-context", [document.createTextNode("[unsupported block: " + b.type + "]")]);
    }
  }

  function render(blocks, users, onButton) {
    const fragment = document.createDocumentFragment();
    for (const b of blocks || []) fragment.appendChild(block(b, users, onButton));
    return fragment;
  }

  return { render, mrkdwn };
})();
