// tidings.js: the browser client for tidings (https://… your tidings server /static/tidings.js).
//
// A dependency-free ES module. One `createTidings()` per page keeps a list of the user's
// notifications and their unread count in sync with the server. All tabs of a browser share ONE
// stream: the tab holding a Web Lock is the leader, opens the EventSource and relays what it
// receives to the other tabs over a BroadcastChannel; when it closes, the next tab waiting on the
// lock takes over at once. Everything else (REST calls, the list) is per tab.
//
// Nothing here touches browser globals at import time, so the pure helpers below run in Node.
//
// Failure convention: every method that talks to the server returns a promise that resolves when
// the server agreed and rejects with a `TidingsError` when it did not; the same error is also
// emitted to subscribers as a change `{type: "error", action, error}`, so a UI can render failures
// from `subscribe()` alone and still `await` a single call.

/**
 * A notification as the server sends it (see docs/api.md).
 * @typedef {object} Notification
 * @property {number} id the user's seq
 * @property {string} message
 * @property {string | null} [link]
 * @property {string | null} [kind]
 * @property {Record<string, unknown>} [data]
 * @property {string} [created_at]
 * @property {string | null} [read_at]
 * @property {string | null} [category] a tab of the bell
 * @property {{name: string, avatar_url?: string | null} | null} [actor] who caused it
 * @property {{label: string, url: string}[]} [actions] up to 2 buttons
 * @property {string | null} [group] collapse key
 * @property {number} [group_count] with `grouped`: how many unread notifications this row
 *   stands for (1 when it stands alone)
 * @property {string | null} [expires_at]
 * @property {string | null} [seen_at]
 * @property {string | null} [archived_at]
 * @property {string | null} [snoozed_until] set while snoozed (only in the snoozed list)
 */

/**
 * Which notifications the kept list holds (`setFilter()`): one category's, or the archived ones.
 * @typedef {object} TidingsFilter
 * @property {string | null} [category] only this category's (null: all)
 * @property {boolean} [archived] only archived ones (false: only those not archived)
 * @property {boolean} [snoozed] only snoozed ones (`?snoozed=1`)
 */

/**
 * The counts of GET /notifications/unread-count.
 * @typedef {object} TidingsCounts
 * @property {number} unread
 * @property {number} unseen
 * @property {number} last_seq
 * @property {Record<string, {unread: number, unseen: number}>} categories a category appears
 *   while it has something unread or unseen
 */

/**
 * GET / PUT /notifications/preferences.
 * @typedef {object} TidingsPreferences
 * @property {string[]} muted_categories
 * @property {{push: boolean, email: boolean}} channels
 */

/**
 * Options of `createTidings()`. An unknown key or a value of the wrong type throws a TypeError.
 * @typedef {object} TidingsOptions
 * @property {string} [baseUrl] the tidings server; default: this page's origin
 * @property {string} [token] a user token to start the session with (POST /notifications/session)
 * @property {(() => (string | null | Promise<string | null>)) | null} [getToken] the host's
 *   refresh callback: a fresh user token, or null when the user is logged out
 * @property {number} [pageSize] notifications per page, 1-100 (10)
 * @property {number} [heartbeat] seconds between the server's pings until the stream announces
 *   its own (15)
 * @property {number} [timeout] ms a REST call, a stream connect or the browser's push subscribe
 *   (enablePush) may take before it is abandoned
 *   and retried (10000)
 * @property {{initial?: number, max?: number}} [backoff] reconnect backoff in ms
 *   ({initial: 1000, max: 30000})
 * @property {boolean} [share] one stream for all tabs of the browser (true)
 * @property {boolean} [withCredentials] send cookies cross-origin (default: true when baseUrl is
 *   another origin)
 * @property {typeof fetch} [fetch] the fetch to use (default: the global one)
 * @property {boolean} [grouped] list with `grouped=1`: unread notifications sharing a `group`
 *   come as one row with `group_count` (false)
 * @property {string} [category] start with the list filtered to this category
 * @property {number} [maxItems] the most notifications the list keeps from live arrivals; older
 *   ones are dropped and come back with `loadMore()` (200; "load more" raises it)
 */

/**
 * What subscribers get: a new frozen object on every change.
 * @typedef {object} TidingsState
 * @property {Notification[]} items newest first
 * @property {number} unread the server's unread count (plus arrivals since)
 * @property {number} unseen the same for unseen (the badge)
 * @property {Record<string, {unread: number, unseen: number}>} categories the counts per
 *   category (kept live; refreshed from the server after read, seen, archive and expiry)
 * @property {{category: string | null, archived: boolean, snoozed?: boolean}} filter what the
 *   list holds
 * @property {"loading" | "ready" | "error"} status of the list
 * @property {string | null} error the last failure, short: "unauthorized", "network" or the
 *   server's detail
 * @property {"connecting" | "open" | "reconnecting" | "offline" | "unauthorized" | "closed"}
 *   connection the shared stream's real state
 * @property {"leader" | "follower" | "solo" | "starting"} role this tab's part in sharing
 * @property {boolean} hasMore an older page exists
 * @property {boolean} loadingMore
 */

/**
 * Why subscribers are called. `seen`, `archived`, `unarchived` and `expired` come from any tab
 * or device of the user (this one too), after the state changed.
 * @typedef {{type: "state"} | {type: "notification", notification: Notification}
 *   | {type: "error", action: string, error: TidingsError}
 *   | {type: "seen", upTo: number, unseen: number}
 *   | {type: "archived", ids: number[]} | {type: "unarchived", ids: number[]}
 *   | {type: "expired", ids: number[]}
 *   | {type: "snoozed", ids: number[], until: string}
 *   | {type: "unsnoozed", notifications: Notification[]}} TidingsChange
 */

const STREAM_EVENTS = [
  "new-notification",
  "notifications-read",
  "notification-deleted",
  "notifications-seen",
  "notifications-archived",
  "notifications-unarchived",
  "notifications-expired",
  "notifications-snoozed",
  "notifications-unsnoozed",
  "reset",
  "ping",
];

/** The longest setTimeout delay browsers honour (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Every failure of a client method: the promise rejects with one, and subscribers get it.
 * `status` is the HTTP status, or 0 when no answer came (network down, `timeout` elapsed);
 * `code` is the server's `error` code, or "network" / "timeout" / "bad_response".
 */
export class TidingsError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, action?: string}} [details]
   */
  constructor(message, { status = 0, code = "network", action = "" } = {}) {
    super(message);
    this.name = "TidingsError";
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code;
    /** @type {string} the client method that failed ("refresh", "markRead", …) */
    this.action = action;
  }
}

const OPTION_TYPES = {
  baseUrl: "string",
  token: "string",
  getToken: "function",
  pageSize: "integer",
  heartbeat: "number",
  timeout: "number",
  backoff: "object",
  share: "boolean",
  withCredentials: "boolean",
  fetch: "function",
  grouped: "boolean",
  category: "string",
  maxItems: "count",
};
const BACKOFF_KEYS = ["initial", "max"];
const DEFAULTS = {
  pageSize: 10,
  heartbeat: 15,
  timeout: 10000,
  share: true,
  getToken: null,
  grouped: false,
  maxItems: 200,
};

/** Edit distance, for "did you mean" on a misspelled option. */
function distance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + cost));
    }
    row = next;
  }
  return row[b.length];
}

function unknownKey(where, key, known) {
  const lower = key.toLowerCase();
  const near = known.find((k) => k.toLowerCase() === lower || distance(k, key) <= 2);
  const hint = near ? ` (did you mean "${near}"?)` : ` (known: ${known.join(", ")})`;
  return new TypeError(`${where}: unknown option "${key}"${hint}`);
}

/**
 * The options with defaults filled in; a TypeError for an unknown key or a wrong type, so a
 * misspelled option fails loudly instead of being ignored. `undefined` counts as absent (so a
 * wrapper may pass every option through), and so do `null` for getToken and "" for token and
 * baseUrl.
 * @param {TidingsOptions} [options]
 * @returns {TidingsOptions & {backoff: {initial: number, max: number}}}
 */
export function checkOptions(options = {}) {
  const where = "createTidings";
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object`);
  }
  const known = Object.keys(OPTION_TYPES);
  const out = { ...DEFAULTS, backoff: { initial: 1000, max: 30000 } };
  for (const [key, value] of Object.entries(/** @type {Record<string, any>} */ (options))) {
    if (!Object.hasOwn(OPTION_TYPES, key)) throw unknownKey(where, key, known);
    if (value === undefined || (value === null && key === "getToken")) continue;
    if (value === "" && (key === "token" || key === "baseUrl" || key === "category")) continue;
    const type = OPTION_TYPES[key];
    const bad = (what) =>
      new TypeError(`${where}: option "${key}" must be ${what}, got ${show(value)}`);
    if (type === "integer") {
      if (!Number.isInteger(value) || value < 1 || value > 100)
        throw bad("an integer from 1 to 100");
    } else if (type === "count") {
      if (!Number.isInteger(value) || value < 1) throw bad("a positive integer");
    } else if (type === "number") {
      if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
        throw bad("a positive number");
      }
    } else if (type === "object") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw bad("an object like {initial: 1000, max: 30000}");
      }
      for (const [sub, ms] of Object.entries(value)) {
        if (!BACKOFF_KEYS.includes(sub)) throw unknownKey(`${where}: backoff`, sub, BACKOFF_KEYS);
        if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
          throw new TypeError(`${where}: backoff.${sub} must be a positive number of ms`);
        }
      }
      out.backoff = { ...out.backoff, ...value };
      continue;
    } else if (typeof value !== type) {
      throw bad(`a ${type}`);
    }
    out[key] = value;
  }
  return out;
}

function show(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  return String(value);
}

/** The claims of a JWT, unverified (only to read `exp`), or null when it is not one. */
export function jwtClaims(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = globalThis.atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(json);
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/**
 * In how many ms to fetch a new credential for `token`, so it is in place before `exp`: at four
 * fifths of the lifetime, and at most a minute early. The lifetime is `exp - iat` when the token
 * has `iat` (immune to a wrong browser clock), else `exp` minus this clock. Null when the token
 * says nothing usable or the renewal would be due within a second (then the client renews on the
 * server's 401, as before).
 * @param {string} token
 * @param {number} [now] ms since the epoch
 * @returns {number | null}
 */
export function renewDelay(token, now = Date.now()) {
  const claims = jwtClaims(token);
  if (!claims || typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) return null;
  const hasIat = typeof claims.iat === "number" && claims.iat < claims.exp;
  const lifetime = hasIat ? (claims.exp - claims.iat) * 1000 : claims.exp * 1000 - now;
  const delay = Math.round(lifetime - Math.min(60000, lifetime / 5));
  // Under a second: a token about to expire (a host that hands out a cached one). Renewing it
  // again and again would only spin; the 401 path takes over.
  return delay >= 1000 ? Math.min(MAX_TIMER_MS, delay) : null;
}

/**
 * The ms without any event after which an open stream counts as dead: 2.5 heartbeats (one ping
 * may be late, one lost) plus a second of slack.
 */
export function staleAfter(heartbeatMs) {
  return heartbeatMs * 2.5 + 1000;
}

/** The heartbeat (ms) a `ping` event announces (`{"heartbeat": seconds}`), or null. */
export function announcedHeartbeat(data) {
  const seconds = data?.heartbeat;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0
    ? seconds * 1000
    : null;
}

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

  /**
   * Mark read by `ids` or everything `upTo`; returns the ids that changed from unread.
   * @param {{ids?: number[], upTo?: number | null}} which
   * @param {string} at the read_at to set
   * @returns {number[]}
   */
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

  /**
   * Mark seen everything up to `upTo`; returns the ids that changed from unseen.
   * @param {number} upTo
   * @param {string | null} at the seen_at to set (null: back to unseen, for a rollback)
   * @param {number[]} [only] only these ids
   * @returns {number[]}
   */
  markSeen(upTo, at, only) {
    const wanted = only ? new Set(only) : null;
    const changed = [];
    for (const n of this.items) {
      if (n.id > upTo || (wanted && !wanted.has(n.id))) continue;
      if (at ? !n.seen_at : n.seen_at) {
        n.seen_at = at;
        changed.push(n.id);
      }
    }
    return changed;
  }

  /** Remove the given ids; returns the removed notifications. */
  removeAll(ids) {
    const removed = [];
    for (const id of ids) {
      const n = this.remove(id);
      if (n) removed.push(n);
    }
    return removed;
  }

  /** Drop the oldest beyond `max`; true when something was dropped. */
  trim(max) {
    if (this.items.length <= max) return false;
    for (const n of this.items.splice(max)) this.ids.delete(n.id);
    return true;
  }
}

/** Whether a notification belongs in a list with `filter`. */
export function matchesFilter(n, filter) {
  if (filter.category && n.category !== filter.category) return false;
  if (Boolean(n.snoozed_until) !== Boolean(filter.snoozed)) return false;
  return Boolean(n.archived_at) === Boolean(filter.archived);
}

/**
 * The query string of a list request: `limit`, the filter, `grouped`, and `extra` (before, unread).
 * @param {{limit: number, filter: {category?: string | null, archived?: boolean,
 *   snoozed?: boolean},
 *   grouped?: boolean, before?: number, unread?: boolean}} options
 * @returns {string}
 */
export function listQuery({ limit, filter, grouped = false, before, unread = false }) {
  const query = new URLSearchParams({ limit: String(limit) });
  if (before) query.set("before", String(before));
  if (unread) query.set("unread", "1");
  if (filter.category) query.set("category", filter.category);
  if (filter.archived) query.set("archived", "1");
  if (filter.snoozed) query.set("snoozed", "1");
  if (grouped) query.set("grouped", "1");
  return query.toString();
}

/** The state of a client, as handed to subscribers (a new object on every change). */
function snapshot(c) {
  return Object.freeze({
    items: c._list.items.map((n) => ({ ...n })),
    unread: c._unread,
    unseen: c._unseen,
    categories: structuredCopy(c._categories),
    filter: { ...c._filter },
    status: c._status,
    error: c._error,
    connection: c._connection,
    role: c._role,
    hasMore: c._nextUrl !== null,
    loadingMore: c._loadingMore !== null,
  });
}

const nowIso = () => new Date().toISOString();

/**
 * @param {Record<string, {unread: number, unseen: number}>} categories
 * @returns {Record<string, {unread: number, unseen: number}>}
 */
function structuredCopy(categories) {
  /** @type {Record<string, {unread: number, unseen: number}>} */
  const out = {};
  for (const [name, counts] of Object.entries(categories)) out[name] = { ...counts };
  return out;
}

/**
 * The client: made by `createTidings()`. Its methods that talk to the server resolve when the
 * server agreed and reject with a TidingsError (also emitted as an `error` change) when not.
 */
class Tidings {
  /** @param {TidingsOptions} options */
  constructor(options) {
    const g = globalThis;
    const opts = checkOptions(options);
    const base = new URL(opts.baseUrl || "/", g.location?.href ?? "http://localhost/");
    this._base = base.href.replace(/\/$/, "");
    const crossOrigin = g.location ? base.origin !== g.location.origin : false;
    this._opts = { withCredentials: crossOrigin, ...opts };
    this._fetch = opts.fetch ?? g.fetch.bind(g);
    this._list = new NotificationList();
    this._unread = 0;
    this._unseen = 0;
    /** @type {Record<string, {unread: number, unseen: number}>} */
    this._categories = {};
    /** @type {{category: string | null, archived: boolean, snoozed?: boolean}} */
    this._filter = { category: opts.category || null, archived: false };
    this._filterGen = 0; // bumped by setFilter(): a reload begun before it is discarded
    this._cap = opts.maxItems; // the most kept from live arrivals; loadMore() raises it
    this._countsTimer = null;
    this._countSeq = 0; // the newest seq the unread count already includes
    this._resume = 0; // where the stream resumes: everything up to here is in hand
    this._newestSeen = 0; // "mark all read" marks up to here
    this._status = "loading";
    this._error = null;
    this._connection = "connecting";
    this._role = "starting";
    this._nextUrl = null;
    this._loadingMore = null;
    this._listeners = new Set();
    this._closed = false;
    this._source = null;
    this._attempt = 0;
    this._authTries = 0;
    this._retryTimer = null;
    this._connectTimer = null;
    this._renewTimer = null;
    this._renewAt = null; // when the credential in the cookie is due for renewal (ms), if known
    this._lastAlive = 0;
    // Until the stream announces it (in its pings), the heartbeat is the one we were told.
    this._heartbeatMs = this._opts.heartbeat * 1000;
    this._needResync = false;
    this._refreshing = null;
    this._credential = null;
    /** @type {TidingsState} */
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
      offline: () => this._onOffline(),
      visibilitychange: () => {
        if (g.document?.visibilityState === "visible") this._wake("visible");
      },
    };
    g.addEventListener?.("online", this._onWindow.online);
    g.addEventListener?.("offline", this._onWindow.offline);
    g.document?.addEventListener("visibilitychange", this._onWindow.visibilitychange);

    this._start();
    if (canShare) this._elect();
    else {
      this._role = "solo";
      this._loaded.then(() => this._open());
    }
  }

  // --- public API ------------------------------------------------------------------------------

  /** The tidings server's URL, without a trailing slash. @returns {string} */
  get baseUrl() {
    return this._base;
  }

  /**
   * Call `listener(state, change)` now and on every change.
   * @param {(state: TidingsState, change: TidingsChange) => void} listener
   * @returns {() => void} unsubscribe
   */
  subscribe(listener) {
    this._listeners.add(listener);
    listener(this.state, { type: "state" });
    return () => this._listeners.delete(listener);
  }

  /**
   * Reload the unread count and the first page (what the Refresh button does). Concurrent calls
   * share one reload.
   * @returns {Promise<void>}
   */
  refresh() {
    if (this._refreshing) return this._refreshing;
    const gen = this._filterGen;
    this._refreshing = (async () => {
      try {
        // The count first: a notification newer than it is then in the page or comes by stream.
        const { data: count } = await this._call("refresh", "GET", "/notifications/unread-count");
        const query = listQuery({
          limit: this._opts.pageSize,
          filter: this._filter,
          grouped: this._opts.grouped,
        });
        const { data: page, link } = await this._call("refresh", "GET", `/notifications?${query}`);
        if (gen !== this._filterGen) return; // setFilter() reloads for the new filter
        this._list.replacePage(Array.isArray(page) ? page : []);
        this._nextUrl = parseNextLink(link);
        this._cap = this._opts.maxItems;
        // Kept live arrivals newer than the count are not in it yet.
        const lastSeq = Number.isInteger(count?.last_seq) ? count.last_seq : 0;
        const uncounted = this._list.items.filter((n) => n.id > lastSeq);
        const unread = Number.isInteger(count?.unread) ? count.unread : 0;
        const unseen = Number.isInteger(count?.unseen) ? count.unseen : 0;
        this._unread = unread + uncounted.filter((n) => !n.read_at).length;
        this._unseen = unseen + uncounted.filter((n) => !n.seen_at).length;
        this._categories = categoriesOf(count);
        for (const n of uncounted) this._countInCategory(n);
        this._countSeq = Math.max(lastSeq, this._list.newest);
        this._resume = Math.max(this._resume, this._countSeq);
        this._newestSeen = Math.max(this._newestSeen, this._list.newest);
        this._status = "ready";
        this._error = null;
        this._emit({ type: "state" });
      } catch (error) {
        this._status = "error"; // what is loaded stays; the bell says the reload failed
        throw this._fail("refresh", error);
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /**
   * Mark the given notifications read (optimistic; rolled back when the server refuses).
   * @param {number | number[]} ids
   * @returns {Promise<void>}
   */
  async markRead(ids) {
    const wanted = [].concat(ids).map(Number);
    const changed = this._list.markRead({ ids: wanted }, nowIso());
    if (!changed.length) return;
    this._unread = Math.max(0, this._unread - changed.length);
    this._emit({ type: "state" });
    try {
      const { data } = await this._call("markRead", "POST", "/notifications/read", { ids: wanted });
      this._applyAndRelay("notifications-read", { ids: wanted, unread: data?.unread });
    } catch (error) {
      this._list.markUnread(changed);
      this._unread += changed.length;
      throw this._fail("markRead", error);
    }
  }

  /**
   * Mark read everything up to the newest notification this tab has seen; one that arrives
   * meanwhile stays unread (the server marks `up_to`, never newer).
   * @returns {Promise<void>}
   */
  async markAllRead() {
    const upTo = this._newestSeen;
    if (!upTo) return;
    const before = this._unread;
    const changed = this._list.markRead({ upTo }, nowIso());
    this._unread = this._list.items.filter((n) => n.id > upTo && !n.read_at).length;
    this._emit({ type: "state" });
    try {
      const body = { up_to: upTo };
      const { data } = await this._call("markAllRead", "POST", "/notifications/read", body);
      this._applyAndRelay("notifications-read", { up_to: upTo, unread: data?.unread });
    } catch (error) {
      this._list.markUnread(changed);
      this._unread = before;
      throw this._fail("markAllRead", error);
    }
  }

  /**
   * Delete one notification (optimistic; put back when the server refuses). One that is already
   * gone (404) counts as deleted.
   * @param {number} id
   * @returns {Promise<void>}
   */
  async delete(id) {
    id = Number(id);
    const removed = this._list.remove(id);
    if (!removed) return;
    if (!removed.read_at) this._unread = Math.max(0, this._unread - 1);
    this._emit({ type: "state" });
    try {
      // The server tells every tab (this one too) over the stream, with the new count.
      await this._call("delete", "DELETE", `/notifications/${id}`);
    } catch (error) {
      if (error instanceof TidingsError && error.status === 404) return; // already gone
      this._list.add(removed);
      if (!removed.read_at) this._unread += 1;
      throw this._fail("delete", error);
    }
  }

  /**
   * Append the next (older) page; a call while one is loading joins it.
   * @returns {Promise<void>}
   */
  loadMore() {
    if (this._loadingMore) return this._loadingMore;
    if (!this._nextUrl) return Promise.resolve();
    this._loadingMore = (async () => {
      try {
        const { data: page, link } = await this._call("loadMore", "GET", this._nextUrl);
        for (const n of Array.isArray(page) ? page : []) this._list.add(n);
        this._nextUrl = parseNextLink(link);
        // What the user paged in stays when later arrivals come.
        this._cap = Math.max(this._cap, this._list.items.length);
      } catch (error) {
        throw this._fail("loadMore", error);
      } finally {
        this._loadingMore = null;
        this._emit({ type: "state" });
      }
    })();
    this._emit({ type: "state" });
    return this._loadingMore;
  }

  /**
   * Mark seen everything up to `upTo` (default: the newest notification this tab has got): what
   * opening the bell does. The badge (`unseen`) drops in every tab; one that arrives meanwhile
   * stays unseen.
   * @param {number} [upTo]
   * @returns {Promise<void>}
   */
  async markSeen(upTo = this._newestSeen) {
    if (!Number.isSafeInteger(upTo) || upTo < 1) return;
    const before = this._unseen;
    const changed = this._list.markSeen(upTo, nowIso());
    this._unseen = this._list.items.filter((n) => n.id > upTo && !n.seen_at).length;
    this._emit({ type: "state" });
    try {
      const { data } = await this._call("markSeen", "POST", "/notifications/seen", {
        up_to: upTo,
      });
      this._applyAndRelay("notifications-seen", { up_to: upTo, unseen: data?.unseen });
    } catch (error) {
      this._list.markSeen(upTo, null, changed);
      this._unseen = before;
      throw this._fail("markSeen", error);
    }
  }

  /**
   * Archive notifications: they leave the default list and the counts (optimistic; put back
   * when the server refuses).
   * @param {number | number[]} ids
   * @returns {Promise<void>}
   */
  archive(ids) {
    return this._archive("archive", [].concat(ids).map(Number));
  }

  /**
   * Bring archived notifications back, as they were (read or not).
   * @param {number | number[]} ids
   * @returns {Promise<void>}
   */
  unarchive(ids) {
    return this._archive("unarchive", [].concat(ids).map(Number));
  }

  /**
   * Snooze notifications until `until` (ISO 8601 with an offset): they leave the list and the
   * counts, and come back unread and unseen then (`unsnoozed`). Optimistic, like archive().
   * @param {number | number[]} ids
   * @param {string} until
   * @returns {Promise<void>}
   */
  async snooze(ids, until) {
    const wanted = [].concat(ids).map(Number);
    const removed = this._filter.snoozed ? [] : this._list.removeAll(wanted);
    if (removed.length) this._emit({ type: "state" });
    try {
      const body = { ids: wanted, until: String(until) };
      const { data } = await this._call("snooze", "POST", "/notifications/snooze", body);
      this._applyAndRelay("notifications-snoozed", {
        ids: Array.isArray(data?.ids) ? data.ids : wanted,
        until: data?.until ?? until,
        unread: data?.unread,
        unseen: data?.unseen,
      });
    } catch (error) {
      for (const n of removed) this._list.add(n);
      throw this._fail("snooze", error);
    }
  }

  /**
   * Bring snoozed notifications back now, unread and unseen.
   * @param {number | number[]} ids
   * @returns {Promise<void>}
   */
  async unsnooze(ids) {
    const wanted = [].concat(ids).map(Number);
    const removed = this._filter.snoozed ? this._list.removeAll(wanted) : [];
    if (removed.length) this._emit({ type: "state" });
    try {
      const { data } = await this._call("unsnooze", "POST", "/notifications/unsnooze", {
        ids: wanted,
      });
      this._applyAndRelay("notifications-unsnoozed", data ?? { notifications: [] });
    } catch (error) {
      for (const n of removed) this._list.add(n);
      throw this._fail("unsnooze", error);
    }
  }

  /**
   * One page of notifications, without touching the kept list (GET /notifications).
   * @param {{category?: string | null, archived?: boolean, grouped?: boolean, unread?: boolean,
   *   limit?: number, before?: number}} [options] limit 1-100 (pageSize)
   * @returns {Promise<{items: Notification[], hasMore: boolean}>}
   */
  async list(options = {}) {
    const { category = null, archived = false, grouped = false, unread = false } = options;
    const query = listQuery({
      limit: options.limit ?? this._opts.pageSize,
      filter: { category, archived },
      grouped,
      before: options.before,
      unread,
    });
    try {
      const { data, link } = await this._call("list", "GET", `/notifications?${query}`);
      const items = (Array.isArray(data) ? data : []).filter(isNotification);
      return { items, hasMore: parseNextLink(link) !== null };
    } catch (error) {
      throw this._fail("list", error);
    }
  }

  /**
   * Make the kept list hold one category's notifications, or the archived ones (a tab of the
   * bell); reloads it. Counts stay those of everything.
   * @param {TidingsFilter} filter
   * @returns {Promise<void>}
   */
  async setFilter({ category = null, archived = false, snoozed = false } = {}) {
    /** @type {{category: string | null, archived: boolean, snoozed?: boolean}} */
    const next = { category: category || null, archived: Boolean(archived) };
    // Only when asked for, so the filter of a client that never snoozes stays as it was.
    if (snoozed) next.snoozed = true;
    if (
      next.category === this._filter.category &&
      next.archived === this._filter.archived &&
      Boolean(next.snoozed) === Boolean(this._filter.snoozed)
    ) {
      return;
    }
    this._filter = next;
    const gen = ++this._filterGen;
    this._list = new NotificationList();
    this._nextUrl = null;
    this._status = "loading";
    this._emit({ type: "state" });
    await this._refreshing?.catch(() => {});
    if (gen === this._filterGen) await this.refresh();
  }

  /**
   * Load the notifications a folded row (`group_count` > 1, with `grouped`) stands for into the
   * list, so the group can be shown unfolded. Looks through the newest unread ones (up to 500).
   * @param {string} group
   * @returns {Promise<void>}
   */
  async expandGroup(group) {
    const head = this._list.items.find((n) => n.group === group && !n.read_at);
    if (!head || !(Number(head.group_count) > 1)) return;
    const wanted = Number(head.group_count) - 1;
    let found = 0;
    let before;
    try {
      for (let page = 0; page < 5 && found < wanted; page++) {
        const query = listQuery({ limit: 100, filter: this._filter, before, unread: true });
        const { data, link } = await this._call("expandGroup", "GET", `/notifications?${query}`);
        const items = (Array.isArray(data) ? data : []).filter(isNotification);
        for (const n of items) {
          if (n.group === group && n.id !== head.id && this._list.add(n)) found += 1;
        }
        if (!parseNextLink(link) || !items.length) break;
        before = items[items.length - 1].id;
      }
    } catch (error) {
      throw this._fail("expandGroup", error);
    } finally {
      // The folded rows' group_count sum stays what the server said: the head now stands for
      // itself and the members still not found.
      const current = this._list.get(head.id);
      if (current) current.group_count = Math.max(1, wanted + 1 - found);
      this._emit({ type: "state" });
    }
  }

  /**
   * The counts (GET /notifications/unread-count); the state follows them.
   * @returns {Promise<TidingsCounts>}
   */
  async counts() {
    let count;
    try {
      ({ data: count } = await this._call("counts", "GET", "/notifications/unread-count"));
    } catch (error) {
      throw this._fail("counts", error);
    }
    const lastSeq = Number.isInteger(count?.last_seq) ? count.last_seq : 0;
    // A count taken before an arrival we already counted would undo it: the next one fixes it.
    if (lastSeq >= this._countSeq) {
      if (Number.isInteger(count?.unread)) this._unread = count.unread;
      if (Number.isInteger(count?.unseen)) this._unseen = count.unseen;
      this._categories = categoriesOf(count);
      this._countSeq = lastSeq;
      this._emit({ type: "state" });
    }
    return {
      unread: Number(count?.unread) || 0,
      unseen: Number(count?.unseen) || 0,
      last_seq: lastSeq,
      categories: categoriesOf(count),
    };
  }

  /**
   * The user's preferences (muted categories, channels).
   * @returns {Promise<TidingsPreferences>}
   */
  async preferences() {
    try {
      const { data } = await this._call("preferences", "GET", "/notifications/preferences");
      return data;
    } catch (error) {
      throw this._fail("preferences", error);
    }
  }

  /**
   * Replace the user's preferences (a missing key is its default); resolves with what the
   * server stored.
   * @param {Partial<TidingsPreferences>} preferences
   * @returns {Promise<TidingsPreferences>}
   */
  async setPreferences(preferences) {
    try {
      const { data } = await this._call(
        "setPreferences",
        "PUT",
        "/notifications/preferences",
        preferences,
      );
      return data;
    } catch (error) {
      throw this._fail("setPreferences", error);
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
    clearTimeout(this._renewTimer);
    clearTimeout(this._countsTimer ?? undefined);
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

  // --- Web Push: desktop notifications while no tab is open ----------------------------------

  /**
   * Whether this browser gets desktop notifications from tidings: "unsupported" (no service
   * worker, Push API or Notification here), "default" (never asked), "denied" (the user said
   * no: only the browser's site settings can undo it), "on" (subscribed), "off" (allowed, not
   * subscribed).
   * @param {{registration?: ServiceWorkerRegistration}} [options] the app's service worker
   *   registration (default: the one controlling this page's scope)
   * @returns {Promise<"unsupported" | "default" | "denied" | "on" | "off">}
   */
  async pushState({ registration } = {}) {
    const g = globalThis;
    if (!pushSupported(g)) return "unsupported";
    if (g.Notification.permission === "denied") return "denied";
    const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
    const subscription = reg ? await reg.pushManager.getSubscription() : null;
    if (subscription && g.Notification.permission === "granted") return "on";
    return g.Notification.permission === "default" ? "default" : "off";
  }

  /**
   * Ask for permission, subscribe this browser with the server's key and register the
   * subscription with tidings. Resolves "on"; rejects with a TidingsError (code
   * "push_unsupported", "push_no_worker", "push_denied", "push_failed", or the server's).
   * The page needs a service worker that imports tidings-sw.js (docs/away.md).
   * @param {{registration?: ServiceWorkerRegistration}} [options]
   * @returns {Promise<"on">}
   */
  async enablePush({ registration } = {}) {
    const action = "enablePush";
    try {
      const g = globalThis;
      if (!pushSupported(g)) {
        throw new TidingsError("this browser cannot show push notifications", {
          code: "push_unsupported",
          action,
        });
      }
      const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
      if (!reg) {
        throw new TidingsError("no service worker: register one that imports tidings-sw.js", {
          code: "push_no_worker",
          action,
        });
      }
      const permission = await g.Notification.requestPermission();
      if (permission !== "granted") {
        throw new TidingsError("notifications are not allowed for this site", {
          code: "push_denied",
          action,
        });
      }
      const { data } = await this._call(action, "GET", "/notifications/push/key");
      const key = base64urlBytes(String(data?.public_key ?? ""));
      let subscription = await reg.pushManager.getSubscription();
      const current = subscription?.options?.applicationServerKey;
      if (subscription && !(current && sameBytes(new Uint8Array(current), key))) {
        // Made with another server key (the key was rotated): the push service would refuse it.
        await subscription.unsubscribe();
        subscription = null;
      }
      try {
        // The browser asks its push service (FCM, autopush …). One it cannot reach may leave
        // subscribe() pending for good (Chromium with no network to FCM does): `timeout` bounds
        // it, so the user hears back.
        let timer;
        const late = new Promise((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${this._opts.timeout} ms`)),
            this._opts.timeout,
          );
        });
        try {
          subscription ??= await Promise.race([
            reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
            late,
          ]);
        } finally {
          clearTimeout(timer);
        }
      } catch (error) {
        throw new TidingsError(`the browser's push service refused: ${error?.message ?? error}`, {
          code: "push_failed",
          action,
        });
      }
      await this._call(action, "POST", "/notifications/push-subscriptions", subscription.toJSON());
      return "on";
    } catch (error) {
      throw this._fail(action, error);
    }
  }

  /**
   * Unsubscribe this browser and tell tidings to forget the subscription. Resolves "off" (also
   * when it was not subscribed); rejects with a TidingsError.
   * @param {{registration?: ServiceWorkerRegistration}} [options]
   * @returns {Promise<"off">}
   */
  async disablePush({ registration } = {}) {
    const action = "disablePush";
    try {
      const g = globalThis;
      if (!pushSupported(g)) return "off";
      const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
      const subscription = reg ? await reg.pushManager.getSubscription() : null;
      if (!subscription) return "off";
      try {
        const body = { endpoint: subscription.endpoint };
        await this._call(action, "DELETE", "/notifications/push-subscriptions", body);
      } catch (error) {
        // Already gone on the server (its push service answered 410): unsubscribe all the same.
        if (!(error instanceof TidingsError && error.code === "not_found")) throw error;
      }
      await subscription.unsubscribe();
      return "off";
    } catch (error) {
      throw this._fail(action, error);
    }
  }

  // --- start-up and leadership -----------------------------------------------------------------

  /** Load the list: on creation and on reconnect(). `_loaded` settles when it is done. */
  _start() {
    // A token the host page rendered in: exchanged for the session cookie before anything else.
    const session = this._opts.token ? this._session(this._opts.token) : Promise.resolve(true);
    this._loaded = session.then(() => this.refresh()).catch(() => {});
  }

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
          this._armRenew();
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
    } else if (m.t === "session") {
      this._onSession(m.renewAt);
    } else if (m.t === "reconnect") {
      this._start();
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

  /**
   * (Re)open the stream from `_resume`. `quiet`: a planned switch (a renewed credential) while
   * the stream works, so the connection state stays "open" instead of flashing "reconnecting".
   */
  _open({ quiet = false } = {}) {
    if (this._closed || !this._isLeader()) return;
    this._closeSource();
    clearTimeout(this._retryTimer);
    const es = new globalThis.EventSource(
      `${this._base}/notifications/stream?last_event_id=${this._resume}`,
      { withCredentials: this._opts.withCredentials },
    );
    this._source = es;
    this._armConnectTimer(es);
    if (!quiet && this._connection !== "offline") {
      this._leaderSetConnection(this._connection === "open" ? "reconnecting" : this._connection);
    }
    es.onopen = () => {
      if (es !== this._source) return;
      clearTimeout(this._connectTimer);
      this._attempt = 0;
      this._authTries = 0;
      this._alive();
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
        clearTimeout(this._connectTimer);
        this._source = null;
        this._recover();
      } else {
        // CONNECTING: the browser retries by itself after the server's `retry:`; that attempt
        // gets the same bound as ours, or a connect nobody answers would hang here for minutes.
        this._armConnectTimer(es);
        this._leaderSetConnection(
          globalThis.navigator?.onLine === false ? "offline" : "reconnecting",
        );
      }
    };
    for (const type of STREAM_EVENTS) {
      es.addEventListener(type, (e) => {
        if (es !== this._source) return;
        this._alive();
        const data = parseEventData(e.data);
        if (type === "ping") {
          const heartbeat = announcedHeartbeat(data);
          if (heartbeat !== null && heartbeat !== this._heartbeatMs) {
            this._heartbeatMs = heartbeat;
            this._startWatchdog();
          }
          return;
        }
        if (data) this._applyAndRelay(type, data);
      });
    }
  }

  /** The stream delivered something: it is open, whatever `navigator.onLine` claims. */
  _alive() {
    this._lastAlive = Date.now();
    this._leaderSetConnection("open");
  }

  _closeSource() {
    clearTimeout(this._connectTimer);
    if (this._source) {
      this._source.close();
      this._source = null;
    }
  }

  /** A connect (ours or the browser's own retry) that is not answered in time is abandoned. */
  _armConnectTimer(es) {
    clearTimeout(this._connectTimer);
    this._connectTimer = setTimeout(() => {
      if (es !== this._source || es.readyState === 1) return;
      this._closeSource();
      this._needResync = true;
      const offline = globalThis.navigator?.onLine === false;
      this._leaderSetConnection(offline ? "offline" : "reconnecting");
      this._schedule(backoffDelay(this._attempt++, this._opts.backoff));
    }, this._opts.timeout);
  }

  /** The stream was refused: learn why (a 401 means a new credential), then retry later. */
  async _recover() {
    const offline = globalThis.navigator?.onLine === false;
    this._leaderSetConnection(offline ? "offline" : "reconnecting");
    let status = 0;
    try {
      const response = await this._timed(`${this._base}/notifications/unread-count`, "GET");
      status = response.status;
      response.body?.cancel().catch(() => {});
    } catch {
      status = 0; // the network or the server is away, or did not answer in time
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
    const every = Math.max(1000, this._heartbeatMs / 2);
    this._watchdog = setInterval(() => {
      if (this._source?.readyState === 1 && this._stale()) {
        // No heartbeat: the socket died silently (sleep, network change). Reopen now.
        this._needResync = true;
        this._open();
      }
    }, every);
  }

  _stale() {
    return Date.now() - this._lastAlive > staleAfter(this._heartbeatMs);
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

  /**
   * The browser says it is offline. That is a guess (a proxy, a VPN or localhost may still
   * work): an open stream that is still delivering keeps "open", and if it really died its error
   * or the watchdog says so; only a stream that is not open is shown offline at once.
   */
  _onOffline() {
    if (this._isLeader() && this._source?.readyState === 1 && !this._stale()) return;
    this._leaderSetConnection("offline");
  }

  _leaderSetConnection(connection) {
    if (this._role === "follower") return;
    if (connection === this._connection) return;
    this._connection = connection;
    this._post({ t: "status", connection });
    this._emit({ type: "state" });
  }

  // --- renewing the credential before it expires -----------------------------------------------
  //
  // The session cookie is shared by the tabs, and so is this: the tab that put a token in the
  // cookie tells the others when it is due for renewal; only the leader renews (so each token is
  // renewed once) and keeps the stream on the newest credential.

  /** A token went into the cookie (this tab or another): when to renew it, and a stream on it. */
  _onSession(renewAt) {
    this._renewAt = renewAt;
    this._armRenew();
    // The open stream still runs on the previous credential and would end at its expiry (a gap
    // of the server's `retry:`): switch to a stream on the new one now.
    if (this._isLeader()) this._reopenQuietly();
  }

  _armRenew() {
    clearTimeout(this._renewTimer);
    this._renewTimer = null;
    const at = this._renewAt;
    if (this._closed || !this._isLeader() || typeof at !== "number") return;
    if (typeof this._opts.getToken !== "function") return;
    this._renewTimer = setTimeout(() => this._renew(), Math.max(0, at - Date.now()));
  }

  async _renew() {
    this._renewTimer = null;
    this._renewAt = null;
    // Success goes through _session (a new renewal time, a stream on the new credential);
    // failure leaves the 401 path at expiry.
    if (!this._closed && this._isLeader()) await this._refreshCredential();
  }

  _reopenQuietly() {
    if (this._source?.readyState === 1) this._open({ quiet: true });
  }

  /** archive() and unarchive(): optimistic in this tab, the event tells the others. */
  async _archive(action, ids) {
    // Archiving takes rows out of the default list; unarchiving takes them out of the archive.
    const leaving = (action === "archive") !== this._filter.archived;
    const removed = leaving ? this._list.removeAll(ids) : [];
    if (removed.length) this._emit({ type: "state" });
    try {
      const { data } = await this._call(action, "POST", `/notifications/${action}`, { ids });
      const type = action === "archive" ? "notifications-archived" : "notifications-unarchived";
      this._applyAndRelay(type, {
        ids: Array.isArray(data?.ids) ? data.ids : ids,
        unread: data?.unread,
        unseen: data?.unseen,
      });
    } catch (error) {
      for (const n of removed) this._list.add(n);
      throw this._fail(action, error);
    }
  }

  /** A live arrival, in its category's counts (totals are counted by the caller). */
  _countInCategory(n) {
    if (!n.category || (n.read_at && n.seen_at)) return;
    const c = (this._categories[n.category] ??= { unread: 0, unseen: 0 });
    if (!n.read_at) c.unread += 1;
    if (!n.seen_at) c.unseen += 1;
  }

  /**
   * The events carry the totals, not the per-category counts: ask the server for those, once for
   * a burst of events.
   */
  _scheduleCounts() {
    if (this._countsTimer !== null || this._closed) return;
    this._countsTimer = setTimeout(() => {
      this._countsTimer = null;
      if (!this._closed) this.counts().catch(() => {});
    }, 50);
  }

  _setCounts(data) {
    if (Number.isInteger(data.unread)) this._unread = data.unread;
    if (Number.isInteger(data.unseen)) this._unseen = data.unseen;
    this._countSeq = Math.max(this._countSeq, this._resume);
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
      const counted = data.id > this._countSeq;
      if (counted) {
        if (!data.read_at) this._unread += 1;
        if (!data.seen_at) this._unseen += 1;
        this._countInCategory(data);
        this._countSeq = data.id;
      }
      // An old one (before what "load more" reached) stays out, so the list has no holes; one
      // outside the filter (another tab of the bell) is counted, not listed.
      const older = this._nextUrl !== null && data.id < this._list.oldest;
      if (!older && matchesFilter(data, this._filter)) {
        this._list.add(data);
        if (this._list.trim(this._cap)) {
          const query = listQuery({
            limit: this._opts.pageSize,
            filter: this._filter,
            grouped: this._opts.grouped,
            before: this._list.oldest,
          });
          this._nextUrl = `/notifications?${query}`;
        }
      } else if (!counted) return;
      this._emit({ type: "notification", notification: { ...data } });
    } else if (type === "notifications-read") {
      this._list.markRead({ ids: data.ids, upTo: data.up_to }, nowIso());
      this._setCounts({ unread: data.unread });
      this._scheduleCounts();
      this._emit({ type: "state" });
    } else if (type === "notification-deleted") {
      this._list.remove(data.id);
      this._setCounts({ unread: data.unread, unseen: data.unseen });
      this._scheduleCounts();
      this._emit({ type: "state" });
    } else if (type === "notifications-seen") {
      if (!Number.isSafeInteger(data.up_to)) return;
      this._list.markSeen(data.up_to, nowIso());
      this._setCounts({ unseen: data.unseen });
      this._scheduleCounts();
      this._emit({ type: "seen", upTo: data.up_to, unseen: this._unseen });
    } else if (type === "notifications-archived" || type === "notifications-unarchived") {
      const ids = Array.isArray(data.ids) ? data.ids.filter(Number.isSafeInteger) : [];
      const archived = type === "notifications-archived";
      this._setCounts(data);
      this._scheduleCounts();
      if (archived !== this._filter.archived) {
        this._list.removeAll(ids); // they left this view
      } else if (ids.some((id) => !this._list.has(id))) {
        // They joined this view, and only the server has them as they are now.
        this.refresh().catch(() => {});
      }
      this._emit({ type: archived ? "archived" : "unarchived", ids });
    } else if (type === "notifications-snoozed") {
      const ids = Array.isArray(data.ids) ? data.ids.filter(Number.isSafeInteger) : [];
      this._setCounts(data);
      this._scheduleCounts();
      if (!this._filter.snoozed) this._list.removeAll(ids);
      else if (ids.some((id) => !this._list.has(id))) this.refresh().catch(() => {});
      this._emit({ type: "snoozed", ids, until: String(data.until ?? "") });
    } else if (type === "notifications-unsnoozed") {
      const back = (Array.isArray(data.notifications) ? data.notifications : []).filter(
        isNotification,
      );
      this._setCounts(data);
      this._scheduleCounts();
      // Back in the inbox, with their own ids (seq), unread and unseen; out of the snoozed list.
      this._list.removeAll(back.map((n) => n.id));
      for (const n of back) {
        const older = this._nextUrl !== null && n.id < this._list.oldest;
        if (!older && matchesFilter(n, this._filter)) this._list.add(n);
      }
      this._emit({ type: "unsnoozed", notifications: back.map((n) => ({ ...n })) });
    } else if (type === "notifications-expired") {
      const ids = Array.isArray(data.ids) ? data.ids.filter(Number.isSafeInteger) : [];
      this._list.removeAll(ids);
      this._setCounts(data);
      this._scheduleCounts();
      this._emit({ type: "expired", ids });
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

  /** Record and emit a failure; returns the TidingsError for the caller to throw. */
  _fail(action, error) {
    const failure = toTidingsError(error, action);
    this._error = describe(failure);
    this._emit({ type: "error", action, error: failure });
    return failure;
  }

  // --- HTTP ------------------------------------------------------------------------------------

  _init(method, body, signal) {
    const init = {
      method,
      signal,
      credentials: this._opts.withCredentials ? "include" : "same-origin",
      headers: { accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return init;
  }

  /**
   * fetch, abandoned after `timeout` ms (a server or proxy that never answers must not hang a
   * call); `read` runs within the same bound, so a body that stalls is abandoned too.
   */
  async _timed(url, method, body, read = async (response) => response) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this._opts.timeout);
    try {
      return await read(await this._fetch(url, this._init(method, body, abort.signal)));
    } catch (error) {
      if (abort.signal.aborted) {
        throw new TidingsError(`no answer within ${this._opts.timeout} ms`, { code: "timeout" });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** One REST call: `{data, link}` on 2xx, else a TidingsError; a 401 renews and retries once. */
  async _call(action, method, path, body) {
    const url = new URL(path, `${this._base}/`).href;
    const read = async (response) => {
      const link = response.headers.get("link");
      if (response.ok) {
        const data = response.status === 204 ? null : await response.json();
        return { ok: true, status: response.status, data, link };
      }
      let problem = null;
      try {
        problem = await response.json();
      } catch {
        // not JSON: the status says enough
      }
      return { ok: false, status: response.status, data: problem, link };
    };
    let result;
    try {
      result = await this._timed(url, method, body, read);
      if (result.status === 401 && (await this._refreshCredential())) {
        result = await this._timed(url, method, body, read);
      }
    } catch (error) {
      throw toTidingsError(error, action);
    }
    if (!result.ok) {
      const problem = result.data;
      const detail = typeof problem?.detail === "string" ? problem.detail : problem?.error;
      throw new TidingsError(detail || `HTTP ${result.status}`, {
        status: result.status,
        code: typeof problem?.error === "string" ? problem.error : "http",
        action,
      });
    }
    return result;
  }

  /** POST /notifications/session: the token becomes the HttpOnly cookie EventSource sends. */
  async _session(token) {
    try {
      const url = `${this._base}/notifications/session`;
      const response = await this._timed(url, "POST", { token });
      response.body?.cancel().catch(() => {});
      if (response.ok) {
        const delay = renewDelay(token);
        const renewAt = delay === null ? null : Date.now() + delay;
        this._post({ t: "session", renewAt });
        this._onSession(renewAt);
      }
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

/** The per-category counts of an unread-count answer (malformed entries left out). */
function categoriesOf(count) {
  /** @type {Record<string, {unread: number, unseen: number}>} */
  const out = {};
  const given = count?.categories;
  if (given === null || typeof given !== "object") return out;
  for (const [name, c] of Object.entries(given)) {
    if (Number.isInteger(c?.unread) && Number.isInteger(c?.unseen)) {
      out[name] = { unread: c.unread, unseen: c.unseen };
    }
  }
  return out;
}

function toTidingsError(error, action) {
  if (error instanceof TidingsError) {
    if (!error.action) error.action = action;
    return error;
  }
  if (error instanceof SyntaxError) {
    return new TidingsError("the server's answer was not JSON", { code: "bad_response", action });
  }
  return new TidingsError(error?.message || "network error", { code: "network", action });
}

// --- Web Push helpers ------------------------------------------------------------------------

function pushSupported(g) {
  return Boolean(g.Notification && g.navigator?.serviceWorker && g.PushManager);
}

/** The bytes of base64url text (the server's VAPID key), for `applicationServerKey`. */
export function base64urlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function describe(error) {
  if (error.status === 401) return "unauthorized";
  if (error.status === 0) return "network";
  return error.message;
}

/**
 * Create a client (see TidingsOptions; an unknown option throws a TypeError).
 * @param {TidingsOptions} [options]
 * @returns {Tidings}
 */
export function createTidings(options = {}) {
  return new Tidings(options);
}
