// Display names and avatars: the user's own (SetProfile, in Settings; an
// avatar is an image uploaded with POST /files) and each sender's beside
// the username in a message (GetProfiles, asked in batches and kept for a
// while; a delivery carries none). An avatar shows small and round, its
// thumbnail fetched with the session header into a blob: URL kept per file
// id and revoked once no message shows it.

import { said } from "./api.js";
import { isImage } from "./files.js";
import { $ } from "./ui.js";

const KEEP_MS = 60000; // a profile read is shown this long before it is asked again
const BATCH_MS = 50;
const MAX_BATCH = 1000;

export class Profiles {
  constructor(api, files) {
    this.api = api;
    this.files = files; // files.js: uploads and blob: URLs
    this.avatars = new Map(); // file id -> {url: a blob: URL or null (coming, or failed)}
    this.known = new Map(); // username (lower case) -> {display, avatar, at}
    this.wanted = new Set();
    this.timer = null;
    this.me = null;
    $("profile-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.save();
    });
    $("avatar-btn").addEventListener("click", () => $("avatar-input").click());
    $("avatar-input").addEventListener("change", () => {
      const file = $("avatar-input").files[0];
      $("avatar-input").value = "";
      if (file) this.saveAvatar(file);
    });
  }

  // The display name of `user` as known now ("" if none or not known yet;
  // asked for then, and the page's names filled in when it comes).
  displayName(user) {
    const key = (user || "").toLowerCase();
    if (key === "") return "";
    const p = this.known.get(key);
    if (p === undefined || Date.now() - p.at > KEEP_MS) this.want(key);
    return p === undefined ? "" : p.display;
  }

  want(key) {
    this.wanted.add(key);
    if (this.timer === null) this.timer = setTimeout(() => this.fetch(), BATCH_MS);
  }

  async fetch() {
    this.timer = null;
    const names = [...this.wanted].slice(0, MAX_BATCH);
    for (const n of names) this.wanted.delete(n);
    if (names.length === 0 || this.api.session === null) return;
    const at = Date.now();
    // (asked again only after KEEP_MS, whatever the answer)
    for (const n of names) if (!this.known.has(n)) this.known.set(n, { display: "", avatar: "", at });
    try {
      const r = await this.api.call("GetProfiles", { usernames: names });
      for (const n of names) this.known.set(n, { display: "", avatar: "", at });
      for (const p of r.profile || []) {
        this.known.set(p.username.toLowerCase(), {
          display: p.display_name || "",
          avatar: p.avatar_file_id || "",
          at,
        });
      }
      this.fill();
    } catch (err) {
      // (shown without display names; asked again later)
    }
    if (this.wanted.size > 0) this.want([...this.wanted][0]);
  }

  // Fills in the display names and avatars shown beside usernames.
  fill() {
    for (const span of document.querySelectorAll(".display-name[data-user]")) {
      const p = this.known.get(span.dataset.user);
      const text = p ? p.display : "";
      if (span.textContent !== text) span.textContent = text;
    }
    for (const img of document.querySelectorAll("img.avatar[data-user]")) this.drawAvatar(img);
    this.sweep();
  }

  // Shows the avatar of the user an <img class="avatar" data-user> is for
  // (hidden while there is none, or it has not come yet).
  drawAvatar(img) {
    const p = this.known.get(img.dataset.user);
    const id = p ? p.avatar : "";
    const got = id ? this.avatarUrl(id) : null;
    if (got === null) {
      img.hidden = true;
      img.removeAttribute("src");
    } else if (img.src !== got) {
      img.src = got;
      img.hidden = false;
    }
  }

  // The blob: URL of avatar `id` (null while it comes: fill() runs again then).
  avatarUrl(id) {
    const kept = this.avatars.get(id);
    if (kept !== undefined) return kept.url;
    const entry = { url: null };
    this.avatars.set(id, entry);
    // (?avatar=1: the thumbnail, or the image itself when it is small enough to have none)
    this.files.blobUrl(id, "?avatar=1").then(
        (url) => {
          if (this.avatars.get(id) !== entry) {
            URL.revokeObjectURL(url); // (reset meanwhile)
            return;
          }
          entry.url = url;
          this.fill();
        },
        () => {}, // (not shown; asked again after a reset)
      );
    return null;
  }

  // Revokes the avatars' blob URLs no message shows any more.
  sweep() {
    const used = new Set();
    for (const img of document.querySelectorAll("img.avatar[data-user]")) {
      const p = this.known.get(img.dataset.user);
      if (p && p.avatar) used.add(p.avatar);
    }
    for (const [id, entry] of this.avatars) {
      if (used.has(id) || entry.url === null) continue;
      URL.revokeObjectURL(entry.url);
      this.avatars.delete(id);
    }
  }

  async loggedIn(user) {
    this.me = user.toLowerCase();
    $("profile-name").value = "";
    $("profile-error").textContent = "";
    try {
      const r = await this.api.call("GetProfiles", { usernames: [user] });
      const p = (r.profile || [])[0];
      const display = p ? p.display_name || "" : "";
      this.known.set(this.me, { display, avatar: p ? p.avatar_file_id || "" : "", at: Date.now() });
      $("profile-name").value = display;
    } catch (err) {
      // (the field stays empty; saving still works)
    }
  }

  // Uploads image `file` and makes it the avatar (the display name kept).
  async saveAvatar(file) {
    $("profile-error").textContent = "";
    $("profile-note").textContent = "";
    if (!file.type.startsWith("image/")) {
      $("profile-error").textContent = "An avatar is an image: choose a picture.";
      return;
    }
    const kept = this.known.get(this.me);
    const display = kept ? kept.display : "";
    $("avatar-btn").disabled = true;
    try {
      const ref = await this.files.upload(file, file.name);
      if (!isImage(ref)) throw new Error("that file is no image the node can read");
      await this.api.call("SetProfile", { display_name: display, avatar_file_id: ref.file_id });
      this.known.set(this.me, { display, avatar: ref.file_id, at: Date.now() });
      $("profile-note").textContent = "Avatar saved.";
    } catch (err) {
      $("profile-error").textContent = `Could not set the avatar: ${said(err)}`;
    } finally {
      $("avatar-btn").disabled = false;
    }
  }

  async save() {
    const display = $("profile-name").value.trim();
    $("profile-error").textContent = "";
    $("profile-note").textContent = "";
    const kept = this.known.get(this.me);
    const avatar = kept ? kept.avatar : "";
    try {
      await this.api.call("SetProfile", { display_name: display, avatar_file_id: avatar });
      $("profile-name").value = display;
      this.known.set(this.me, { display, avatar, at: Date.now() });
      this.fill();
      $("profile-note").textContent = display ? "Display name saved." : "Display name cleared.";
    } catch (err) {
      $("profile-error").textContent = said(err);
    }
  }

  reset() {
    for (const entry of this.avatars.values()) if (entry.url !== null) URL.revokeObjectURL(entry.url);
    this.avatars.clear();
    this.known.clear();
    this.wanted.clear();
    clearTimeout(this.timer);
    this.timer = null;
    this.me = null;
  }
}
