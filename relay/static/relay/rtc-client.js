/**
 * A browser client for the JSON datastore protocol (`/ws/datastores/<datastore>/`, see
 * docs/protocol.md). It keeps a Y.Doc equal to one datastore on the server and sends the
 * document's local changes back as transactions. Same design as the Python client
 * (client/rtc_client/):
 *
 * - `client.serial` is the highest serial applied, without gaps: transactions that arrive ahead
 *   of it are buffered and the missing serials are fetched with `transaction-request`.
 * - Every local change (a Y.Doc update the client did not apply itself) becomes a transaction
 *   with the id `${storeId}-${n}`, kept in `client.pending` until the server acknowledges it.
 * - A dropped connection is re-established with capped exponential backoff and resumed with
 *   `history-request {since: serial}`; every unacknowledged transaction is then sent again with
 *   the same id (the server stores an id once, so re-sending is idempotent).
 * - A refused change cannot be taken out of a CRDT document, so the client rebuilds its document
 *   from the server: a new Y.Doc (`client.doc`) from `history-request`, with the changes still
 *   awaiting an answer applied again; then it dispatches "rejected".
 * - Nothing is persisted: unacknowledged changes live as long as the page.
 *
 * Rebinding after a rebuild: an app that holds shared types (`doc.getMap("items")`) or
 * observers must fetch and observe them again from the new `client.doc`. The simplest way is to
 * check `client.doc !== boundDoc` on "synced" and "rejected":
 *
 *     import { DatastoreClient, serverUrl } from "/static/relay/rtc-client.js";
 *     const client = new DatastoreClient(serverUrl(), "groceries");
 *     let bound = null;
 *     const rebind = () => { if (bound !== client.doc) { bound = client.doc; render(bound); } };
 *     client.addEventListener("synced", rebind);
 *     client.addEventListener("rejected", (event) => { rebind(); showError(event.detail); });
 *     client.connect();
 *
 * Events (CustomEvent; the data is in `event.detail`):
 * - "status": `{status, serial, pending, error}` whenever one of them changes. `status` is
 *   "idle", "connecting", "synced", "disconnected" (a reconnection is scheduled), "failed" (the
 *   server refused us for good: unauthenticated, forbidden or unknown-datastore; see `error`)
 *   or "closed".
 * - "synced": `{serial, rebuilt}` after each join, resume or rebuild, once the document holds
 *   everything the server had when it answered.
 * - "rejected": `{transactionId, code, reason}` for each refused local transaction, after the
 *   document was rebuilt without it.
 * - "stable": `{serial}`: history up to this serial is held by every connected client.
 *
 * The page must be served by the RTC server itself when it uses the session cookie (the server
 * accepts cookie sessions from its own origin only); other pages pass `{token}`.
 */

import * as Y from "./vendor/yjs.mjs";

/** The Yjs module this client uses: import Y from here so that the page and the client share
 * one copy of Yjs (two copies cannot exchange shared types). */
export { Y };

/** Close codes after which reconnecting cannot help. */
const PERMANENT_CLOSE_CODES = { 4401: "unauthenticated", 4403: "forbidden", 4404: "unknown-datastore" };

/** The server answers at most this many transactions per `transaction-request`. */
const MAX_REQUEST_TRANSACTIONS = 1000;

/** The origin of the updates the client applies itself: these are not local changes. */
const REMOTE = Symbol("rtc-remote");

/**
 * The WebSocket base URL of the server that served this page: `ws(s)://host[:port]`.
 * @param {Location} [loc]
 * @returns {string}
 */
export function serverUrl(loc = window.location) {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}`;
}

/**
 * Base64 of a Yjs update, as `patch` fields carry it.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function encodePatch(bytes) {
  let binary = "";
  for (let start = 0; start < bytes.length; start += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(start, start + 0x8000));
  }
  return btoa(binary);
}

/**
 * @param {string} text base64
 * @returns {Uint8Array}
 */
export function decodePatch(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** An `error-reply` from the server, as an Error. */
export class RTCError extends Error {
  /** @param {{code?: string, reason?: string}} content */
  constructor(content) {
    super(content.reason ? `${content.code}: ${content.reason}` : String(content.code));
    this.code = content.code || "error";
    this.reason = content.reason || "";
    this.content = content;
  }
}

/** What belongs to one WebSocket connection; discarded when it closes. */
class Connection {
  /** @param {WebSocket} ws */
  constructor(ws) {
    this.ws = ws;
    /** @type {Map<string, {resolve: Function, reject: Function}>} requests awaiting a reply */
    this.waiters = new Map();
    /** Ids of transactions sent on this connection (a new connection sends all pending again). */
    this.sent = new Set();
    /** Ids refused for `missing-dependencies` while earlier ones of ours were unanswered. */
    this.deferred = new Set();
    /** Serials requested with `transaction-request` and not answered yet. */
    this.fetching = new Set();
    this.joining = false;
    this.joined = false; // the first history-reply arrived: transactions may be sent
    this.synced = false;
    this.rebuilt = false;
    this.target = 0; // the serial of the last history-reply
    this.error = null; // the last error-reply that answered nothing (the reason for a close)
    this.closed = false;
    this.timer = null;
    this.heartbeat = null;
  }
}

/** Keeps `client.doc` in sync with one datastore of an RTC server. */
export class DatastoreClient extends EventTarget {
  /**
   * @param {string} url The server's WebSocket base URL, `ws(s)://host:port` (see serverUrl()).
   * @param {string} datastore The datastore's name (it must exist).
   * @param {object} [options]
   * @param {string} [options.token] An API token (`?token=`); without it the session cookie is used.
   * @param {Y.Doc} [options.doc] The document to keep in sync (a new one if omitted); what it
   *   already holds is sent to the server as one transaction.
   * @param {string} [options.storeId] Prefix of this client's transaction ids (random if omitted).
   * @param {{initial?: number, factor?: number, maximum?: number, jitter?: number}} [options.backoff]
   *   Delays between reconnection attempts, in ms: initial, times factor, capped at maximum,
   *   each stretched by a random fraction in [0, jitter).
   * @param {number} [options.connectTimeout] ms for the handshake and each join.
   * @param {number} [options.requestTimeout] ms for a request's reply.
   * @param {number} [options.heartbeatInterval] ms between `serial-request`s that check a quiet
   *   connection is alive and catch up with changes nobody announced (0: none).
   * @param {number} [options.reportInterval] ms between `serial-update` reports (0: none).
   * @param {number} [options.maxBatch] Most transactions in one message.
   * @param {number} [options.maxBatchBytes] About the largest message sent (one large
   *   transaction still goes out, alone).
   * @param {number} [options.rateLimitPause] ms to wait before sending again after `rate-limited`.
   */
  constructor(url, datastore, options = {}) {
    super();
    this.url = url;
    this.datastore = datastore;
    this.token = options.token || null;
    this.storeId = options.storeId || randomId();
    this.backoff = { initial: 250, factor: 2, maximum: 5000, jitter: 0.2, ...options.backoff };
    this.connectTimeout = options.connectTimeout ?? 10000;
    this.requestTimeout = options.requestTimeout ?? 30000;
    this.heartbeatInterval = options.heartbeatInterval ?? 20000;
    this.reportInterval = options.reportInterval ?? 1000;
    this.maxBatch = options.maxBatch ?? 100;
    this.maxBatchBytes = options.maxBatchBytes ?? 1_000_000;
    this.rateLimitPause = options.rateLimitPause ?? 1000;

    /** Highest serial applied to `doc`; every serial up to it is applied. */
    this.serial = 0;
    /** The latest stable serial the server announced (null: none yet). */
    this.stableSerial = null;
    /** @type {Map<string, {id: string, storeId: string, patch: string}>} local transactions
     * not acknowledged yet, by id, in the order they were made */
    this.pending = new Map();
    /** @type {Array<{transactionId: string, code: string, reason: string}>} */
    this.rejections = [];
    /** @type {"idle"|"connecting"|"synced"|"disconnected"|"failed"|"closed"} */
    this.status = "idle";
    /** @type {{code: string, reason: string}|null} why the client failed, when it did */
    this.error = null;
    /** How many times a connection was opened (1 + reconnections). */
    this.connections = 0;

    this._counter = 0;
    this._msgCounter = 0;
    /** @type {Map<number, {patch: Uint8Array, applied: boolean}>} serials above `serial` */
    this._ahead = new Map();
    this._paused = false; // a join is in progress: buffer, do not apply
    this._joined = false; // we have state: resume with `since`
    this._reloadNeeded = false;
    this._unannounced = [];
    this._attempt = 0;
    this._retryTimer = null;
    this._reportTimer = null;
    this._reported = null;
    this._flushQueued = false;
    this._started = false;
    this._closed = false;
    /** @type {Connection|null} */
    this._conn = null;
    this._lastStatus = "";
    this._onUpdate = (update, origin) => {
      if (origin !== REMOTE && !this._closed) this._queueLocal(update);
    };
    this._doc = options.doc || new Y.Doc();
    this._doc.on("update", this._onUpdate);
    if (this._doc.store.clients.size > 0) this._queueLocal(Y.encodeStateAsUpdate(this._doc));
  }

  /** The document; replaced by a new one when a change is refused (see "rejected"). */
  get doc() {
    return this._doc;
  }

  /** Start connecting (and reconnecting, until close()). Returns the client. */
  connect() {
    if (!this._started && !this._closed) {
      this._started = true;
      this._open();
    }
    return this;
  }

  /** Close the connection and stop for good. Unacknowledged changes are dropped. */
  close() {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._retryTimer);
    clearTimeout(this._reportTimer);
    if (this._conn) this._drop(this._conn, null);
    this._doc.off("update", this._onUpdate);
    this._setStatus("closed");
  }

  /**
   * Send a request once synced and resolve with its reply's content (e.g. "undo-request",
   * "permissions-request"). Rejects with RTCError for an error-reply, or an Error if not
   * connected or no reply came in time.
   * @param {string} msgType
   * @param {object} [content]
   * @returns {Promise<object>}
   */
  request(msgType, content = {}) {
    const conn = this._conn;
    if (!conn || !conn.synced) return Promise.reject(new Error("not connected"));
    return this._request(conn, msgType, content, this.requestTimeout);
  }

  // --- Connection lifecycle ------------------------------------------------------------------

  _socketUrl() {
    let url = `${this.url.replace(/\/+$/, "")}/ws/datastores/${encodeURIComponent(this.datastore)}/`;
    if (this.token) url += `?token=${encodeURIComponent(this.token)}`;
    return url;
  }

  _open() {
    this._retryTimer = null;
    if (this._closed) return;
    this._setStatus("connecting");
    let ws;
    try {
      ws = new WebSocket(this._socketUrl());
    } catch (error) {
      console.warn("rtc-client: cannot open a WebSocket", error);
      this._retry();
      return;
    }
    const conn = new Connection(ws);
    this._conn = conn;
    conn.timer = setTimeout(() => this._drop(conn, "no sync within the connect timeout"),
      this.connectTimeout);
    ws.onopen = () => {
      this.connections += 1;
      this._startJoin(conn);
    };
    ws.onmessage = (event) => this._onMessage(conn, event.data);
    ws.onclose = (event) => this._ended(conn, event.code, event.reason);
  }

  /** End a connection now, without waiting for the socket's close (it may never come). */
  _drop(conn, why) {
    if (conn.closed) return;
    if (why) console.info(`rtc-client: dropping the connection to ${this.datastore}: ${why}`);
    try {
      conn.ws.close(1000);
    } catch {
      // already closing
    }
    this._ended(conn, null, "");
  }

  _ended(conn, code, reason) {
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.timer);
    clearInterval(conn.heartbeat);
    for (const waiter of conn.waiters.values()) waiter.reject(new Error("the connection closed"));
    conn.waiters.clear();
    if (this._conn === conn) this._conn = null;
    this._paused = false;
    if (this._closed) return;
    if (code in PERMANENT_CLOSE_CODES) {
      this.error = { code: PERMANENT_CLOSE_CODES[code], reason: conn.error?.reason || reason || "" };
      this._setStatus("failed");
      return;
    }
    if (conn.synced) this._attempt = 0;
    this._retry();
  }

  _retry() {
    const { initial, factor, maximum, jitter } = this.backoff;
    const delay = Math.min(initial * factor ** this._attempt, maximum) * (1 + jitter * Math.random());
    this._attempt += 1;
    this._retryTimer = setTimeout(() => this._open(), delay);
    this._setStatus("disconnected");
  }

  // --- Joining, resuming, rebuilding ---------------------------------------------------------

  _startJoin(conn) {
    if (conn.joining || conn.closed) return;
    conn.joining = true;
    this._join(conn).catch((error) => this._drop(conn, `join failed: ${error.message}`));
  }

  /**
   * Bring the document up to the server's serial. First join: everything (`history-request`
   * without `since`). Resume: what came after `serial`. Rebuild (after a refused change): a new
   * Y.Doc from the server's state, plus our changes still awaiting an answer.
   */
  async _join(conn) {
    const reload = this._reloadNeeded;
    this._reloadNeeded = false;
    conn.synced = false;
    this._paused = true; // pushes arriving meanwhile are buffered, applied after the reply
    let reply;
    try {
      const request = this._joined && !reload ? { since: this.serial } : {};
      reply = await this._request(conn, "history-request", request, this.connectTimeout);
      if (reload) {
        this._replaceDoc(new Y.Doc());
        this.serial = 0;
        for (const entry of this._ahead.values()) entry.applied = false;
      }
      if (reply.state) {
        this._applyRemote(decodePatch(reply.state));
        this.serial = Math.max(this.serial, reply.checkpointSerial || 0);
      }
      if (reload) {
        for (const tx of this.pending.values()) this._applyRemote(decodePatch(tx.patch));
      }
      for (const tx of reply.transactions || []) this._receive(tx);
    } catch (error) {
      this._reloadNeeded ||= reload;
      throw error;
    } finally {
      this._paused = false;
    }
    this._joined = true;
    conn.joined = true;
    conn.rebuilt = reload;
    conn.target = reply.serial || 0;
    this._advance(conn, conn.target); // marks the connection synced once it reaches the target
  }

  _synced(conn) {
    conn.synced = true;
    conn.joining = false;
    clearTimeout(conn.timer);
    if (!conn.heartbeat && this.heartbeatInterval > 0) {
      conn.heartbeat = setInterval(() => this._beat(conn), this.heartbeatInterval);
    }
    this._setStatus("synced");
    this._emit("synced", { serial: this.serial, rebuilt: conn.rebuilt });
    for (const rejection of this._unannounced.splice(0)) this._emit("rejected", rejection);
    this._reported = null; // a new connection has not heard our serial
    this._scheduleReport();
    this._scheduleFlush();
    if (this._reloadNeeded) this._startJoin(conn); // refused again while rebuilding
  }

  _replaceDoc(doc) {
    this._doc.off("update", this._onUpdate);
    this._doc = doc;
    doc.on("update", this._onUpdate);
  }

  /** Ask for the server's serial: a dead connection is dropped, a missed change fetched. */
  _beat(conn) {
    this._request(conn, "serial-request", {}, Math.min(this.requestTimeout, this.heartbeatInterval))
      .then((reply) => {
        if (Number.isInteger(reply.serial) && reply.serial > this.serial) {
          this._advance(conn, reply.serial);
        }
      })
      .catch((error) => this._drop(conn, `heartbeat: ${error.message}`));
  }

  // --- Messages ------------------------------------------------------------------------------

  _nextMsgId() {
    this._msgCounter += 1;
    return `c-${this._msgCounter}`;
  }

  _send(conn, msgType, content, msgId = this._nextMsgId()) {
    if (conn.closed || conn.ws.readyState !== WebSocket.OPEN) return false;
    conn.ws.send(JSON.stringify({ msgId, msgType, content }));
    return true;
  }

  /** Send a request on this connection; resolves with the reply's content. */
  _request(conn, msgType, content, timeout) {
    return new Promise((resolve, reject) => {
      const msgId = this._nextMsgId();
      const timer = setTimeout(() => {
        conn.waiters.delete(msgId);
        reject(new Error(`no ${msgType} reply within ${timeout} ms`));
      }, timeout);
      conn.waiters.set(msgId, {
        resolve: (message) => {
          clearTimeout(timer);
          if (message.msgType === "error-reply") reject(new RTCError(message.content));
          else resolve(message.content);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      if (!this._send(conn, msgType, content, msgId)) {
        conn.waiters.get(msgId).reject(new Error("the connection is closed"));
        conn.waiters.delete(msgId);
      }
    });
  }

  _onMessage(conn, data) {
    if (conn.closed) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("rtc-client: ignoring a frame that is not JSON");
      return;
    }
    if (!message || typeof message.msgType !== "string") return;
    const content = message.content && typeof message.content === "object" ? message.content : {};
    message.content = content;
    const parent = message.parentId;
    switch (message.msgType) {
      case "transaction-broadcast":
        for (const tx of content.transactions || []) this._receive(tx);
        this._advance(conn);
        return;
      case "transaction-ack":
        this._acknowledged(conn, content);
        return;
      case "error-reply":
        this._error(conn, message);
        return;
      case "state-stable":
        if (Number.isInteger(content.serial)) {
          this.stableSerial = content.serial;
          this._emit("stable", { serial: content.serial });
        }
        return;
      default:
        if (conn.waiters.has(parent)) {
          const waiter = conn.waiters.get(parent);
          conn.waiters.delete(parent);
          waiter.resolve(message);
        }
    }
  }

  /** Buffer a stored transaction; `_advance` applies it once its predecessors are in. */
  _receive(tx) {
    const serial = tx && tx.serial;
    if (!Number.isInteger(serial) || serial <= this.serial || this._ahead.has(serial)) return;
    this._ahead.set(serial, { patch: decodePatch(tx.patch), applied: false });
  }

  _acknowledged(conn, content) {
    const ids = content.transactionIds || [];
    const serials = content.serials || [];
    ids.forEach((id, index) => {
      const tx = this.pending.get(id);
      if (!tx) return;
      this.pending.delete(id);
      const serial = serials[index];
      if (Number.isInteger(serial) && serial > this.serial && !this._ahead.has(serial)) {
        this._ahead.set(serial, { patch: decodePatch(tx.patch), applied: true });
      }
    });
    this._answered(conn);
    this._advance(conn);
  }

  /** An error-reply: a refused transaction, a failed request, or a complaint. */
  _error(conn, message) {
    const content = message.content;
    const refused = [];
    if (typeof content.transactionId === "string") refused.push(content.transactionId);
    if (Array.isArray(content.transactionIds)) {
      refused.push(...content.transactionIds.filter((id) => typeof id === "string"));
    }
    if (refused.length > 0) {
      this._refused(conn, refused, content);
      return;
    }
    if (conn.waiters.has(message.parentId)) {
      const waiter = conn.waiters.get(message.parentId);
      conn.waiters.delete(message.parentId);
      waiter.resolve(message);
      return;
    }
    conn.error = content;
    console.warn(`rtc-client: error from the server: ${content.code}: ${content.reason}`);
    if (content.code === "rate-limited") {
      // A message was dropped without saying which: after a pause, send every unanswered
      // transaction again (their ids make that safe).
      setTimeout(() => {
        conn.sent.clear();
        this._scheduleFlush();
      }, this.rateLimitPause);
    }
  }

  /**
   * Rebuild the document without our refused transactions. Except for `missing-dependencies`
   * while an earlier transaction of ours is unanswered: the server lacks that one, so this one
   * is sent again once the earlier ones are answered.
   */
  _refused(conn, ids, content) {
    for (const id of ids) {
      if (content.code === "missing-dependencies" && this._hasEarlierPending(id)) {
        conn.sent.delete(id);
        conn.deferred.add(id);
        continue;
      }
      if (!this.pending.has(id)) continue;
      this.pending.delete(id);
      const rejection = { transactionId: id, code: content.code, reason: content.reason || "" };
      console.warn(`rtc-client: transaction ${id} refused: ${rejection.code}: ${rejection.reason}`);
      this.rejections.push(rejection);
      this._unannounced.push(rejection);
      this._reloadNeeded = true;
    }
    if (this._reloadNeeded) {
      this._answered(conn);
      this._startJoin(conn);
    }
    this._setStatus();
  }

  _hasEarlierPending(id) {
    return this.pending.has(id) && this.pending.keys().next().value !== id;
  }

  /** Some of our transactions were answered: deferred ones may go out again. */
  _answered(conn) {
    if (conn.deferred.size > 0) {
      conn.deferred.clear();
      this._scheduleFlush();
    }
  }

  /** Apply buffered transactions in serial order; fetch the serials of any gap up to `upto`. */
  _advance(conn, upto = 0) {
    if (this._paused) return;
    for (const serial of this._ahead.keys()) {
      if (serial <= this.serial) this._ahead.delete(serial);
    }
    let entry;
    while ((entry = this._ahead.get(this.serial + 1))) {
      this._ahead.delete(this.serial + 1);
      if (!entry.applied) this._applyRemote(entry.patch);
      this.serial += 1;
    }
    let last = upto;
    for (const serial of this._ahead.keys()) last = Math.max(last, serial);
    const gap = [];
    for (let serial = this.serial + 1; serial <= last; serial++) {
      if (!this._ahead.has(serial) && !conn.fetching.has(serial)) gap.push(serial);
    }
    if (gap.length > 0 && !conn.closed) this._fillGap(conn, gap);
    if (conn.joined && !conn.synced && !conn.closed && this.serial >= conn.target) {
      this._synced(conn);
    }
    this._scheduleReport();
    this._setStatus();
  }

  async _fillGap(conn, serials) {
    for (const serial of serials) conn.fetching.add(serial);
    let pruned = 0;
    try {
      for (let start = 0; start < serials.length; start += MAX_REQUEST_TRANSACTIONS) {
        const chunk = serials.slice(start, start + MAX_REQUEST_TRANSACTIONS);
        const reply = await this._request(conn, "transaction-request", { serials: chunk },
          this.requestTimeout);
        for (const tx of reply.transactions || []) this._receive(tx);
        pruned = Math.max(pruned, reply.historyStart || 0);
      }
    } catch (error) {
      this._drop(conn, `filling a gap: ${error.message}`);
      return;
    } finally {
      for (const serial of serials) conn.fetching.delete(serial);
    }
    if (pruned > this.serial) {
      // What we miss was pruned from the server's history: resume from its checkpoint.
      this._startJoin(conn);
      return;
    }
    this._advance(conn);
  }

  _applyRemote(update) {
    Y.applyUpdate(this._doc, update, REMOTE);
  }

  // --- Local changes, reports ----------------------------------------------------------------

  _queueLocal(update) {
    this._counter += 1;
    const id = `${this.storeId}-${this._counter}`;
    this.pending.set(id, { id, storeId: this.storeId, patch: encodePatch(update) });
    this._scheduleFlush();
    this._setStatus();
  }

  /** Send pending transactions at the end of the current task (one message for a burst). */
  _scheduleFlush() {
    if (this._flushQueued) return;
    this._flushQueued = true;
    queueMicrotask(() => {
      this._flushQueued = false;
      this._flush();
    });
  }

  _flush() {
    const conn = this._conn;
    if (!conn || !conn.joined || conn.closed) return;
    let batch = [];
    let size = 0;
    const sendBatch = () => {
      if (batch.length === 0) return;
      for (const tx of batch) conn.sent.add(tx.id);
      this._send(conn, "transaction-broadcast", { transactions: batch });
      batch = [];
      size = 0;
    };
    for (const tx of this.pending.values()) {
      if (conn.sent.has(tx.id) || conn.deferred.has(tx.id)) continue;
      const cost = tx.patch.length + 100;
      if (batch.length >= this.maxBatch || (batch.length > 0 && size + cost > this.maxBatchBytes)) {
        sendBatch();
      }
      batch.push(tx);
      size += cost;
    }
    sendBatch();
  }

  /** Tell the server our serial now and then (`serial-update`), for the stable serial. */
  _scheduleReport() {
    if (this._reportTimer || this.reportInterval <= 0) return;
    this._reportTimer = setTimeout(() => {
      this._reportTimer = null;
      const conn = this._conn;
      if (conn && conn.synced && this._reported !== this.serial) {
        this._reported = this.serial;
        this._send(conn, "serial-update", { serial: this.serial });
      }
    }, this.reportInterval);
  }

  // --- Events --------------------------------------------------------------------------------

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _setStatus(status = this.status) {
    this.status = status;
    const key = `${status} ${this.serial} ${this.pending.size}`;
    if (key === this._lastStatus) return;
    this._lastStatus = key;
    this._emit("status", {
      status,
      serial: this.serial,
      pending: this.pending.size,
      error: this.error,
    });
  }
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
