// The page's one connection to the cluster: a WebSocket to one node's web
// listener (docs/web.md), unary calls, the session's Connect stream and
// its sends, and failover to the next web origin of the last hello.

const RETRY_FIRST_MS = 100; // reconnect backoff: 0.1 s doubling to 2 s
const RETRY_MAX_MS = 2000;
const STREAM_FIRST_MS = 200; // re-open after an `end`: 0.2 s doubling to 2 s
const ANSWER_TIMEOUT_MS = 10000; // a node that answers nothing this long is lost (its hello's)
const SLOW_MS = 3000; // (or half the answer timeout, when shorter)
const CALL_GIVE_UP_MS = 30000; // a unary call refused for this long fails
const ACK_DELAY_MS = 200;

export function wsUrl(origin) {
  const u = new URL(origin);
  return `${u.protocol === "https:" ? "wss:" : "ws:"}//${u.host}/ws`;
}

export class CallError extends Error {
  constructor(code, details, metadata) {
    super(`${code}: ${details}`);
    this.code = code;
    this.details = details;
    this.metadata = metadata || {};
  }
}

export class Net extends EventTarget {
  constructor(origin) {
    super();
    this.origins = [origin];
    this.index = 0;
    this.origin = null; // the node the socket is connected to (after its hello)
    this.ws = null;
    this.nextId = 1;
    this.backoff = RETRY_FIRST_MS;
    this.calls = new Map(); // id -> {call, request, resolve, reject, since}
    this.sends = new Map(); // request_id -> {frame, resolve, written}
    this.session = null; // the Connect stream's session id, when logged in
    this.stream = null; // {id, open}
    this.streamBackoff = STREAM_FIRST_MS;
    this.slow = false; // the status says the node is slow to answer
    this.answerTimeoutMs = ANSWER_TIMEOUT_MS; // the node's --web-answer-timeout, from its hello
    this.lastId = 0; // highest delivery id the page showed
    this.acks = [];
    this.ackTimer = null;
    this.reconnectTimer = null;
    this.streamTimer = null;
    this.watchdog = setInterval(() => this._checkAnswers(), 1000);
  }

  start() {
    this._connect();
  }

  _status(text, state) {
    this.dispatchEvent(new CustomEvent("status", { detail: { text, state } }));
  }

  _connect() {
    this.reconnectTimer = null;
    const origin = this.origins[this.index % this.origins.length];
    let ws;
    try {
      ws = new WebSocket(wsUrl(origin));
    } catch (err) {
      this._lost(null, origin);
      return;
    }
    this.ws = ws;
    this.origin = null;
    ws.addEventListener("message", (ev) => this._onMessage(ws, origin, ev.data));
    ws.addEventListener("close", () => this._lost(ws, origin));
    ws.addEventListener("error", () => ws.close());
  }

  _lost(ws, origin) {
    if (ws !== this.ws && ws !== null) return;
    this.ws = null;
    this.origin = null;
    this.stream = null;
    clearTimeout(this.streamTimer);
    for (const s of this.sends.values()) s.written = false;
    for (const c of this.calls.values()) c.written = false;
    this.index = (this.index + 1) % this.origins.length;
    const next = this.origins[this.index];
    this._status(`Connection lost — reconnecting to ${next}`, "lost");
    this.dispatchEvent(new CustomEvent("node", { detail: { origin: "" } }));
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, RETRY_MAX_MS);
    if (this.reconnectTimer === null) {
      this.reconnectTimer = setTimeout(() => this._connect(), wait);
    }
  }

  _write(obj) {
    if (this.ws === null || this.origin === null) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  _onMessage(ws, origin, data) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (err) {
      return;
    }
    if (msg.hello) {
      this._hello(origin, msg.hello);
      return;
    }
    if (this.stream !== null && msg.id === this.stream.id) {
      this._streamMessage(msg);
      return;
    }
    const call = this.calls.get(msg.id);
    if (call === undefined) return;
    if (msg.response) {
      this.calls.delete(msg.id);
      call.resolve(msg.response);
    } else if (msg.error) {
      this._callError(msg.id, call, msg.error);
    }
  }

  _hello(origin, hello) {
    const web = Array.isArray(hello.web) ? hello.web.filter((o) => typeof o === "string") : [];
    // (this node's first; an origin no hello names any more stays last, in case)
    const list = [origin, ...web, ...this.origins];
    this.origins = [...new Set(list)];
    this.index = 0;
    const t = hello.answer_timeout_ms; // (absent from an older node's hello: the default)
    this.answerTimeoutMs = Number.isFinite(t) && t >= 1000 ? t : ANSWER_TIMEOUT_MS;
    if (this.origin === origin) return; // a later hello on this socket: the new list only
    this.origin = origin;
    this.backoff = RETRY_FIRST_MS;
    this._status(`Connected to ${origin}`, "connected");
    this.dispatchEvent(new CustomEvent("node", { detail: { origin, hello } }));
    for (const [id, call] of this.calls) this._writeCall(id, call);
    if (this.session !== null) this._openStream();
    // (a socket whose first message does not come soon is closed by the node)
    else if (this.calls.size === 0) this.call("ListUsers", {}).catch(() => {});
  }

  // A node that answers nothing for its answer timeout is left for the next
  // (a hung process keeps its socket open); after SLOW_MS (or half the
  // timeout, when shorter) the status says the page waits for it.
  _checkAnswers() {
    const now = Date.now();
    const slowMs = Math.min(SLOW_MS, this.answerTimeoutMs / 2);
    let oldest = 0;
    for (const c of this.calls.values()) if (c.written) oldest = Math.max(oldest, now - c.writtenAt);
    for (const s of this.sends.values()) if (s.written) oldest = Math.max(oldest, now - s.writtenAt);
    if (oldest > slowMs && !this.slow && this.origin !== null) {
      this.slow = true;
      this._status(`Waiting for ${this.origin} to answer…`, "waiting");
    } else if (oldest <= slowMs && this.slow) {
      this.slow = false;
      if (this.origin !== null) this._status(`Connected to ${this.origin}`, "connected");
    }
    if (oldest > this.answerTimeoutMs && this.ws !== null) {
      this.slow = false;
      const ws = this.ws;
      ws.close();
      this._lost(ws, this.origins[this.index]);
    }
  }

  // ---- unary calls ----

  call(name, request) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const call = { call: name, request, resolve, reject, since: Date.now(), written: false, attempt: 0 };
      this.calls.set(id, call);
      this._writeCall(id, call);
    });
  }

  _writeCall(id, call) {
    if (this._write({ id, call: call.call, request: call.request })) {
      call.written = true;
      call.writtenAt = Date.now();
    }
  }

  _callError(id, call, error) {
    const md = error.metadata || {};
    const retryable = error.code === "UNAVAILABLE" || md["chatd-refused"] === "1";
    if (retryable && Date.now() - call.since < CALL_GIVE_UP_MS) {
      call.written = false;
      const hinted = parseInt(md["chatd-retry-after-ms"] || "0", 10);
      const wait = hinted > 0 ? hinted : Math.min(STREAM_FIRST_MS * 2 ** call.attempt, RETRY_MAX_MS);
      call.attempt += 1;
      setTimeout(() => {
        if (this.calls.get(id) === call && !call.written) this._writeCall(id, call);
      }, wait);
      return;
    }
    this.calls.delete(id);
    call.reject(new CallError(error.code, error.details || "", md));
  }

  // ---- the session's stream ----

  openSession(sessionId) {
    this.session = sessionId;
    this.lastId = 0;
    if (this.origin !== null) this._openStream();
  }

  closeSession() {
    if (this.stream !== null) this._write({ id: this.stream.id, close: {} });
    this.stream = null;
    this.session = null;
    this.lastId = 0;
    for (const s of this.sends.values()) s.resolve({ error_code: -1, error_message: "logged out" });
    this.sends.clear();
    clearTimeout(this.streamTimer);
  }

  _openStream() {
    clearTimeout(this.streamTimer);
    const id = this.nextId++;
    this.stream = { id, open: false };
    const open = { session_id: this.session, events: true }; // (edits, reactions, typing, receipts too)
    if (this.lastId > 0) open.after_message_id = this.lastId;
    else open.live_only = true; // the unread ones come from GetMessages once open
    this._write({ id, connect: open });
  }

  _streamMessage(msg) {
    if (msg.opened) {
      this.stream.open = true;
      this.streamBackoff = STREAM_FIRST_MS;
      this.dispatchEvent(new CustomEvent("opened", { detail: { resumed: this.lastId > 0 } }));
      for (const [rid, s] of this.sends) this._writeSend(rid, s);
    } else if (msg.frame && msg.frame.message) {
      const m = msg.frame.message;
      const what = m.kind && m.kind !== "MESSAGE" ? "event" : "delivery";
      this.dispatchEvent(new CustomEvent(what, { detail: m }));
    } else if (msg.frame && msg.frame.result) {
      this._result(msg.frame.result);
    } else if (msg.frame && msg.frame.typing) {
      this.dispatchEvent(new CustomEvent("typing", { detail: msg.frame.typing }));
    } else if (msg.frame && msg.frame.receipt) {
      this.dispatchEvent(new CustomEvent("receipt", { detail: msg.frame.receipt }));
    } else if (msg.end || msg.error) {
      this._streamEnded(msg.end || msg.error);
    }
  }

  _streamEnded(end) {
    this.stream = null;
    for (const s of this.sends.values()) s.written = false;
    if (this.session === null) return; // (the page closed it; any other end: open it again)
    if (end.code === "UNAUTHENTICATED") {
      this.dispatchEvent(new CustomEvent("session-ended", { detail: end }));
      return;
    }
    const wait = this.streamBackoff;
    this.streamBackoff = Math.min(this.streamBackoff * 2, RETRY_MAX_MS);
    const origin = this.origin;
    this._status(`Connected to ${origin} — waiting for the cluster…`, "waiting");
    this.streamTimer = setTimeout(() => {
      if (this.origin === origin && this.session !== null && this.stream === null) {
        this._status(`Connected to ${origin}`, "connected");
        this._openStream();
      }
    }, wait);
  }

  // Called by the page once a delivery is on screen: resume after it, ack it.
  shown(messageId) {
    if (messageId > this.lastId) this.lastId = messageId;
    this.acks.push(messageId);
    if (this.ackTimer === null) {
      this.ackTimer = setTimeout(() => this._flushAcks(), ACK_DELAY_MS);
    }
  }

  // Called by the page once an event (no delivery to acknowledge) is applied.
  seen(messageId) {
    if (messageId > this.lastId) this.lastId = messageId;
  }

  _flushAcks() {
    this.ackTimer = null;
    if (this.acks.length === 0) return;
    if (this.stream === null || !this.stream.open) {
      this.ackTimer = setTimeout(() => this._flushAcks(), ACK_DELAY_MS * 5);
      return;
    }
    const ids = this.acks.splice(0, 1000);
    this._write({ id: this.stream.id, frame: { ack: { message_ids: ids } } });
    if (this.acks.length > 0) this.ackTimer = setTimeout(() => this._flushAcks(), ACK_DELAY_MS);
  }

  // A typing frame ({peer} or {room}): best effort, never answered; false
  // when no stream is open to carry it.
  typing(where) {
    if (this.stream === null || !this.stream.open) return false;
    return this._write({ id: this.stream.id, frame: { typing: where } });
  }

  // A send frame; resolves with its result (message_id, or error_code).
  send(requestId, frame) {
    return new Promise((resolve) => {
      const s = { frame: { request_id: requestId, ...frame }, resolve, written: false };
      this.sends.set(requestId, s);
      this._writeSend(requestId, s);
    });
  }

  _writeSend(requestId, s) {
    if (this.stream === null || !this.stream.open || s.written) return;
    if (this._write({ id: this.stream.id, frame: { send: s.frame } })) {
      s.written = true;
      s.writtenAt = Date.now();
    }
  }

  _result(result) {
    const s = this.sends.get(result.request_id);
    if (s === undefined) return;
    if (result.status === 14 || result.status === 8) {
      // not stored: the same request id again, here after a pause or on the next stream
      s.written = false;
      const wait = result.retry_after_ms > 0 ? result.retry_after_ms : STREAM_FIRST_MS;
      setTimeout(() => this._writeSend(result.request_id, s), wait);
      return;
    }
    this.sends.delete(result.request_id);
    s.resolve(result);
  }
}
