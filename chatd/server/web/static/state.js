// What the page knows: the user, contacts, rooms, and each conversation's
// messages (by message id, so none is kept twice) and its unsent ones; the
// events (edits, deletions, reactions) applied to them, once each.

const KEPT_EVENTS = 500; // the newest events, replayed onto history read meanwhile

export function sameName(a, b) {
  return (a || "").toLowerCase() === (b || "").toLowerCase();
}

// Message `m` brought up to date with event `ev` about it, in place (as
// chatd.client.model.applied): applying a run of events in id order onto a
// state that already holds some of them gives the state after the last.
export function applyEvent(m, ev) {
  if (ev.kind === "EDIT") {
    m.message = ev.message;
    m.edited = true;
  } else if (ev.kind === "DELETE") {
    m.message = "";
    m.deleted = true;
    m.reactions = [];
  } else if (ev.kind === "REACT" || ev.kind === "UNREACT") {
    let r = m.reactions.find((x) => x.emoji === ev.message);
    if (r === undefined) {
      r = { emoji: ev.message, users: [] };
      m.reactions.push(r);
    }
    const had = r.users.some((u) => sameName(u, ev.from));
    if (ev.kind === "REACT" && !had) r.users.push(ev.from);
    if (ev.kind === "UNREACT") r.users = r.users.filter((u) => !sameName(u, ev.from));
    m.reactions = m.reactions.filter((x) => x.users.length > 0);
  }
}

export function convKey(kind, name) {
  return `${kind}:${name.toLowerCase()}`;
}

export class Conversation {
  constructor(kind, name) {
    this.kind = kind; // "user" or "room"
    this.name = name;
    this.key = convKey(kind, name);
    this.byId = new Map(); // message_id -> message
    this.pending = new Map(); // request_id -> message (no id yet, or refused)
    this.loaded = false; // the newest page of history was read
    this.hasEarlier = true;
    this.oldestId = 0;
  }

  // Adds a stored message; false if it was there already.
  add(m) {
    if (this.byId.has(m.message_id)) return false;
    this.byId.set(m.message_id, m);
    if (this.oldestId === 0 || m.message_id < this.oldestId) this.oldestId = m.message_id;
    return true;
  }

  // A stored message read again from history: its state as read (the
  // events received meanwhile are replayed after); false if it is new.
  update(m) {
    const kept = this.byId.get(m.message_id);
    if (kept === undefined) return false;
    for (const k of ["message", "reply_to", "edited", "deleted", "file"]) kept[k] = m[k];
    kept.reactions = m.reactions;
    return true;
  }

  newestId() {
    let newest = 0;
    for (const id of this.byId.keys()) if (id > newest) newest = id;
    return newest;
  }
}

export class State {
  constructor() {
    this.reset();
  }

  reset() {
    this.user = null;
    this.users = []; // [{username, status}]
    this.rooms = []; // [{name, topic, members, unread, joined, admin, creator}]
    this.unread = new Map(); // peer (lower case) -> count
    this.convs = new Map();
    this.current = null; // the key of the conversation shown
    this.seen = new Set(); // the ids of the events applied
    this.events = []; // the newest events received: [{seq, ev}]
    this.eventSeq = 0;
  }

  // Keeps event `ev` (new: false if seen already).
  keep(ev) {
    if (this.seen.has(ev.message_id)) return false;
    this.seen.add(ev.message_id);
    this.eventSeq += 1;
    this.events.push({ seq: this.eventSeq, ev });
    if (this.events.length > KEPT_EVENTS) this.events.splice(0, this.events.length - KEPT_EVENTS);
    return true;
  }

  // The events kept after `seq`, in id order.
  eventsSince(seq) {
    return this.events
      .filter((e) => e.seq > seq)
      .map((e) => e.ev)
      .sort((a, b) => a.message_id - b.message_id);
  }

  // The stored message `id` and its conversation, wherever it is kept.
  find(id) {
    for (const conv of this.convs.values()) {
      const m = conv.byId.get(id);
      if (m !== undefined) return { conv, m };
    }
    return null;
  }

  conv(kind, name) {
    const key = convKey(kind, name);
    let c = this.convs.get(key);
    if (c === undefined) {
      c = new Conversation(kind, name);
      this.convs.set(key, c);
    }
    return c;
  }

  // The conversation a message belongs to, seen by this user.
  convOf(m) {
    if (m.room) return this.conv("room", m.room);
    const peer = (m.from || "").toLowerCase() === (this.user || "").toLowerCase() ? m.to : m.from;
    return this.conv("user", peer);
  }

  currentConv() {
    return this.current === null ? null : this.convs.get(this.current) || null;
  }

  unreadOf(c) {
    if (c.kind === "room") {
      const r = this.rooms.find((x) => x.name.toLowerCase() === c.name.toLowerCase());
      return r ? r.unread : 0;
    }
    return this.unread.get(c.name.toLowerCase()) || 0;
  }
}
