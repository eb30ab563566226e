// Rooms: create, join or decline an invitation, leave; in a room shown,
// its members (presence, admins), and an admin's invite/remove/name admin.

import { explain } from "./api.js";
import { $, renderMembers } from "./ui.js";

export class Rooms {
  constructor(state, api, chat) {
    this.state = state;
    this.api = api;
    this.chat = chat;
    this.drawn = "";
    this.gone = null; // the room shown, once it is no longer the user's
    $("room-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.create();
    });
    $("invite-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.invite();
    });
    $("leave-btn").addEventListener("click", () => this.leave());
  }

  room(name) {
    return this.state.rooms.find((r) => r.name.toLowerCase() === name.toLowerCase()) || null;
  }

  async create() {
    this.error("", "side-error");
    const name = $("room-name").value.trim();
    const topic = $("room-topic").value.trim();
    try {
      await this.api.call("CreateRoom", { room: name, topic });
      $("room-name").value = "";
      $("room-topic").value = "";
      await this.chat.refresh();
      await this.chat.open("room", name);
    } catch (err) {
      if (err.code === 21 && (await this.mine(name))) {
        // (sent again after a failover: the first one made it)
        $("room-name").value = "";
        $("room-topic").value = "";
        await this.chat.open("room", name);
        return;
      }
      this.error(`Could not create #${name}: ${explain(err)}`, "side-error");
    }
  }

  // Whether room `name` is one this user created (and is in).
  async mine(name) {
    await this.chat.refresh();
    const r = this.room(name);
    return r !== null && r.joined && r.creator.toLowerCase() === (this.state.user || "").toLowerCase();
  }

  async join(name) {
    try {
      await this.api.call("JoinRoom", { room: name });
      await this.chat.refresh();
      await this.chat.open("room", name);
    } catch (err) {
      this.error(`Could not join #${name}: ${explain(err)}`, "side-error");
    }
  }

  async decline(name) {
    try {
      await this.api.call("DeclineInvite", { room: name });
      await this.chat.refresh();
    } catch (err) {
      this.error(`Could not decline #${name}: ${explain(err)}`, "side-error");
    }
  }

  async leave() {
    const conv = this.state.currentConv();
    if (conv === null || conv.kind !== "room") return;
    try {
      await this.api.call("LeaveRoom", { room: conv.name });
      this.closed(conv, `You left #${conv.name}.`);
      await this.chat.refresh();
    } catch (err) {
      this.error(explain(err));
    }
  }

  async invite() {
    const conv = this.state.currentConv();
    const who = $("invite-user").value.trim();
    if (conv === null || who === "") return;
    try {
      await this.api.call("InviteToRoom", { room: conv.name, username: who });
      $("invite-user").value = "";
      await this.members(conv);
    } catch (err) {
      this.error(`Could not invite ${who}: ${explain(err)}`);
    }
  }

  async act(what, who) {
    const conv = this.state.currentConv();
    if (conv === null) return;
    const call = what === "remove" ? "RemoveFromRoom" : "NameRoomAdmin";
    try {
      await this.api.call(call, { room: conv.name, username: who });
      await this.members(conv);
    } catch (err) {
      this.error(explain(err));
    }
  }

  opened(conv) {
    this.gone = null;
    this.members(conv);
  }

  // The room shown: its topic, members and the tools the user may use.
  async members(conv) {
    if (conv.kind !== "room") return;
    try {
      const r = await this.api.call("ListRoomMembers", { room: conv.name });
      if (this.state.current !== conv.key) return;
      const members = r.member || [];
      const me = (this.state.user || "").toLowerCase();
      const mine = members.find((m) => m.username.toLowerCase() === me);
      const info = this.room(conv.name);
      const admin = Boolean(mine && mine.admin);
      const creator = Boolean(info && info.creator.toLowerCase() === me);
      $("room-topic-line").textContent = info && info.topic ? `Topic: ${info.topic}` : "";
      $("invite-form").hidden = !admin;
      const drawn = JSON.stringify([conv.key, members, admin, creator]);
      if (drawn === this.drawn) return;
      this.drawn = drawn;
      renderMembers(members, admin, creator, me, (what, who) => this.act(what, who));
    } catch (err) {
      if (err.code === 22 || err.code === 20) this.closed(conv, `You are no longer in #${conv.name}.`);
    }
  }

  // The room shown is no longer the user's: say so, no more sending there.
  closed(conv, why) {
    if (this.state.current !== conv.key || this.gone === conv.key) return;
    this.gone = conv.key;
    conv.loaded = false; // (joined again: its history is read again)
    $("composer").hidden = true;
    $("room-tools").hidden = true;
    $("earlier-btn").hidden = true;
    $("conv-error").textContent = why;
    this.drawn = "";
  }

  // Every refresh: the room shown still ours? its members' presence.
  refreshed() {
    const conv = this.state.currentConv();
    if (conv === null || conv.kind !== "room" || this.gone === conv.key) return;
    const info = this.room(conv.name);
    if (info === null || !info.joined) {
      this.closed(conv, `You are no longer in #${conv.name}.`);
      return;
    }
    this.members(conv);
  }

  error(text, where = "conv-error") {
    $(where).textContent = text;
  }
}
