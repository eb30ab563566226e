// Unary calls with the session, and what the API's error codes mean to a person.

const MEANING = {
  2: "invalid arguments",
  3: "invalid username (letters, digits, _ . - and at most 32 characters)",
  4: "invalid password (8 to 1024 characters)",
  5: "invalid message (1 to 4096 characters)",
  8: "that username is taken",
  9: "no such user",
  10: "wrong username or password",
  14: "not logged in",
  15: "no such receiver",
  17: "no messages",
  18: "the server is changing masters; try again",
  20: "no such room",
  21: "that room name is taken",
  22: "not a member of that room",
  23: "only a room's admins may do that",
  24: "invalid room name or topic",
  25: "over a room limit",
  26: "this account is disabled",
  30: "no such file",
  31: "that file is too large",
  32: "that file could not be read (an image that is not whole?)",
  33: "invalid display name",
};

export class ApiError extends Error {
  constructor(code, message) {
    super(message || MEANING[code] || `error ${code}`);
    this.code = code;
  }
}

export function explain(err) {
  if (err instanceof ApiError) return MEANING[err.code] || err.message;
  if (err && err.details) return err.details;
  return String(err && err.message ? err.message : err);
}

// An error in the server's own words (its message says which rule refused).
export function said(err) {
  return err instanceof ApiError ? err.message : explain(err);
}

export function describe(code, message) {
  return MEANING[code] || message || (code ? `error ${code}` : "refused");
}

export class Api {
  constructor(net) {
    this.net = net;
    this.session = null;
  }

  // A call whose response carries error_code: throws ApiError unless 0.
  async call(name, request = {}, { withSession = true } = {}) {
    const req = withSession && this.session ? { session_id: this.session, ...request } : request;
    const response = await this.net.call(name, req);
    const code = response.error_code || 0;
    if (code !== 0) throw new ApiError(code, response.error_message);
    return response;
  }

  listUsers() {
    return this.call("ListUsers", {}, { withSession: false }).then((r) => r.user || []);
  }

  async messages(name, request) {
    try {
      const r = await this.call(name, request);
      return r.message || [];
    } catch (err) {
      if (err instanceof ApiError && err.code === 17) return [];
      throw err;
    }
  }
}

// A request id for a send: random, the same for every resend of it.
export function requestId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const KINDS = ["MESSAGE", "EDIT", "DELETE", "REACT", "UNREACT"];

// A message's file as the page keeps it (the JSON writes an int64 as a string).
export function fileRef(f) {
  if (!f || !f.file_id) return null;
  return {
    file_id: f.file_id,
    name: f.name || "file",
    content_type: f.content_type || "application/octet-stream",
    size: Number(f.size || 0),
    has_thumbnail: Boolean(f.has_thumbnail),
  };
}

// A message or an event as the page keeps it (the JSON mapping names the
// sender from_, and an enum by its name).
export function normal(m) {
  const kind = typeof m.kind === "number" ? KINDS[m.kind] || "MESSAGE" : m.kind || "MESSAGE";
  return {
    from: m.from !== undefined ? m.from : m.from_ || "",
    to: m.to || "",
    room: m.room || "",
    message: m.message || "",
    message_id: Number(m.message_id || 0),
    time_stamp: m.time_stamp || "",
    state: "sent",
    kind,
    target_id: Number(m.target_id || 0),
    reply_to: Number(m.reply_to || 0),
    edited: Boolean(m.edited),
    deleted: Boolean(m.deleted),
    reactions: (m.reactions || []).map((r) => ({ emoji: r.emoji, users: [...(r.users || [])] })),
    file: fileRef(m.file),
  };
}
