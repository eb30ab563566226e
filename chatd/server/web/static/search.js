// Search: the messages of all the user's conversations (or only the open
// one) holding the query's words, newest first, a page at a time; a result
// opens its conversation at the message. And people, by the start of their
// name, to open a conversation with. The query's words are marked in a
// result by building nodes (<mark>), never by markup from strings.

import { ApiError, explain, normal } from "./api.js";
import { sameName } from "./state.js";
import { $, el, formatTime } from "./ui.js";

const PAGE = 20;
const MAX_WORDS = 8; // (the server's bounds: refused beyond them)
const SNIPPET = 160; // characters of a long message shown around its first match
const PEOPLE = 10;
const PEOPLE_DELAY_MS = 200;
const NAME_PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;
const WORD = /[\p{L}\p{N}\p{M}]+/gu;

// A word as the index compares it: no diacritics, in lower case.
function fold(word) {
  return word.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

// The query's words (letters, digits and marks), as the server cuts them.
export function queryWords(query) {
  return query.match(WORD) || [];
}

// Whether a word of a message matches: one of the query's words, or, for
// the last one, a word it begins.
function matcher(words) {
  const folded = words.map(fold);
  const last = folded[folded.length - 1];
  return (w) => {
    const f = fold(w);
    return folded.includes(f) || (last !== undefined && f.startsWith(last));
  };
}

// `text` as nodes, the words that match in <mark>; a long text cut around
// its first match.
export function highlighted(text, words) {
  const matches = matcher(words);
  const runs = [...text.matchAll(WORD)].filter((r) => matches(r[0]));
  let start = 0;
  let end = text.length;
  if (text.length > SNIPPET) {
    const first = runs.length > 0 ? runs[0].index : 0;
    start = Math.max(0, first - 40);
    end = Math.min(text.length, start + SNIPPET);
  }
  const out = [];
  if (start > 0) out.push("…");
  let at = start;
  for (const r of runs) {
    const from = r.index;
    const to = r.index + r[0].length;
    if (from < start || to > end) continue;
    if (from > at) out.push(text.slice(at, from));
    out.push(el("mark", { text: r[0] }));
    at = to;
  }
  if (end > at) out.push(text.slice(at, end));
  if (end < text.length) out.push("…");
  return out;
}

export class Search {
  constructor(state, api, chat, show) {
    this.state = state;
    this.api = api;
    this.chat = chat;
    this.show = show; // (message) -> scrolls to it and gives it the focus
    this.query = null; // {query, words, where} of the results shown
    this.nextBefore = 0;
    this.running = false;
    this.peopleTimer = null;
    this.peopleAsked = "";
    $("search-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.run();
    });
    $("search-more").addEventListener("click", () => this.more());
    $("search-close").addEventListener("click", () => {
      this.close();
      $("search-input").focus();
    });
    $("people-search").addEventListener("input", () => {
      clearTimeout(this.peopleTimer);
      this.peopleTimer = setTimeout(() => this.people(), PEOPLE_DELAY_MS);
    });
    document.addEventListener("keydown", (ev) => this.shortcut(ev));
  }

  reset() {
    this.close();
    $("search-input").value = "";
    $("people-search").value = "";
    $("people-found").replaceChildren();
    $("people-found").hidden = true;
    $("people-note").textContent = "";
    this.opened(null);
  }

  // `/` or Ctrl+K (not while typing in a field): to the search box.
  shortcut(ev) {
    const slash = ev.key === "/" && !ev.ctrlKey && !ev.metaKey && !ev.altKey;
    const k = (ev.key === "k" || ev.key === "K") && (ev.ctrlKey || ev.metaKey) && !ev.altKey;
    if ((!slash && !k) || this.state.user === null || document.querySelector("dialog[open]")) return;
    const t = ev.target;
    const typing = t instanceof HTMLElement && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
    if (typing && !k) return;
    ev.preventDefault();
    document.body.dataset.view = "list"; // (at phone width the list holds the box)
    $("search-input").focus();
    $("search-input").select();
  }

  // The conversation shown changed: the "only this one" toggle names it.
  opened(conv) {
    const box = $("search-here");
    box.disabled = conv === null;
    if (conv === null) box.checked = false;
    $("search-here-label").textContent =
      conv === null ? "Only the open conversation" : conv.kind === "room" ? `Only in #${conv.name}` : `Only with ${conv.name}`;
  }

  async run() {
    const query = $("search-input").value.trim();
    const words = queryWords(query);
    $("search-error").textContent = "";
    if (words.length === 0) {
      $("search-error").textContent = "Type a word to search for (letters or digits).";
      return;
    }
    if (words.length > MAX_WORDS) {
      $("search-error").textContent = `At most ${MAX_WORDS} words.`;
      return;
    }
    const conv = $("search-here").checked ? this.state.currentConv() : null;
    const where = conv === null ? {} : conv.kind === "room" ? { room: conv.name } : { peer: conv.name };
    this.query = { query, words, where };
    this.nextBefore = 0;
    $("search-panel").hidden = false;
    $("search-results").replaceChildren();
    const scope = conv === null ? "" : conv.kind === "room" ? ` in #${conv.name}` : ` with ${conv.name}`;
    $("search-title").textContent = `Results for “${query}”${scope}`;
    await this.page();
  }

  async more() {
    if (this.query === null || this.nextBefore === 0) return;
    await this.page();
  }

  async page() {
    if (this.running) return;
    const asked = this.query;
    this.running = true;
    $("search-more").disabled = true;
    $("search-status").textContent = "Searching…";
    try {
      const r = await this.api.call("SearchMessages", {
        query: asked.query,
        ...asked.where,
        before_message_id: this.nextBefore,
        limit: PAGE,
      });
      if (asked !== this.query) return; // (another search meanwhile)
      const found = (r.message || []).map(normal);
      const list = $("search-results");
      const first = list.children.length;
      list.append(...found.map((m) => this.result(m, asked.words)));
      this.nextBefore = Number(r.next_before_id || 0);
      $("search-more").hidden = this.nextBefore === 0;
      const n = list.children.length;
      $("search-status").textContent =
        n === 0 ? "No messages found." : `${n} ${n === 1 ? "message" : "messages"} found${this.nextBefore ? ", more to see" : ""}.`;
      // (More keeps the place: the focus goes to the first new result)
      if (first > 0 && found.length > 0) list.children[first].querySelector("button").focus();
    } catch (err) {
      if (asked === this.query) {
        $("search-status").textContent = "";
        $("search-error").textContent = `Could not search: ${err instanceof ApiError ? err.message : explain(err)}`;
      }
    } finally {
      this.running = false;
      $("search-more").disabled = false;
    }
  }

  // One result: who, where and when, and its text with the words marked.
  result(m, words) {
    const mine = sameName(m.from, this.state.user);
    const peer = mine ? m.to : m.from;
    const where = m.room ? `in #${m.room}` : mine ? `to ${peer}` : "to you";
    const meta = el(
      "span",
      { className: "result-meta" },
      el("span", { className: "from", text: mine ? "You" : m.from }),
      el("span", { className: "where", text: where }),
      el("time", { className: "when", dateTime: m.time_stamp, text: formatTime(m.time_stamp) }),
    );
    const text = el("span", { className: "result-text" }, ...highlighted(m.message, words));
    const b = el("button", { type: "button", className: "result", "data-found-id": m.message_id }, meta, text);
    b.addEventListener("click", () => this.openResult(m));
    return el("li", {}, b);
  }

  async openResult(m) {
    const kind = m.room ? "room" : "user";
    const name = m.room || (sameName(m.from, this.state.user) ? m.to : m.from);
    await this.chat.open(kind, name);
    const conv = this.state.conv(kind, name);
    const found = await this.chat.reveal(conv, m.message_id);
    if (found !== null) this.show(found);
    else if (conv.key === this.state.current) {
      $("conv-error").textContent = "That message is further back than the page reads at once: use “Load earlier messages”.";
    }
  }

  close() {
    this.query = null;
    this.nextBefore = 0;
    $("search-panel").hidden = true;
    $("search-results").replaceChildren();
    $("search-status").textContent = "";
    $("search-error").textContent = "";
  }

  // ---- people, by the start of their name ----

  async people() {
    const prefix = $("people-search").value.trim();
    const list = $("people-found");
    const note = $("people-note");
    if (prefix === this.peopleAsked) return;
    this.peopleAsked = prefix;
    if (prefix === "") {
      list.replaceChildren();
      list.hidden = true;
      note.textContent = "";
      return;
    }
    if (!NAME_PREFIX.test(prefix)) {
      list.replaceChildren();
      list.hidden = true;
      note.textContent = "A name has only letters, digits, _ . and -.";
      return;
    }
    try {
      const r = await this.api.call("SearchUsers", { prefix, limit: PEOPLE + 1 });
      if (prefix !== this.peopleAsked) return;
      const users = (r.user || []).filter((u) => !sameName(u.username, this.state.user)).slice(0, PEOPLE);
      list.replaceChildren(...users.map((u) => this.person(u)));
      list.hidden = users.length === 0;
      note.textContent = users.length === 0 ? `No one's name starts with “${prefix}”.` : "";
    } catch (err) {
      if (prefix === this.peopleAsked) note.textContent = `Could not search: ${explain(err)}`;
    }
  }

  person(u) {
    const online = u.status === "online";
    const b = el(
      "button",
      {
        type: "button",
        className: "entry",
        "data-found-user": u.username,
        "aria-label": `Chat with ${u.username}, ${online ? "online" : "offline"}`,
      },
      el("span", { className: `dot ${online ? "on" : "off"}`, "aria-hidden": "true" }),
      el("span", { className: "name", text: u.username }),
      el("span", { className: "presence", text: online ? "online" : "offline" }),
    );
    b.addEventListener("click", () => this.chat.open("user", u.username));
    return el("li", {}, b);
  }
}
