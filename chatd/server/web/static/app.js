// The chat page: logging in and out, the account, and the wiring of the
// connection (net.js), the conversations (chat.js), rooms (rooms.js), the
// edits, deletions, reactions and replies (edits.js), typing (typing.js),
// read receipts (receipts.js), search (search.js) and files (files.js).

import { Api, ApiError, explain, said } from "./api.js";
import { Chat } from "./chat.js";
import { Edits } from "./edits.js";
import { Files } from "./files.js";
import { configure } from "./message.js";
import { Net } from "./net.js";
import { Profiles } from "./profiles.js";
import { Receipts } from "./receipts.js";
import { Rooms } from "./rooms.js";
import { Search } from "./search.js";
import { State } from "./state.js";
import { Typing } from "./typing.js";
import { $ } from "./ui.js";

const SAVED = "chatd.session"; // sessionStorage: {session, user}; never a URL

const state = new State();
const net = new Net(location.origin);
const api = new Api(net);
let rooms = null;
let search = null;
const edits = new Edits(state, net, api);
const typing = new Typing(state, net);
const receipts = new Receipts(state, net, api);
const files = new Files(api);
const profiles = new Profiles(api, files);
configure({
  file: (f) => files.element(f),
  displayName: (user) => profiles.displayName(user),
  avatar: (img) => profiles.drawAvatar(img),
});
const chat = new Chat(state, net, api, {
  openedRoom: (conv) => rooms.opened(conv),
  opened: (conv) => {
    edits.cancelReply();
    typing.draw();
    receipts.list(conv);
    search.opened(conv);
  },
  delivered: (m, conv) => typing.stopped(conv.key, m.from),
  replay: (seq, conv, ids) => edits.replay(seq, conv, ids),
  refreshed: () => rooms.refreshed(),
  join: (r) => rooms.join(r),
  decline: (r) => rooms.decline(r),
  notify: (m) => notify(m),
  sessionEnded: () => ended("Your session ended; please log in again."),
});
rooms = new Rooms(state, api, chat);
search = new Search(state, api, chat, (m) => edits.jump(m));

net.addEventListener("status", (ev) => {
  $("status").textContent = ev.detail.text;
  $("status").dataset.state = ev.detail.state;
});
net.addEventListener("node", (ev) => {
  document.body.dataset.node = ev.detail.origin;
});
net.addEventListener("session-ended", () => ended("Your session ended; please log in again."));

function showView(view) {
  document.body.dataset.view = view;
  const inside = view !== "login";
  $("login-view").hidden = inside;
  $("chat-view").hidden = !inside;
  $("account").hidden = !inside;
}

function loggedIn(session, user) {
  api.session = session;
  state.user = user;
  document.body.dataset.user = user;
  $("whoami").textContent = user;
  sessionStorage.setItem(SAVED, JSON.stringify({ session, user }));
  net.openSession(session);
  showView("list");
  receipts.loggedIn();
  profiles.loggedIn(user);
  chat.start();
  updateNotifyButton();
}

function ended(why) {
  chat.stop();
  net.closeSession();
  api.session = null;
  state.reset();
  edits.cancelReply();
  typing.reset();
  receipts.reset();
  search.reset();
  files.reset();
  profiles.reset();
  uploading = 0;
  $("upload-status").textContent = "";
  sessionStorage.removeItem(SAVED);
  delete document.body.dataset.user;
  $("messages").replaceChildren();
  $("members").replaceChildren();
  $("conv-title").textContent = "Pick a conversation";
  $("composer").hidden = true;
  $("room-tools").hidden = true;
  $("earlier-btn").hidden = true;
  $("conv-error").textContent = "";
  $("login-error").textContent = why;
  $("login-pass").value = "";
  showView("login");
  $("login-user").focus();
}

async function login(signUp) {
  const username = $("login-user").value.trim();
  const password = $("login-pass").value;
  $("login-error").textContent = "";
  const form = $("login-form");
  if (!form.reportValidity()) return;
  try {
    let taken = false;
    if (signUp) {
      try {
        await api.call("CreateAccount", { username, password }, { withSession: false });
      } catch (err) {
        // (a call sent again after a failover finds the account it made: log in)
        if (!(err instanceof ApiError && err.code === 8)) throw err;
        taken = true;
      }
    }
    let r;
    try {
      r = await api.call("Login", { username, password }, { withSession: false });
    } catch (err) {
      throw taken ? new ApiError(8) : err;
    }
    $("login-pass").value = "";
    // (the name as the server spells it comes with the user list)
    const users = await api.listUsers();
    const found = users.find((u) => u.username.toLowerCase() === username.toLowerCase());
    loggedIn(r.session_id, found ? found.username : username);
  } catch (err) {
    $("login-error").textContent = `${signUp ? "Sign up" : "Log in"} failed: ${explain(err)}`;
  }
}

$("login-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  login(false);
});
$("signup-btn").addEventListener("click", () => login(true));

$("logout-btn").addEventListener("click", async () => {
  net.closeSession(); // (first: Logout ends the session's streams at the node)
  try {
    await api.call("Logout");
  } catch (err) {
    // (the session goes from this page whatever the node said)
  }
  ended("You are logged out.");
});

// ---- the composer, history, phone navigation ----

$("composer").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("composer-input");
  const text = input.value;
  if (text.trim() === "") return;
  input.value = "";
  const conv = state.currentConv();
  if (conv !== null) typing.sentMessage(conv);
  chat.send(text, edits.takeReply());
});
// A file attached (picked, pasted or dropped): uploaded, then sent with
// the composer's text to the conversation it was attached in.
let uploading = 0;

async function attach(file) {
  const conv = state.currentConv();
  if (conv === null || !file) return;
  const name = file.name || `pasted.${(file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/g, "")}`;
  $("conv-error").textContent = "";
  uploading += 1;
  $("upload-status").textContent = `Uploading ${name}…`;
  try {
    const ref = await files.upload(file, name);
    if (state.user === null) return;
    if (state.currentConv() !== conv) {
      // (the user moved on: it goes where it was attached, without the other's text)
      chat.send("", 0, ref, conv);
      return;
    }
    const input = $("composer-input");
    const text = input.value;
    input.value = "";
    typing.sentMessage(conv);
    chat.send(text, edits.takeReply(), ref, conv);
  } catch (err) {
    if (state.currentConv() === conv) $("conv-error").textContent = `Could not send ${name}: ${said(err)}`;
  } finally {
    uploading -= 1;
    if (uploading <= 0) $("upload-status").textContent = "";
  }
}

$("attach-btn").addEventListener("click", () => $("attach-input").click());
$("attach-input").addEventListener("change", () => {
  const input = $("attach-input");
  const file = input.files && input.files[0];
  input.value = "";
  if (file) attach(file);
  $("composer-input").focus();
});
$("composer-input").addEventListener("paste", (ev) => {
  const found = [...(ev.clipboardData ? ev.clipboardData.files : [])];
  if (found.length === 0) return;
  ev.preventDefault();
  attach(found[0]);
});
const convArea = $("conversation");
convArea.addEventListener("dragover", (ev) => {
  if (state.current === null || !ev.dataTransfer || ![...ev.dataTransfer.types].includes("Files")) return;
  ev.preventDefault();
  convArea.classList.add("dropping");
});
convArea.addEventListener("dragleave", (ev) => {
  if (!convArea.contains(ev.relatedTarget)) convArea.classList.remove("dropping");
});
convArea.addEventListener("drop", (ev) => {
  convArea.classList.remove("dropping");
  const found = [...(ev.dataTransfer ? ev.dataTransfer.files : [])];
  if (state.current === null || found.length === 0) return;
  ev.preventDefault();
  attach(found[0]);
});

$("composer-input").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    $("composer").requestSubmit();
  }
});
$("earlier-btn").addEventListener("click", () => chat.loadEarlier());
$("back-btn").addEventListener("click", () => {
  document.body.dataset.view = "list";
  const current = document.querySelector(`#sidebar [data-conv="${state.current}"]`);
  (current || $("people")).focus();
});
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && document.body.dataset.view === "conv" && !document.querySelector("dialog[open]")) {
    $("back-btn").click();
  }
});

// ---- change password ----

$("password-btn").addEventListener("click", () => {
  $("password-error").textContent = "";
  $("password-dialog").showModal();
  $("old-pass").focus();
});
$("password-cancel").addEventListener("click", () => $("password-dialog").close());
$("password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await api.call("ChangePassword", {
      old_password: $("old-pass").value,
      new_password: $("new-pass").value,
    });
    $("old-pass").value = "";
    $("new-pass").value = "";
    $("password-dialog").close();
    $("status").textContent = "Password changed.";
  } catch (err) {
    $("password-error").textContent = explain(err);
  }
});

// ---- notifications: asked for on a click only ----

function updateNotifyButton() {
  const offer = $("notify-offer");
  offer.hidden = !("Notification" in window) || Notification.permission !== "default";
}

$("notify-btn").addEventListener("click", async () => {
  try {
    await Notification.requestPermission();
  } finally {
    updateNotifyButton();
  }
});

function notify(m) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const title = m.room ? `${m.from} in #${m.room}` : m.from;
  const n = new Notification(title, { body: (m.message || (m.file ? `📎 ${m.file.name}` : "")).slice(0, 200), tag: `chatd-${m.message_id}` });
  n.addEventListener("click", () => {
    window.focus();
    chat.open(m.room ? "room" : "user", m.room || m.from);
    n.close();
  });
}

// ---- start: a session kept in this tab survives a reload ----

showView("login");
net.start();
const saved = sessionStorage.getItem(SAVED);
if (saved !== null) {
  try {
    const { session, user } = JSON.parse(saved);
    loggedIn(session, user);
  } catch (err) {
    sessionStorage.removeItem(SAVED);
  }
} else {
  $("login-user").focus();
}
