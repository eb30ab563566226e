// One message on screen: who and when, the message it answers, its text
// (edited, deleted), its reactions and what the user may do with it. The
// element is drawn again whole when the message changes; the focus stays
// on the same control, an open editor or picker stays open.

import { picker, reactionsRow } from "./reactions.js";
import { sameName } from "./state.js";
import { $, el, formatTime } from "./ui.js";

// What a message's drawing asks of the page (edits.js sets it).
let view = {
  me: () => "",
  lookup: () => null, // message id -> the stored message, in the conversation shown
  canDelete: () => false,
  act: () => {}, // (what, m, arg): reply, react, pick, edit, delete, jump
  seen: () => null, // message -> who read it: null or {text, label} (receipts.js sets it)
  file: () => null, // a message's file -> the element that shows it (files.js)
  displayName: () => "", // a username -> its display name, "" if none (profiles.js)
  avatar: () => {}, // an avatar's <img>, new: its src set, or left hidden (profiles.js)
};

export function configure(v) {
  view = { ...view, ...v };
}

function short(text, n = 120) {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}

export function quoteText(q) {
  if (q.deleted) return "Message deleted";
  if (q.file && q.message.trim() === "") return `📎 ${q.file.name}`;
  return short(q.message);
}

function avatar(from) {
  const img = el("img", { className: "avatar", "data-user": from.toLowerCase(), alt: "", hidden: true });
  view.avatar(img);
  return img;
}

function nameOf(from) {
  return sameName(from, view.me()) ? "You" : from;
}

// The message `id` answers: a button that shows it (or a line, when it is
// not loaded).
function quote(id) {
  const q = view.lookup(id);
  if (q === null) {
    return el("p", { className: "quote", "data-reply-to": id, text: "↩ In reply to an earlier message" });
  }
  const b = el(
    "button",
    {
      type: "button",
      className: "quote",
      "data-reply-to": id,
      "data-key": "quote",
      "aria-label": `In reply to ${nameOf(q.from)}: ${quoteText(q)} (show it)`,
    },
    el("span", { className: "quote-from", text: `↩ ${nameOf(q.from)}` }),
    el("span", { className: `quote-text${q.deleted ? " gone" : ""}`, text: quoteText(q) }),
  );
  b.addEventListener("click", () => view.act("jump", q));
  return b;
}

function button(text, key, label, onClick) {
  const b = el("button", { type: "button", className: "act", "data-key": key, text, "aria-label": label });
  b.addEventListener("click", onClick);
  return b;
}

function actions(li, m, mine) {
  const who = mine ? "your message" : `${m.from}'s message`;
  const open = li.dataset.picker === "open";
  const react = button("React", "react", `React to ${who}`, () => view.act("react", m));
  react.setAttribute("aria-expanded", open ? "true" : "false");
  const row = el("div", { className: "actions" }, button("Reply", "reply", `Reply to ${who}`, () => view.act("reply", m)), react);
  if (mine) row.append(button("Edit", "edit", "Edit your message", () => view.act("edit", m)));
  if (view.canDelete(m)) row.append(button("Delete", "delete", `Delete ${who}`, () => view.act("delete", m)));
  const parts = [row];
  if (open) {
    const close = () => view.act("react", m);
    parts.push(picker(m, view.me(), (emoji, had) => view.act("pick", m, { emoji, had }), close));
  }
  return parts;
}

// Who read the user's own message `m`: "Seen" or "Seen by N" (null:
// nothing); the names in its title and, for a screen reader, after it.
function seenLine(m) {
  const s = view.seen(m);
  if (s === null) return null;
  const names = s.names ? el("span", { className: "visually-hidden", text: `: ${s.names}` }) : null;
  return el("p", { className: "seen", title: s.label }, s.text, names);
}

// Draws again what message `m`'s element says of who read it.
export function redrawSeen(m) {
  const li = elementOf(m.message_id);
  if (li === null) return;
  const old = li.querySelector(":scope > .seen");
  const line = seenLine(m);
  if (old !== null && line !== null) {
    if (old.textContent !== line.textContent || old.title !== line.title) old.replaceWith(line);
  } else if (old !== null) old.remove();
  else if (line !== null) li.append(line);
}

// Draws message `m` into its element `li` (again).
function fill(li, m) {
  const active = document.activeElement;
  const inside = active !== li && li.contains(active);
  const key = inside && active.dataset ? active.dataset.key : undefined;
  const editor = m.deleted ? null : li.querySelector(".editor");
  const mine = sameName(m.from, view.me());
  const head = el(
    "div",
    { className: "meta" },
    mine ? null : avatar(m.from),
    el("span", { className: "from", text: mine ? "You" : m.from }),
    mine ? null : el("span", { className: "display-name", "data-user": m.from.toLowerCase(), text: view.displayName(m.from) }),
  );
  if (m.time_stamp) {
    head.append(el("time", { className: "when", dateTime: m.time_stamp, text: formatTime(m.time_stamp) }));
  }
  if (m.edited && !m.deleted) head.append(el("span", { className: "edited", text: "(edited)" }));
  head.append(el("span", { className: "note" }));
  const parts = [head];
  if (m.reply_to) parts.push(quote(m.reply_to));
  const body = el("p", { className: "body", text: m.deleted ? "Message deleted" : m.message });
  const file = m.file && !m.deleted ? view.file(m.file) : null;
  if (file !== null) {
    parts.push(file);
    body.hidden = m.message === "";
  }
  parts.push(body);
  if (editor !== null) {
    body.hidden = true;
    parts.push(editor);
  } else if (!m.deleted && m.message_id) {
    parts.push(reactionsRow(m, view.me(), (emoji, had) => view.act("pick", m, { emoji, had })));
    parts.push(...actions(li, m, mine));
  }
  if (mine) parts.push(seenLine(m));
  li.replaceChildren(...parts.filter(Boolean));
  li.classList.toggle("deleted", m.deleted);
  setState(li, m);
  if (key !== undefined) {
    // (a reaction taken back, its chip gone: React keeps the focus; the
    // message deleted: the message itself)
    const same = li.querySelector(`[data-key="${CSS.escape(key)}"]`);
    (same || li.querySelector('[data-key="react"]') || li).focus();
  } else if (inside && li.contains(active)) active.focus();
}

function messageElement(m) {
  const mine = sameName(m.from, view.me());
  const li = el("li", {
    className: `msg ${mine ? "mine" : "theirs"}`,
    "data-message-id": m.message_id ? String(m.message_id) : null,
    "data-request-id": m.request_id || null,
    tabIndex: -1,
  });
  fill(li, m);
  return li;
}

export function setState(li, m) {
  li.dataset.state = m.state || "sent";
  if (m.message_id) li.dataset.messageId = String(m.message_id);
  const note = li.querySelector(".note");
  if (m.state === "pending") note.textContent = "sending…";
  else if (m.state === "failed") note.textContent = `not sent: ${m.error || "refused"}`;
  else note.textContent = "";
}

// Puts a message's element where its id belongs (unsent ones last).
function place(ol, li, id) {
  if (!id) {
    ol.append(li);
    return;
  }
  for (const other of ol.children) {
    const oid = Number(other.dataset.messageId || 0);
    if (other !== li && (oid === 0 || oid > id)) {
      ol.insertBefore(li, other);
      return;
    }
  }
  ol.append(li);
}

export function elementOf(id) {
  return id ? $("messages").querySelector(`li[data-message-id="${id}"]`) : null;
}

// Shows message `m` (stored or unsent) in the open conversation's list, or
// draws it again.
export function showMessage(m) {
  const ol = $("messages");
  let li = null;
  if (m.request_id) li = ol.querySelector(`li[data-request-id="${CSS.escape(m.request_id)}"]`);
  if (li === null) li = elementOf(m.message_id);
  if (li === null) {
    li = messageElement(m);
    place(ol, li, m.message_id);
    if (m.message_id) redrawAnswers(m.message_id);
    return li;
  }
  const before = li.dataset.messageId;
  fill(li, m);
  if (m.message_id && before !== String(m.message_id)) place(ol, li, m.message_id);
  return li;
}

// Draws again the messages shown that answer message `id` (their quote).
export function redrawAnswers(id) {
  for (const q of $("messages").querySelectorAll(`.quote[data-reply-to="${id}"]`)) {
    const li = q.closest("li");
    const m = view.lookup(Number(li.dataset.messageId || 0));
    if (m !== null) fill(li, m);
  }
}

// A message's editor goes in place of its text (null: closes it).
export function setEditor(m, editor) {
  const li = elementOf(m.message_id);
  if (li === null) return;
  const old = li.querySelector(".editor");
  if (old !== null) old.remove();
  if (editor !== null) li.append(editor);
  fill(li, m);
}

export function setPicker(m, open) {
  const li = elementOf(m.message_id);
  if (li === null) return;
  if (open) li.dataset.picker = "open";
  else delete li.dataset.picker;
  fill(li, m);
}
