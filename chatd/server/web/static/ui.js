// Drawing the page from the state: lists and members (a message:
// message.js). No markup from strings: every user-supplied text goes in
// through textContent.

export const $ = (id) => document.getElementById(id);

const timeFormat = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "short",
});

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "className") node.className = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "type") {
      node.setAttribute(k, String(v));
    } else node[k] = v;
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

export function formatTime(stamp) {
  const d = new Date(stamp);
  return Number.isNaN(d.getTime()) ? "" : timeFormat.format(d);
}

function badge(count, what) {
  if (!count) return null;
  return el("span", { className: "badge", text: String(count), "aria-label": `${count} unread ${what}` });
}

// The people list: presence and unread counts; `open(kind, name)` on click.
export function renderPeople(state, open) {
  const ul = $("people");
  const me = (state.user || "").toLowerCase();
  const items = [];
  for (const u of state.users) {
    if (u.username.toLowerCase() === me) continue;
    const key = `user:${u.username.toLowerCase()}`;
    const online = u.status === "online";
    const unread = state.unread.get(u.username.toLowerCase()) || 0;
    const label = `${u.username}, ${online ? "online" : "offline"}${unread ? `, ${unread} unread` : ""}`;
    items.push(
      entry(state, key, label, () => open("user", u.username), [
        el("span", { className: `dot ${online ? "on" : "off"}`, "aria-hidden": "true" }),
        el("span", { className: "name", text: u.username }),
        el("span", { className: "presence", text: online ? "online" : "offline" }),
        badge(unread, "messages"),
      ]),
    );
  }
  if (items.length === 0) items.push(el("li", { className: "empty", text: "No one else yet." }));
  ul.replaceChildren(...items);
}

// One entry of a list: a button that opens conversation `key`, in a <li>.
function entry(state, key, label, onClick, children) {
  const btn = el(
    "button",
    {
      type: "button",
      className: "entry",
      "data-conv": key,
      "aria-current": state.current === key ? "true" : null,
      "aria-label": label,
    },
    ...children,
  );
  btn.addEventListener("click", onClick);
  return el("li", {}, btn);
}

// The rooms list: joined rooms open on click; invitations offer Join/Decline.
export function renderRooms(state, open, join, decline) {
  const ul = $("rooms");
  const items = [];
  for (const r of state.rooms) {
    const key = `room:${r.name.toLowerCase()}`;
    if (!r.joined) {
      const yes = el("button", { type: "button", className: "small", text: "Join", "aria-label": `Join ${r.name}` });
      const no = el("button", {
        type: "button",
        className: "small secondary",
        text: "Decline",
        "aria-label": `Decline the invitation to ${r.name}`,
      });
      yes.addEventListener("click", () => join(r.name));
      no.addEventListener("click", () => decline(r.name));
      const line = el("div", { className: "invite" }, el("span", { className: "name", text: `#${r.name}` }));
      line.append(el("span", { className: "presence", text: "invited" }), yes, no);
      items.push(el("li", { "data-invite": r.name }, line));
      continue;
    }
    const label = `room ${r.name}, ${r.members} members${r.unread ? `, ${r.unread} unread` : ""}`;
    items.push(
      entry(state, key, label, () => open("room", r.name), [
        el("span", { className: "name", text: `#${r.name}` }),
        el("span", { className: "presence", text: `${r.members} ${r.members === 1 ? "member" : "members"}` }),
        badge(r.unread, "messages"),
      ]),
    );
  }
  if (items.length === 0) items.push(el("li", { className: "empty", text: "No rooms yet." }));
  ul.replaceChildren(...items);
}

export function renderMembers(members, canManage, isCreator, me, act) {
  const ul = $("members");
  const items = members.map((mb) => {
    const bits = [mb.online ? "online" : "offline"];
    if (!mb.joined) bits.push("invited");
    if (mb.admin) bits.push("admin");
    const li = el(
      "li",
      { className: "member", "data-member": mb.username },
      el("span", { className: `dot ${mb.online ? "on" : "off"}`, "aria-hidden": "true" }),
      el("span", { className: "name", text: mb.username }),
      el("span", { className: "presence", text: bits.join(", ") }),
    );
    if (mb.username.toLowerCase() !== me) {
      if (canManage) {
        const rm = el("button", { type: "button", className: "small secondary", text: "Remove", "aria-label": `Remove ${mb.username}` });
        rm.addEventListener("click", () => act("remove", mb.username));
        li.append(rm);
      }
      if (isCreator && mb.joined && !mb.admin) {
        const ad = el("button", { type: "button", className: "small secondary", text: "Make admin", "aria-label": `Make ${mb.username} an admin` });
        ad.addEventListener("click", () => act("admin", mb.username));
        li.append(ad);
      }
    }
    return li;
  });
  ul.replaceChildren(...items);
}
