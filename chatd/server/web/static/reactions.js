// Reactions: the emoji a user may put on a message (chatd.contract's
// REACTIONS, in its order), a message's reactions with their counts, and
// the picker. Each is a toggle: pressed when it is the user's own.

import { sameName } from "./state.js";
import { el } from "./ui.js";

export const REACTIONS = [
  ["\u{1F44D}", "thumbs up"],
  ["\u2764\uFE0F", "heart"],
  ["\u{1F602}", "tears of joy"],
  ["\u{1F62E}", "surprised"],
  ["\u{1F622}", "crying"],
  ["\u{1F389}", "party"],
  ["\u{1F440}", "eyes"],
  ["\u2705", "check mark"],
];
const NAMES = new Map(REACTIONS);

export function reactionName(emoji) {
  return NAMES.get(emoji) || emoji;
}

function isMine(users, me) {
  return users.some((u) => sameName(u, me));
}

// "you, bob and cat" (the user's own name as "you", first).
function who(users, me) {
  const names = [...users.filter((u) => sameName(u, me)).map(() => "you"), ...users.filter((u) => !sameName(u, me))];
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

// A message's reactions: one toggle per emoji with its count, the names in
// its label and title (null: none).
export function reactionsRow(m, me, toggle) {
  if (m.reactions.length === 0) return null;
  const chips = m.reactions.map((r) => {
    const mine = isMine(r.users, me);
    const names = who(r.users, me);
    const chip = el(
      "button",
      {
        type: "button",
        className: "chip",
        "data-key": `chip-${r.emoji}`,
        "data-emoji": r.emoji,
        "aria-pressed": mine ? "true" : "false",
        "aria-label": `${reactionName(r.emoji)}: ${r.users.length}, from ${names}`,
        title: `${reactionName(r.emoji)}: ${names}`,
      },
      el("span", { className: "emoji", "aria-hidden": "true", text: r.emoji }),
      el("span", { className: "count", text: String(r.users.length) }),
    );
    chip.addEventListener("click", () => toggle(r.emoji, mine));
    return chip;
  });
  return el("div", { className: "reactions", role: "group", "aria-label": "Reactions" }, ...chips);
}

// The picker: every allowed emoji as a toggle; Escape closes it.
export function picker(m, me, toggle, close) {
  const buttons = REACTIONS.map(([emoji, name]) => {
    const r = m.reactions.find((x) => x.emoji === emoji);
    const mine = r !== undefined && isMine(r.users, me);
    const b = el("button", {
      type: "button",
      className: "pick",
      "data-key": `pick-${emoji}`,
      "data-emoji": emoji,
      "aria-pressed": mine ? "true" : "false",
      "aria-label": `React with ${name}`,
      title: name,
      text: emoji,
    });
    b.addEventListener("click", () => toggle(emoji, mine));
    return b;
  });
  const group = el("div", { className: "picker", role: "group", "aria-label": "Pick a reaction" }, ...buttons);
  group.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      ev.stopPropagation();
      close();
    }
  });
  return group;
}
