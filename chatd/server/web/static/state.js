// What the page knows: the user, contacts, rooms, and each conversation's
// messages (by message id, so none is kept twice) and its unsent ones.

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
