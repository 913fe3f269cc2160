// tidings.js: the browser client for tidings (https://… your tidings server /static/tidings.js).
//
// A dependency-free ES module. One `createTidings()` per page keeps a list of the user's
// notifications and their unread count in sync with the server. All tabs of a browser share ONE
// stream: the tab holding a Web Lock is the leader, opens the EventSource and relays what it
// receives to the other tabs over a BroadcastChannel; when it closes, the next tab waiting on the
// lock takes over at once. Everything else (REST calls, the list) is per tab.
//
// Nothing here touches browser globals at import time, so the pure helpers below run in Node.

const STREAM_EVENTS = [
  "new-notification",
  "notifications-read",
  "notification-deleted",
  "reset",
  "ping",
];

/** Jittered, capped exponential backoff ("equal jitter"): half fixed, half random. */
export function backoffDelay(attempt, { initial = 1000, max = 30000, random = Math.random } = {}) {
  const cap = Math.min(max, initial * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}

/** The `rel="next"` target of a Link header, or null. */
export function parseNextLink(header) {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!match) continue;
    for (const param of match[2].split(";")) {
      const rel = /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i.exec(param);
      if (rel && rel[1].toLowerCase().split(/\s+/).includes("next")) return match[1];
    }
  }
  return null;
}

/** The JSON object in an SSE `data:` payload, or null when it is not one (never throws). */
export function parseEventData(raw) {
  if (typeof raw !== "string" || raw === "") return null;
  try {
    const value = JSON.parse(raw);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** A notification as the server sends it: a positive integer id and a string message. */
export function isNotification(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    Number.isSafeInteger(value.id) &&
    value.id > 0 &&
    typeof value.message === "string"
  );
}

/** A link that is safe to put in an href: http(s) only, resolved against `base`. */
export function safeLink(link, base) {
  if (typeof link !== "string" || link === "") return null;
  try {
    const url = new URL(link, base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Notifications newest first, at most one per id. */
export class NotificationList {
  constructor(items = []) {
    this.items = [];
    this.ids = new Set();
    for (const n of items) this.add(n);
  }

  has(id) {
    return this.ids.has(id);
  }

  get(id) {
    return this.items.find((n) => n.id === id);
  }

  get newest() {
    return this.items.length ? this.items[0].id : 0;
  }

  get oldest() {
    return this.items.length ? this.items[this.items.length - 1].id : 0;
  }

  /** Insert in order; false when the id is already there (a duplicate is dropped). */
  add(n) {
    if (!isNotification(n) || this.ids.has(n.id)) return false;
    this.ids.add(n.id);
    let at = this.items.findIndex((m) => m.id < n.id);
    if (at < 0) at = this.items.length;
    this.items.splice(at, 0, { ...n });
    return true;
  }

  remove(id) {
    if (!this.ids.delete(id)) return null;
    const at = this.items.findIndex((n) => n.id === id);
    return this.items.splice(at, 1)[0];
  }

  /**
   * A fresh first page replaces what we had in its range: what is newer than the page (arrived
   * live since) stays, what is older (loaded with "load more") goes, what the page lacks was
   * deleted.
   */
  replacePage(page) {
    const fresh = page.filter(isNotification);
    const top = fresh.length ? Math.max(...fresh.map((n) => n.id)) : 0;
    const newer = this.items.filter((n) => n.id > top);
    this.items = [];
    this.ids = new Set();
    for (const n of [...newer, ...fresh]) this.add(n);
  }

  /** Mark read by `ids` or everything `upTo`; returns the ids that changed from unread. */
  markRead({ ids, upTo }, at) {
    const wanted = ids ? new Set(ids) : null;
    const changed = [];
    for (const n of this.items) {
      const hit = wanted ? wanted.has(n.id) : upTo !== undefined && upTo !== null && n.id <= upTo;
      if (hit && !n.read_at) {
        n.read_at = at;
        changed.push(n.id);
      }
    }
    return changed;
  }

  markUnread(ids) {
    const wanted = new Set(ids);
    for (const n of this.items) if (wanted.has(n.id)) n.read_at = null;
  }
}

/** The state of a client, as handed to subscribers (a new object on every change). */
function snapshot(c) {
  return Object.freeze({
    items: c._list.items.map((n) => ({ ...n })),
    unread: c._unread,
    status: c._status, // "loading" | "ready" | "error"
    error: c._error, // the last failure, a short string, or null
    connection: c._connection, // "connecting" | "open" | "reconnecting" | "offline" | "unauthorized" | "closed"
    role: c._role, // "leader" | "follower" | "solo" | "starting"
    hasMore: c._nextUrl !== null,
    loadingMore: c._loadingMore,
  });
}

class HttpError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
  }
}

const nowIso = () => new Date().toISOString();

class Tidings {
  constructor(options = {}) {
    const g = globalThis;
    const base = new URL(options.baseUrl || "/", g.location?.href ?? "http://localhost/");
    this._base = base.href.replace(/\/$/, "");
    const crossOrigin = g.location ? base.origin !== g.location.origin : false;
    this._opts = {
      pageSize: 10,
      heartbeat: 15,
      backoff: { initial: 1000, max: 30000 },
      share: true,
      withCredentials: crossOrigin,
      getToken: null,
      ...options,
    };
    this._fetch = options.fetch ?? g.fetch.bind(g);
    this._list = new NotificationList();
    this._unread = 0;
    this._countSeq = 0; // the newest seq the unread count already includes
    this._resume = 0; // where the stream resumes: everything up to here is in hand
    this._newestSeen = 0; // "mark all read" marks up to here
    this._status = "loading";
    this._error = null;
    this._connection = "connecting";
    this._role = "starting";
    this._nextUrl = null;
    this._loadingMore = false;
    this._listeners = new Set();
    this._closed = false;
    this._source = null;
    this._attempt = 0;
    this._authTries = 0;
    this._retryTimer = null;
    this._lastAlive = 0;
    this._lastPing = 0;
    this._pingInterval = null;
    this._needResync = false;
    this._refreshing = null;
    this._credential = null;
    this.state = snapshot(this);

    this._channelName = `tidings:${this._base}`;
    const canShare =
      this._opts.share && typeof g.BroadcastChannel === "function" && g.navigator?.locks?.request;
    if (canShare) {
      this._channel = new g.BroadcastChannel(this._channelName);
      this._channel.onmessage = (e) => this._onMessage(e.data);
    } else {
      this._channel = null;
    }
    this._onWindow = {
      online: () => this._wake("online"),
      offline: () => this._leaderSetConnection("offline"),
      visibilitychange: () => {
        if (g.document?.visibilityState === "visible") this._wake("visible");
      },
    };
    g.addEventListener?.("online", this._onWindow.online);
    g.addEventListener?.("offline", this._onWindow.offline);
    g.document?.addEventListener("visibilitychange", this._onWindow.visibilitychange);

    // A token the host page rendered in: exchanged for the session cookie before anything else.
    const start = this._opts.token ? this._session(this._opts.token) : Promise.resolve(true);
    this._loaded = start.then(() => this.refresh()).catch(() => {});
    if (canShare) this._elect();
    else {
      this._role = "solo";
      this._loaded.then(() => this._open());
    }
  }

  // --- public API ------------------------------------------------------------------------------

  /** Call `listener(state, change)` now and on every change; returns the unsubscribe function. */
  subscribe(listener) {
    this._listeners.add(listener);
    listener(this.state, { type: "state" });
    return () => this._listeners.delete(listener);
  }

  /** Reload the unread count and the first page (what the Refresh button does). */
  refresh() {
    if (this._refreshing) return this._refreshing;
    this._refreshing = (async () => {
      try {
        // The count first: a notification newer than it is then in the page or comes by stream.
        const count = await this._json("GET", "/notifications/unread-count");
        const response = await this._request("GET", `/notifications?limit=${this._opts.pageSize}`);
        const page = await response.json();
        this._list.replacePage(Array.isArray(page) ? page : []);
        this._nextUrl = parseNextLink(response.headers.get("link"));
        // Kept live arrivals newer than the count are not in it yet.
        const uncounted = this._list.items.filter((n) => n.id > count.last_seq);
        this._unread = count.unread + uncounted.filter((n) => !n.read_at).length;
        this._countSeq = Math.max(count.last_seq, this._list.newest);
        this._resume = Math.max(this._resume, this._countSeq);
        this._newestSeen = Math.max(this._newestSeen, this._list.newest);
        this._status = "ready";
        this._error = null;
        this._emit({ type: "state" });
      } catch (error) {
        this._status = "error"; // what is loaded stays; the bell says the reload failed
        this._error = describe(error);
        this._emit({ type: "error", action: "refresh", error });
        throw error;
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /** Mark the given notifications read (optimistic; rolled back when the server refuses). */
  async markRead(ids) {
    const wanted = [].concat(ids).map(Number);
    const changed = this._list.markRead({ ids: wanted }, nowIso());
    if (!changed.length) return;
    this._unread = Math.max(0, this._unread - changed.length);
    this._emit({ type: "state" });
    try {
      const result = await this._json("POST", "/notifications/read", { ids: wanted });
      this._applyAndRelay("notifications-read", { ids: wanted, unread: result.unread });
    } catch (error) {
      this._list.markUnread(changed);
      this._unread += changed.length;
      this._fail("markRead", error);
    }
  }

  /**
   * Mark read everything up to the newest notification this tab has seen; one that arrives
   * meanwhile stays unread (the server marks `up_to`, never newer).
   */
  async markAllRead() {
    const upTo = this._newestSeen;
    if (!upTo) return;
    const before = this._unread;
    const changed = this._list.markRead({ upTo }, nowIso());
    this._unread = this._list.items.filter((n) => n.id > upTo && !n.read_at).length;
    this._emit({ type: "state" });
    try {
      const result = await this._json("POST", "/notifications/read", { up_to: upTo });
      this._applyAndRelay("notifications-read", { up_to: upTo, unread: result.unread });
    } catch (error) {
      this._list.markUnread(changed);
      this._unread = before;
      this._fail("markAllRead", error);
    }
  }

  /** Delete one notification (optimistic; put back when the server refuses). */
  async delete(id) {
    id = Number(id);
    const removed = this._list.remove(id);
    if (!removed) return;
    if (!removed.read_at) this._unread = Math.max(0, this._unread - 1);
    this._emit({ type: "state" });
    try {
      // The server tells every tab (this one too) over the stream, with the new count.
      await this._request("DELETE", `/notifications/${id}`);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return; // already gone
      this._list.add(removed);
      if (!removed.read_at) this._unread += 1;
      this._fail("delete", error);
    }
  }

  /** Append the next (older) page. */
  async loadMore() {
    if (!this._nextUrl || this._loadingMore) return;
    this._loadingMore = true;
    this._emit({ type: "state" });
    try {
      const response = await this._request("GET", this._nextUrl);
      const page = await response.json();
      for (const n of Array.isArray(page) ? page : []) this._list.add(n);
      this._nextUrl = parseNextLink(response.headers.get("link"));
    } catch (error) {
      this._error = describe(error);
      this._emit({ type: "error", action: "loadMore", error });
    } finally {
      this._loadingMore = false;
      this._emit({ type: "state" });
    }
  }

  /** Reload everything in every tab and reopen the stream (e.g. after the user changed). */
  reconnect() {
    this._post({ t: "reconnect" });
    this._onMessage({ t: "reconnect" });
  }

  /** Stop: close the stream, give up leadership (another tab takes over), drop listeners. */
  close() {
    if (this._closed) return;
    this._closed = true;
    this._closeSource();
    clearTimeout(this._retryTimer);
    clearInterval(this._watchdog);
    this._releaseLock?.();
    this._lockAbort?.abort();
    this._channel?.close();
    const g = globalThis;
    g.removeEventListener?.("online", this._onWindow.online);
    g.removeEventListener?.("offline", this._onWindow.offline);
    g.document?.removeEventListener("visibilitychange", this._onWindow.visibilitychange);
    this._connection = "closed";
    this._emit({ type: "state" });
    this._listeners.clear();
  }

  // --- leadership ------------------------------------------------------------------------------

  _elect() {
    this._role = "follower";
    this._post({ t: "hello" });
    this._lockAbort = new AbortController();
    globalThis.navigator.locks
      .request(this._channelName, { signal: this._lockAbort.signal }, () => {
        if (this._closed) return undefined;
        // Held for as long as this tab leads: closing the tab releases it.
        return new Promise((resolve) => {
          this._releaseLock = resolve;
          this._role = "leader";
          this._emit({ type: "state" });
          this._loaded.then(() => this._open());
        });
      })
      .catch(() => {}); // aborted by close()
    this._emit({ type: "state" });
  }

  _post(message) {
    try {
      this._channel?.postMessage(message);
    } catch {
      // a closed channel: this client is closing
    }
  }

  _onMessage(m) {
    if (this._closed || !m || typeof m !== "object") return;
    if (m.t === "event" && this._role === "follower") {
      this._apply(m.type, m.data);
    } else if (m.t === "local") {
      this._apply(m.type, m.data);
    } else if (m.t === "status" && this._role === "follower") {
      this._connection = m.connection;
      this._emit({ type: "state" });
    } else if (m.t === "hello" && this._isLeader()) {
      this._post({ t: "status", connection: this._connection });
    } else if (m.t === "poke" && this._isLeader()) {
      this._wake("poke");
    } else if (m.t === "resync") {
      this.refresh().catch(() => {});
    } else if (m.t === "reconnect") {
      // A token the host page rendered in: exchanged for the session cookie before anything else.
      const start = this._opts.token ? this._session(this._opts.token) : Promise.resolve(true);
      this._loaded = start.then(() => this.refresh()).catch(() => {});
      if (this._isLeader()) {
        this._attempt = 0;
        this._loaded.then(() => this._open());
      }
    }
  }

  _isLeader() {
    return this._role === "leader" || this._role === "solo";
  }

  // --- the stream (leader only) ----------------------------------------------------------------

  _open() {
    if (this._closed || !this._isLeader()) return;
    this._closeSource();
    clearTimeout(this._retryTimer);
    const es = new globalThis.EventSource(
      `${this._base}/notifications/stream?last_event_id=${this._resume}`,
      { withCredentials: this._opts.withCredentials },
    );
    this._source = es;
    this._lastPing = 0;
    if (this._connection !== "offline") {
      this._leaderSetConnection(this._connection === "open" ? "reconnecting" : this._connection);
    }
    es.onopen = () => {
      if (es !== this._source) return;
      this._attempt = 0;
      this._authTries = 0;
      this._lastAlive = Date.now();
      this._leaderSetConnection("open");
      this._startWatchdog();
      if (this._needResync) {
        // Read marks and deletions made while we were away are not replayed: reload the list.
        this._needResync = false;
        this._post({ t: "resync" });
        this.refresh().catch(() => {});
      }
    };
    es.onerror = () => {
      if (es !== this._source) return;
      this._needResync = true;
      if (es.readyState === 2 /* CLOSED: a non-200 answer; EventSource gives up */) {
        this._source = null;
        this._recover();
      } else {
        // CONNECTING: the browser retries by itself after the server's `retry:`.
        this._leaderSetConnection(
          globalThis.navigator?.onLine === false ? "offline" : "reconnecting",
        );
      }
    };
    for (const type of STREAM_EVENTS) {
      es.addEventListener(type, (e) => {
        if (es !== this._source) return;
        this._lastAlive = Date.now();
        if (type === "ping") {
          if (this._lastPing) this._pingInterval = this._lastAlive - this._lastPing;
          this._lastPing = this._lastAlive;
          return;
        }
        const data = parseEventData(e.data);
        if (data) this._applyAndRelay(type, data);
      });
    }
  }

  _closeSource() {
    if (this._source) {
      this._source.close();
      this._source = null;
    }
  }

  /** The stream was refused: learn why (a 401 means a new credential), then retry later. */
  async _recover() {
    const offline = globalThis.navigator?.onLine === false;
    this._leaderSetConnection(offline ? "offline" : "reconnecting");
    let status = 0;
    try {
      const response = await this._fetch(
        `${this._base}/notifications/unread-count`,
        this._init("GET"),
      );
      status = response.status;
    } catch {
      status = 0; // the network or the server is away
    }
    if (this._closed || !this._isLeader() || this._source) return;
    if (status === 401) {
      // A fresh credential is tried at once the first time; after that, with the backoff.
      const refreshed = await this._refreshCredential();
      if (this._closed || !this._isLeader() || this._source) return;
      if (refreshed && this._authTries++ === 0) {
        this._open();
        return;
      }
      if (!refreshed) this._leaderSetConnection("unauthorized");
    }
    this._schedule(backoffDelay(this._attempt++, this._opts.backoff));
  }

  _schedule(delay) {
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _startWatchdog() {
    clearInterval(this._watchdog);
    const every = Math.max(1000, (this._opts.heartbeat * 1000) / 2);
    this._watchdog = setInterval(() => {
      if (this._source?.readyState === 1 && this._stale()) {
        // No heartbeat: the socket died silently (sleep, network change). Reopen now.
        this._needResync = true;
        this._open();
      }
    }, every);
  }

  _stale() {
    const expected = this._pingInterval ?? this._opts.heartbeat * 1000;
    return Date.now() - this._lastAlive > expected * 2.5 + 1000;
  }

  /** `online`, a tab made visible, or a follower's poke: reopen a stream that may be dead. */
  _wake(why) {
    if (this._closed) return;
    if (!this._isLeader()) {
      this._post({ t: "poke" });
      return;
    }
    if (why === "online" || !this._source || this._stale()) {
      this._attempt = 0;
      this._needResync = true;
      this._open();
    }
  }

  _leaderSetConnection(connection) {
    if (this._role === "follower") return;
    if (connection === this._connection) return;
    this._connection = connection;
    this._post({ t: "status", connection });
    this._emit({ type: "state" });
  }

  // --- applying events -------------------------------------------------------------------------

  _applyAndRelay(type, data) {
    this._apply(type, data);
    this._post({ t: this._isLeader() ? "event" : "local", type, data });
  }

  _apply(type, data) {
    if (type === "new-notification") {
      if (!isNotification(data)) return;
      this._resume = Math.max(this._resume, data.id);
      this._newestSeen = Math.max(this._newestSeen, data.id);
      if (this._list.has(data.id)) return;
      // An old one (before what "load more" reached) stays out, so the list has no holes.
      if (this._nextUrl !== null && data.id < this._list.oldest) return;
      this._list.add(data);
      if (data.id > this._countSeq) {
        if (!data.read_at) this._unread += 1;
        this._countSeq = data.id;
      }
      this._emit({ type: "notification", notification: { ...data } });
    } else if (type === "notifications-read") {
      this._list.markRead({ ids: data.ids, upTo: data.up_to }, nowIso());
      if (Number.isInteger(data.unread)) this._unread = data.unread;
      this._countSeq = Math.max(this._countSeq, this._resume);
      this._emit({ type: "state" });
    } else if (type === "notification-deleted") {
      this._list.remove(data.id);
      if (Number.isInteger(data.unread)) this._unread = data.unread;
      this._countSeq = Math.max(this._countSeq, this._resume);
      this._emit({ type: "state" });
    } else if (type === "reset") {
      // The server could not replay from our point: what we hold may have holes. Reload.
      if (Number.isInteger(data.last_seq)) this._resume = data.last_seq;
      this.refresh().catch(() => {});
    }
  }

  _emit(change) {
    this.state = snapshot(this);
    for (const listener of [...this._listeners]) {
      try {
        listener(this.state, change);
      } catch (error) {
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  _fail(action, error) {
    this._error = describe(error);
    this._emit({ type: "error", action, error });
  }

  // --- HTTP ------------------------------------------------------------------------------------

  _init(method, body) {
    const init = {
      method,
      credentials: this._opts.withCredentials ? "include" : "same-origin",
      headers: { accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return init;
  }

  async _request(method, path, body) {
    const url = new URL(path, `${this._base}/`).href;
    let response = await this._fetch(url, this._init(method, body));
    if (response.status === 401 && (await this._refreshCredential())) {
      response = await this._fetch(url, this._init(method, body));
    }
    if (!response.ok) {
      let detail = "";
      try {
        const problem = await response.json();
        detail = typeof problem.detail === "string" ? problem.detail : problem.error;
      } catch {
        // not JSON: keep the status
      }
      throw new HttpError(response.status, detail);
    }
    return response;
  }

  async _json(method, path, body) {
    const response = await this._request(method, path, body);
    return response.status === 204 ? null : response.json();
  }

  /** POST /notifications/session: the token becomes the HttpOnly cookie EventSource sends. */
  async _session(token) {
    try {
      const response = await this._fetch(
        `${this._base}/notifications/session`,
        this._init("POST", { token }),
      );
      return response.ok;
    } catch {
      return false;
    }
  }

  /** Ask the host page for a fresh token and turn it into the session cookie (single flight). */
  _refreshCredential() {
    const getToken = this._opts.getToken;
    if (typeof getToken !== "function") return Promise.resolve(false);
    if (!this._credential) {
      this._credential = (async () => {
        try {
          const token = await getToken();
          return token ? await this._session(token) : false;
        } catch {
          return false;
        } finally {
          this._credential = null;
        }
      })();
    }
    return this._credential;
  }
}

function describe(error) {
  if (error instanceof HttpError) return error.status === 401 ? "unauthorized" : error.message;
  return "network";
}

/**
 * Create a client. Options: `baseUrl` (the tidings server; default this origin), `pageSize` (10),
 * `heartbeat` (the server's TIDINGS_HEARTBEAT in seconds, 15; the watchdog also learns it from
 * the pings), `token` (a user token to start the session with), `getToken` (async () => a fresh user token, called on 401), `share` (true: one
 * stream for all tabs), `backoff` ({initial: 1000, max: 30000} ms), `withCredentials` (default:
 * true when baseUrl is another origin).
 */
export function createTidings(options = {}) {
  return new Tidings(options);
}
