// Edits, deletions, reactions and replies: the actions on a message shown,
// and the events of the session's stream applied to the messages kept (by
// target id, each event once, by its id).

import { normal, said } from "./api.js";
import { configure, elementOf, quoteText, redrawAnswers, setEditor, setPicker, showMessage } from "./message.js";
import { applyEvent, sameName } from "./state.js";
import { $, el } from "./ui.js";

export class Edits {
  constructor(state, net, api) {
    this.state = state;
    this.api = api;
    this.net = net;
    this.reply = null; // the message the composer's text answers
    this.deleting = null; // the message the delete dialog asks about
    this.error = ""; // the conversation's error line, when it is ours
    configure({
      me: () => this.state.user || "",
      lookup: (id) => this.lookup(id),
      canDelete: (m) => this.canDelete(m),
      act: (what, m, arg) => this.act(what, m, arg),
    });
    net.addEventListener("event", (ev) => {
      const e = normal(ev.detail);
      this.net.seen(e.message_id);
      this.apply(e);
    });
    $("reply-cancel").addEventListener("click", () => {
      this.cancelReply();
      $("composer-input").focus();
    });
    $("composer-input").addEventListener("keydown", (ev) => {
      if (ev.key === "Escape" && this.reply !== null) {
        ev.stopPropagation();
        this.cancelReply();
      }
    });
    $("delete-cancel").addEventListener("click", () => $("delete-dialog").close());
    $("delete-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const m = this.deleting;
      $("delete-dialog").close();
      if (m !== null) this.remove(m);
    });
  }

  lookup(id) {
    const conv = this.state.currentConv();
    return (conv && conv.byId.get(id)) || null;
  }

  me() {
    return this.state.user || "";
  }

  // The author may delete a message; so may an admin of its room.
  canDelete(m) {
    if (sameName(m.from, this.me())) return true;
    if (!m.room) return false;
    const r = this.state.rooms.find((x) => sameName(x.name, m.room));
    return Boolean(r && r.joined && r.admin);
  }

  act(what, m, arg) {
    if (what === "reply") this.startReply(m);
    else if (what === "react") this.togglePicker(m);
    else if (what === "pick") this.react(m, arg.emoji, arg.had);
    else if (what === "edit") this.openEditor(m);
    else if (what === "delete") this.confirmDelete(m);
    else if (what === "jump") this.jump(m);
  }

  // ---- events ----

  // Event `ev` applied to the message it is about (once: by its id).
  apply(ev) {
    if (!ev.message_id || !this.state.keep(ev)) return;
    const found = this.state.find(ev.target_id);
    if (found === null) return; // (its history, read later, has it)
    applyEvent(found.m, ev);
    this.changed(found.conv, found.m);
  }

  // The events received since `seq` (while history was read) applied again
  // to the messages of `page` as read.
  replay(seq, conv, ids) {
    for (const ev of this.state.eventsSince(seq)) {
      if (ids.has(ev.target_id)) applyEvent(conv.byId.get(ev.target_id), ev);
    }
  }

  changed(conv, m) {
    if (conv.key !== this.state.current) return;
    if (m.deleted && this.reply !== null && this.reply.message_id === m.message_id) this.showReply();
    if (m.deleted && this.deleting === m) $("delete-dialog").close();
    showMessage(m);
    redrawAnswers(m.message_id);
  }

  // An action of the user's own, done: its event applied now (the stream
  // brings it too, and is then skipped).
  done(r, m, kind, message = "") {
    this.clearError();
    if (r.message_id) this.apply({ message_id: r.message_id, kind, target_id: m.message_id, from: this.me(), message });
  }

  fail(what, err) {
    this.error = `Could not ${what}: ${said(err)}`;
    $("conv-error").textContent = this.error;
  }

  clearError() {
    if (this.error !== "" && $("conv-error").textContent === this.error) $("conv-error").textContent = "";
    this.error = "";
  }

  // ---- reactions ----

  togglePicker(m) {
    const li = elementOf(m.message_id);
    if (li === null) return;
    const open = li.dataset.picker !== "open";
    setPicker(m, open);
    const focus = open ? li.querySelector(".picker button") : li.querySelector('[data-key="react"]');
    if (focus !== null) focus.focus();
  }

  async react(m, emoji, had) {
    const li = elementOf(m.message_id);
    if (li !== null && li.dataset.picker === "open") this.togglePicker(m);
    try {
      const r = await this.api.call("React", { message_id: m.message_id, emoji, remove: had });
      this.done(r, m, had ? "UNREACT" : "REACT", emoji);
    } catch (err) {
      this.fail("react", err);
    }
  }

  // ---- editing ----

  openEditor(m) {
    const box = el("textarea", {
      className: "edit-box",
      rows: 2,
      maxLength: 4096,
      value: m.message,
      "aria-label": "Edit your message",
      "aria-describedby": `edit-hint-${m.message_id}`,
    });
    const save = el("button", { type: "button", className: "small", text: "Save" });
    const cancel = el("button", { type: "button", className: "small secondary", text: "Cancel" });
    const hint = el("span", { className: "hint", id: `edit-hint-${m.message_id}`, text: "Enter saves, Escape cancels" });
    const editor = el("div", { className: "editor" }, box, el("div", { className: "editor-row" }, hint, save, cancel));
    const close = () => {
      setEditor(m, null);
      const li = elementOf(m.message_id);
      const edit = li && li.querySelector('[data-key="edit"]');
      if (edit) edit.focus();
    };
    const submit = async () => {
      const text = box.value;
      if (text === m.message) return close();
      save.disabled = true;
      try {
        const r = await this.api.call("EditMessage", { message_id: m.message_id, message: text });
        close();
        this.done(r, m, "EDIT", text);
      } catch (err) {
        save.disabled = false;
        this.fail("edit", err);
        box.focus();
      }
    };
    box.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        submit();
      } else if (ev.key === "Escape") {
        ev.stopPropagation();
        close();
      }
    });
    save.addEventListener("click", submit);
    cancel.addEventListener("click", close);
    setEditor(m, editor);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  // ---- deleting: asked first ----

  confirmDelete(m) {
    this.deleting = m;
    const whose = sameName(m.from, this.me()) ? "your message" : `${m.from}'s message`;
    $("delete-title").textContent = `Delete ${whose}?`;
    $("delete-quote").textContent = quoteText(m);
    $("delete-dialog").showModal();
    $("delete-cancel").focus();
  }

  async remove(m) {
    this.deleting = null;
    try {
      const r = await this.api.call("DeleteMessage", { message_id: m.message_id });
      this.done(r, m, "DELETE");
      const li = elementOf(m.message_id);
      if (li !== null) li.focus();
    } catch (err) {
      this.fail("delete", err);
    }
  }

  // ---- replies ----

  startReply(m) {
    this.reply = m;
    this.showReply();
    $("composer-input").focus();
  }

  showReply() {
    const m = this.reply;
    $("reply-bar").hidden = m === null;
    if (m === null) {
      $("composer-input").removeAttribute("aria-describedby");
      return;
    }
    const who = sameName(m.from, this.me()) ? "yourself" : m.from;
    $("reply-text").textContent = `Replying to ${who}: ${quoteText(m)}`;
    $("composer-input").setAttribute("aria-describedby", "reply-text");
  }

  cancelReply() {
    this.reply = null;
    this.showReply();
  }

  // The id the next send answers (0: none); the reply is done with.
  takeReply() {
    const m = this.reply;
    this.cancelReply();
    return m === null || m.deleted ? 0 : m.message_id;
  }

  // Shows the message a quote names, and gives it the focus.
  jump(m) {
    const li = elementOf(m.message_id);
    if (li === null) return;
    li.scrollIntoView({ block: "center" });
    li.focus();
    li.classList.add("flash");
    setTimeout(() => li.classList.remove("flash"), 1500);
  }
}
