// Conversations: showing one, its history, sending, deliveries, read markers
// and the unread counts.

import { describe, explain, normal, requestId } from "./api.js";
import { showMessage } from "./message.js";
import { $, renderPeople, renderRooms } from "./ui.js";

const PAGE = 50;
const REFRESH_MS = 3000;
const REVEAL_PAGES = 40; // history pages read back, at most, to show a message found

export class Chat {
  constructor(state, net, api, hooks) {
    this.state = state;
    this.net = net;
    this.api = api;
    // {openedRoom, opened, refreshed, join, decline, notify, sessionEnded, replay, delivered}
    this.hooks = hooks;
    this.refreshTimer = null;
    this.soon = null;
    this.refreshing = null; // the lists' read under way
    this.marked = new Map(); // conversation key -> the id last marked read
    this.listsDrawn = "";
    net.addEventListener("delivery", (ev) => this.deliver(ev.detail, true));
    net.addEventListener("opened", (ev) => {
      if (!ev.detail.resumed) this.missedEvents();
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.markRead();
    });
  }

  me() {
    return (this.state.user || "").toLowerCase();
  }

  start() {
    this.stop();
    this.refresh();
    this.refreshTimer = setInterval(() => this.refresh(true), REFRESH_MS);
  }

  stop() {
    clearInterval(this.refreshTimer);
    clearTimeout(this.soon);
    this.refreshTimer = null;
    this.soon = null;
    this.marked.clear();
    this.listsDrawn = "";
  }

  // A stream opened afresh (not after a message it showed): what came
  // meanwhile is read again (the history shown is read again too: its
  // edits, deletions and reactions may have changed).
  missedEvents() {
    this.fetchUnseen();
    for (const conv of this.state.convs.values()) conv.stale = conv.loaded;
    const conv = this.state.currentConv();
    if (conv !== null && conv.stale) this.loadPage(conv, 0);
  }

  // The messages that waited for this user while no stream was open.
  async fetchUnseen() {
    try {
      for (let i = 0; i < 20; i++) {
        const page = await this.api.messages("GetMessages", {}); // (at most 1000 a call)
        for (const m of page) this.deliver(m, false);
        if (page.length < 1000) break;
      }
    } catch (err) {
      // (the stream brings everything from now on; counts still come from ListUnread)
    }
  }

  // A message for this user: kept once, shown if its conversation is open.
  deliver(raw, fromStream) {
    const m = normal(raw);
    const conv = this.state.convOf(m);
    const fresh = conv.add(m);
    if (fresh && conv.key === this.state.current) {
      const list = $("messages");
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
      showMessage(m);
      if (atBottom) this.scrollDown();
    }
    if (fromStream) this.net.shown(m.message_id);
    if (!fresh) return;
    this.hooks.delivered(m, conv);
    if (m.from.toLowerCase() !== this.me() && document.hidden) this.hooks.notify(m);
    if (conv.key === this.state.current) this.markRead();
    this.refreshSoon();
  }

  // After a change (a message, a read marker): the lists read again soon,
  // after the read under way if there is one (it may have begun before the
  // change was committed).
  refreshSoon() {
    if (this.soon !== null) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.refresh();
    }, 300);
  }

  // Contacts and presence, unread counts and rooms, from the server.
  // One at a time: the timer's is skipped while one runs; another caller
  // (after a change it made) waits for it and reads again.
  async refresh(timer = false) {
    if (this.refreshing !== null && timer) return;
    for (let i = 0; i < 5 && this.refreshing !== null; i++) await this.refreshing;
    if (this.state.user === null) return;
    const mine = this.readLists();
    this.refreshing = mine;
    try {
      await mine;
    } finally {
      if (this.refreshing === mine) this.refreshing = null;
    }
  }

  async readLists() {
    const session = this.api.session;
    try {
      const [users, unread, rooms] = await Promise.all([
        this.api.listUsers(),
        this.api.call("ListUnread"),
        this.api.call("ListRooms"),
      ]);
      if (session !== this.api.session) return; // (logged out meanwhile)
      this.state.users = users;
      this.state.unread = new Map((unread.unread || []).map((u) => [u.peer.toLowerCase(), u.count]));
      this.state.rooms = rooms.room || [];
      this.drawLists();
      this.hooks.refreshed();
    } catch (err) {
      if (err.code === 14 && session === this.api.session) this.hooks.sessionEnded();
    }
  }

  drawLists(force = false) {
    const s = this.state;
    const drawn = JSON.stringify([s.users, [...s.unread], s.rooms, s.current]);
    if (!force && drawn === this.listsDrawn) return;
    this.listsDrawn = drawn;
    const focused = document.activeElement;
    const key = focused && focused.dataset ? focused.dataset.conv || focused.getAttribute("aria-label") : null;
    const open = (kind, name) => this.open(kind, name);
    renderPeople(s, open);
    renderRooms(s, open, (r) => this.hooks.join(r), (r) => this.hooks.decline(r));
    if (key && !document.body.contains(focused)) {
      const again = [...document.querySelectorAll("#sidebar button")].find(
        (b) => b.dataset.conv === key || b.getAttribute("aria-label") === key,
      );
      if (again) again.focus();
    }
  }

  // Shows the conversation with a user or in a room.
  async open(kind, name) {
    const conv = this.state.conv(kind, name);
    this.state.current = conv.key;
    document.body.dataset.view = "conv";
    $("conv-title").textContent = kind === "room" ? `#${name}` : name;
    $("conv-error").textContent = "";
    $("composer").hidden = false;
    $("room-tools").hidden = kind !== "room";
    this.hooks.opened(conv);
    this.drawConversation(conv);
    this.drawLists(true);
    $("composer-input").focus();
    if (kind === "room") this.hooks.openedRoom(conv);
    if (!conv.loaded || conv.stale) await this.loadPage(conv, 0);
    this.markRead();
  }

  // The whole list at once (aria-busy: announced as one change, not each line).
  drawConversation(conv) {
    const list = $("messages");
    list.setAttribute("aria-busy", "true");
    list.replaceChildren();
    const ids = [...conv.byId.keys()].sort((a, b) => a - b);
    for (const id of ids) showMessage(conv.byId.get(id));
    for (const m of conv.pending.values()) showMessage(m);
    $("earlier-btn").hidden = !conv.loaded || !conv.hasEarlier;
    if (conv.loaded) list.removeAttribute("aria-busy");
    this.scrollDown();
  }

  // One page of history, the newest before `before` (0: the newest): each
  // message as read, with the events received meanwhile applied again.
  async loadPage(conv, before) {
    const req = { before_message_id: before, limit: PAGE };
    const since = this.state.eventSeq;
    try {
      const page =
        conv.kind === "room"
          ? await this.api.messages("GetRoomHistory", { room: conv.name, ...req })
          : await this.api.messages("GetChat", { username: conv.name, ...req });
      conv.loaded = true;
      conv.stale = false;
      conv.hasEarlier = page.length >= PAGE;
      const read = page.map(normal);
      for (const m of read) if (!conv.update(m)) conv.add(m);
      const ids = new Set(read.map((m) => m.message_id));
      this.hooks.replay(since, conv, ids);
      if (conv.key === this.state.current) for (const id of ids) showMessage(conv.byId.get(id));
      if (conv.key === this.state.current) $("earlier-btn").hidden = !conv.hasEarlier;
      if (before === 0 && conv.key === this.state.current) this.scrollDown();
    } catch (err) {
      if (conv.key === this.state.current) $("conv-error").textContent = explain(err);
    } finally {
      if (conv.key === this.state.current) $("messages").removeAttribute("aria-busy");
    }
  }

  // Message `id` of conversation `conv` (the one shown), its history read
  // back a page at a time until it is there (bounded); null if it is not.
  async reveal(conv, id) {
    for (let i = 0; i < REVEAL_PAGES && !conv.byId.has(id); i++) {
      if (conv.key !== this.state.current || (conv.loaded && !conv.hasEarlier)) break;
      const before = conv.loaded ? conv.oldestId : 0;
      await this.loadPage(conv, before);
      if (!conv.loaded || (before !== 0 && conv.oldestId === before)) break; // (failed, or nothing older)
    }
    return conv.byId.get(id) || null;
  }

  async loadEarlier() {
    const conv = this.state.currentConv();
    if (conv === null) return;
    const list = $("messages");
    const fromBottom = list.scrollHeight - list.scrollTop;
    await this.loadPage(conv, conv.oldestId);
    list.scrollTop = list.scrollHeight - fromBottom;
  }

  // MarkRead up to the newest message of the conversation shown, if seen.
  async markRead() {
    const conv = this.state.currentConv();
    if (conv === null || document.hidden || this.state.user === null) return;
    const upto = conv.newestId();
    if (upto === 0 || (this.marked.get(conv.key) || 0) >= upto) return;
    this.marked.set(conv.key, upto);
    const where = conv.kind === "room" ? { room: conv.name } : { peer: conv.name };
    try {
      await this.api.call("MarkRead", { ...where, upto });
      this.refreshSoon();
    } catch (err) {
      this.marked.delete(conv.key);
    }
  }

  // Sends the composer's text (and a file uploaded, `file`) to the
  // conversation shown (`conv`, if given): at once on screen as pending,
  // then sent (with its id) or failed.
  async send(text, replyTo = 0, file = null, to = null) {
    const conv = to || this.state.currentConv();
    if (conv === null || (text.trim() === "" && file === null)) return;
    const rid = requestId();
    const target = conv.kind === "room" ? { room: conv.name } : { to: conv.name };
    const m = {
      request_id: rid,
      from: this.state.user,
      to: conv.name,
      room: conv.kind === "room" ? conv.name : "",
      message: text,
      message_id: 0,
      time_stamp: new Date().toISOString(),
      state: "pending",
      reply_to: replyTo,
      edited: false,
      deleted: false,
      reactions: [],
      file,
    };
    conv.pending.set(rid, m);
    if (conv.key === this.state.current) showMessage(m);
    this.scrollDown();
    const frame = { ...target, message: text };
    if (replyTo) frame.reply_to = replyTo;
    if (file !== null) frame.file_id = file.file_id;
    const result = await this.net.send(rid, frame);
    if (result.error_code || !result.message_id) {
      m.state = "failed";
      m.error = describe(result.error_code, result.error_message);
      if (conv.key === this.state.current) showMessage(m);
      return;
    }
    conv.pending.delete(rid);
    m.state = "sent";
    m.message_id = result.message_id;
    const shownAlready = conv.byId.has(m.message_id);
    if (!shownAlready) {
      conv.add(m);
      this.hooks.replay(0, conv, new Set([m.message_id])); // (an event about it may be in first)
    }
    if (conv.key !== this.state.current) return;
    const li = $("messages").querySelector(`li[data-request-id="${CSS.escape(rid)}"]`);
    if (shownAlready && li) li.remove();
    else showMessage(m);
  }

  scrollDown() {
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
  }
}
