// Display names: the user's own (SetProfile, in Settings) and each
// sender's beside the username in a message (GetProfiles, asked in batches
// and kept for a while; a delivery carries none).

import { said } from "./api.js";
import { $ } from "./ui.js";

const KEEP_MS = 60000; // a profile read is shown this long before it is asked again
const BATCH_MS = 50;
const MAX_BATCH = 1000;

export class Profiles {
  constructor(api) {
    this.api = api;
    this.known = new Map(); // username (lower case) -> {display, avatar, at}
    this.wanted = new Set();
    this.timer = null;
    this.me = null;
    $("profile-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.save();
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

  // Fills in the display names shown beside usernames.
  fill() {
    for (const span of document.querySelectorAll(".display-name[data-user]")) {
      const p = this.known.get(span.dataset.user);
      const text = p ? p.display : "";
      if (span.textContent !== text) span.textContent = text;
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
    this.known.clear();
    this.wanted.clear();
    clearTimeout(this.timer);
    this.timer = null;
    this.me = null;
  }
}
