// Read receipts: how far the others of a conversation have read it (from
// ListReceipts when it opens, then the stream's receipt frames), shown on
// the user's own messages ("Seen" under the newest one the peer read; in a
// room "Seen by N"), and the "Share read receipts" setting.
//
// The setting is read from the server at log-in (ListReceipts without a
// conversation answers it alone), so a choice made on another device shows.

import { explain } from "./api.js";
import { configure, redrawSeen } from "./message.js";
import { convKey, sameName } from "./state.js";
import { $ } from "./ui.js";

// "ann", "ann and bob", "ann, bob and cat"
export function names(list) {
  return list.length < 2 ? list.join("") : `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]}`;
}

export class Receipts {
  constructor(state, net, api) {
    this.state = state;
    this.api = api;
    this.byConv = new Map(); // conversation key -> Map(lower-case name -> {username, upto})
    this.newestSeen = new Map(); // conversation key -> {upto, size, id}: the "Seen" one-to-one
    configure({ seen: (m) => this.seen(m) });
    net.addEventListener("receipt", (ev) => this.received(ev.detail));
    net.addEventListener("opened", () => {
      const conv = this.state.currentConv();
      if (conv !== null) this.list(conv); // (frames missed while no stream was open)
    });
    $("share-receipts").addEventListener("change", () => this.share($("share-receipts").checked));
  }

  reset() {
    this.byConv.clear();
    this.newestSeen.clear();
  }

  async loggedIn() {
    const box = $("share-receipts");
    box.checked = true; // (the server's default, until it answers)
    $("share-error").textContent = "";
    try {
      const setting = await this.api.call("ListReceipts", {});
      box.checked = !setting.not_sharing;
    } catch (err) {
      $("share-error").textContent = `Could not read the setting: ${explain(err)}`;
    }
  }

  async share(on) {
    const box = $("share-receipts");
    box.disabled = true;
    $("share-error").textContent = "";
    try {
      await this.api.call("ShareReceipts", { share: on });
      const conv = this.state.currentConv();
      if (conv !== null) this.list(conv); // (off: no one's shown any more)
    } catch (err) {
      box.checked = !on;
      $("share-error").textContent = `Could not change the setting: ${explain(err)}`;
    } finally {
      box.disabled = false;
    }
  }

  // How far the others have read conversation `conv` (as the node says now).
  async list(conv) {
    const where = conv.kind === "room" ? { room: conv.name } : { peer: conv.name };
    try {
      const r = await this.api.call("ListReceipts", where);
      const read = new Map();
      for (const c of r.receipt || []) read.set(c.username.toLowerCase(), { username: c.username, upto: Number(c.upto) });
      this.byConv.set(conv.key, read);
      this.redraw(conv);
    } catch (err) {
      // (a room left or gone says so elsewhere; receipts are best effort)
    }
  }

  received(c) {
    if (typeof c.username !== "string" || c.username === "" || sameName(c.username, this.state.user)) return;
    const key = c.room ? convKey("room", c.room) : convKey("user", c.username);
    let read = this.byConv.get(key);
    if (read === undefined) {
      if (key !== this.state.current) return; // (listed when it opens)
      read = new Map();
      this.byConv.set(key, read);
    }
    const had = read.get(c.username.toLowerCase());
    const upto = Number(c.upto) || 0;
    if (had !== undefined && had.upto >= upto) return;
    read.set(c.username.toLowerCase(), { username: c.username, upto });
    const conv = this.state.convs.get(key);
    if (conv !== undefined) this.redraw(conv);
  }

  redraw(conv) {
    this.newestSeen.delete(conv.key);
    if (conv.key !== this.state.current) return;
    for (const m of conv.byId.values()) if (sameName(m.from, this.state.user)) redrawSeen(m);
  }

  // The id of the user's newest message that the peer has read (0: none).
  seenOneToOne(conv, upto) {
    const kept = this.newestSeen.get(conv.key);
    if (kept !== undefined && kept.upto === upto && kept.size === conv.byId.size) return kept.id;
    let id = 0;
    for (const m of conv.byId.values()) {
      if (m.message_id <= upto && m.message_id > id && sameName(m.from, this.state.user)) id = m.message_id;
    }
    this.newestSeen.set(conv.key, { upto, size: conv.byId.size, id });
    return id;
  }

  // What message `m` (the user's own) says of who read it: null, or
  // {text, label, names}.
  seen(m) {
    if (!m.message_id || m.state !== "sent" || !sameName(m.from, this.state.user)) return null;
    const conv = this.state.convOf(m);
    const read = this.byConv.get(conv.key);
    if (read === undefined || read.size === 0) return null;
    if (conv.kind === "user") {
      const peer = read.get(conv.name.toLowerCase());
      if (peer === undefined || this.seenOneToOne(conv, peer.upto) !== m.message_id) return null;
      return { text: "Seen", label: `Seen by ${peer.username}`, names: "" };
    }
    const by = [...read.values()].filter((r) => r.upto >= m.message_id).map((r) => r.username);
    if (by.length === 0) return null;
    by.sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
    return { text: `Seen by ${by.length}`, label: `Seen by ${names(by)}`, names: names(by) };
  }
}
