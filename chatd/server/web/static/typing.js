// Typing notices: sent while the user types in the composer (at most one
// per conversation every SEND_EVERY_MS), and the others' shown under the
// conversation until they expire or a message from them arrives there.

import { convKey, sameName } from "./state.js";
import { $ } from "./ui.js";

const SEND_EVERY_MS = 3000;
const NODE_EVERY_MS = 1100; // (the node passes on one a second per conversation per stream)
const DEFAULT_EXPIRES_MS = 6000;
const MAX_EXPIRES_MS = 30000; // (a notice never holds the line longer)

// "ann is typing…", "ann and bob are typing…", "3 people are typing…"
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

export class Typing {
  constructor(state, net) {
    this.state = state;
    this.net = net;
    this.who = new Map(); // conversation key -> Map(lower-case name -> {name, until})
    this.sent = new Map(); // conversation key -> when the last notice went
    this.timer = null;
    this.later = null; // a notice due once the wait is over
    this.lastKey = 0;
    net.addEventListener("typing", (ev) => this.received(ev.detail));
    $("composer-input").addEventListener("input", () => this.typed());
  }

  reset() {
    this.who.clear();
    this.sent.clear();
    clearTimeout(this.timer);
    clearTimeout(this.later);
    this.timer = null;
    this.later = null;
    this.draw();
  }

  // The user typed in the composer: tell the conversation, now and then.
  // A key typed too soon after the last notice is told once the wait is
  // over, if the user is still at it then.
  typed() {
    const conv = this.state.currentConv();
    if (conv === null || $("composer-input").value.trim() === "") return;
    const now = Date.now();
    this.lastKey = now;
    const due = (this.sent.get(conv.key) || 0) + SEND_EVERY_MS;
    if (now >= due) {
      this.tell(conv, now);
      return;
    }
    if (this.later === null) {
      this.later = setTimeout(() => {
        this.later = null;
        const still = this.state.currentConv() === conv && Date.now() - this.lastKey < SEND_EVERY_MS;
        if (still && $("composer-input").value.trim() !== "") this.tell(conv, Date.now());
      }, due - now);
    }
  }

  tell(conv, now) {
    const where = conv.kind === "room" ? { room: conv.name } : { peer: conv.name };
    if (this.net.typing(where)) this.sent.set(conv.key, now);
  }

  // A sent message ends the user's typing there: the next key tells again,
  // once the node takes a notice again (one a second per conversation).
  sentMessage(conv) {
    const last = this.sent.get(conv.key);
    if (last !== undefined) this.sent.set(conv.key, last - SEND_EVERY_MS + NODE_EVERY_MS);
  }

  received(t) {
    const from = typeof t.from_ === "string" ? t.from_ : "";
    if (from === "" || sameName(from, this.state.user)) return;
    const key = t.room ? convKey("room", t.room) : convKey("user", from);
    let typers = this.who.get(key);
    if (typers === undefined) {
      typers = new Map();
      this.who.set(key, typers);
    }
    const ms = Number(t.expires_ms) > 0 ? Math.min(Number(t.expires_ms), MAX_EXPIRES_MS) : DEFAULT_EXPIRES_MS;
    typers.set(from.toLowerCase(), { name: from, until: Date.now() + ms });
    this.draw();
  }

  // A message from `from` in conversation `key`: no longer typing there.
  stopped(key, from) {
    const typers = this.who.get(key);
    if (typers !== undefined && typers.delete((from || "").toLowerCase())) this.draw();
  }

  // The line under the conversation shown; the next expiry scheduled.
  draw() {
    const now = Date.now();
    let next = Infinity;
    for (const [key, typers] of this.who) {
      for (const [name, t] of typers) {
        if (t.until <= now) typers.delete(name);
        else next = Math.min(next, t.until);
      }
      if (typers.size === 0) this.who.delete(key);
    }
    const typers = this.state.current === null ? undefined : this.who.get(this.state.current);
    // (in the order they began typing)
    const names = typers === undefined ? [] : [...typers.values()].map((t) => t.name);
    const line = $("typing");
    const text = typingText(names);
    if (line.textContent !== text) line.textContent = text;
    clearTimeout(this.timer);
    this.timer = next === Infinity ? null : setTimeout(() => this.draw(), next - now + 20);
  }
}
