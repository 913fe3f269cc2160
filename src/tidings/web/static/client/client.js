// The client object createTidings() returns: its public API, the list state and how the
// server's events change it. The parts it is made of each have their module: the stream
// (stream.js), tab leadership (tabs.js), the credential (credentials.js), REST (http.js), the
// list (list.js) and Web Push (push.js).

import { TidingsError, describe, toTidingsError } from "./errors.js";
import { checkOptions } from "./options.js";
import { isNotification, parseNextLink } from "./wire.js";
import {
  NotificationList,
  categoriesOf,
  listQuery,
  matchesFilter,
  nowIso,
  structuredCopy,
} from "./list.js";
import { Http } from "./http.js";
import { Credentials } from "./credentials.js";
import { Stream } from "./stream.js";
import { Tabs } from "./tabs.js";
import { disablePush, enablePush, pushState } from "./push.js";

/** @typedef {import("../tidings.js").TidingsOptions} TidingsOptions */
/** @typedef {import("../tidings.js").TidingsState} TidingsState */
/** @typedef {import("../tidings.js").TidingsChange} TidingsChange */
/** @typedef {import("../tidings.js").TidingsFilter} TidingsFilter */
/** @typedef {import("../tidings.js").TidingsCounts} TidingsCounts */
/** @typedef {import("../tidings.js").TidingsPreferences} TidingsPreferences */
/** @typedef {import("../tidings.js").Notification} Notification */

/**
 * The client: made by `createTidings()`. Its methods that talk to the server resolve when the
 * server agreed and reject with a TidingsError (also emitted as an `error` change) when not.
 */
export class Tidings {
  /** @param {TidingsOptions} options */
  constructor(options) {
    const g = globalThis;
    const opts = checkOptions(options);
    const base = new URL(opts.baseUrl || "/", g.location?.href ?? "http://localhost/");
    this._base = base.href.replace(/\/$/, "");
    const crossOrigin = g.location ? base.origin !== g.location.origin : false;
    this._opts = { withCredentials: crossOrigin, ...opts };
    this._list = new NotificationList();
    this._unread = 0;
    this._unseen = 0;
    /** @type {Record<string, {unread: number, unseen: number}>} */
    this._categories = {};
    /** @type {{category: string | null, archived: boolean, snoozed?: boolean}} */
    this._filter = { category: opts.category || null, archived: false };
    this._filterGen = 0; // bumped by setFilter(): a reload begun before it is discarded
    this._cap = opts.maxItems; // the most kept from live arrivals; loadMore() raises it
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._countsTimer = null;
    this._countSeq = 0; // the newest seq the unread count already includes
    this._resume = 0; // where the stream resumes: everything up to here is in hand
    this._newestSeen = 0; // "mark all read" marks up to here
    /** @type {TidingsState["status"]} */
    this._status = "loading";
    /** @type {string | null} */
    this._error = null;
    /** @type {TidingsState["connection"]} */
    this._connection = "connecting";
    /** @type {TidingsState["role"]} */
    this._role = "starting";
    /** @type {string | null} */
    this._nextUrl = null;
    /** @type {Promise<void> | null} */
    this._loadingMore = null;
    /** @type {Set<(state: TidingsState, change: TidingsChange) => void>} */
    this._listeners = new Set();
    this._closed = false;
    /** @type {Promise<void> | null} */
    this._refreshing = null;
    this._credentials = new Credentials(this, opts.getToken);
    this._http = new Http({
      base: this._base,
      fetch: opts.fetch ?? g.fetch.bind(g),
      timeout: this._opts.timeout,
      withCredentials: Boolean(this._opts.withCredentials),
      renew: () => this._credentials.refresh(),
    });
    // Until the stream announces it (in its pings), the heartbeat is the one we were told.
    this._stream = new Stream(this, this._opts.heartbeat * 1000);
    /** @type {TidingsState} */
    this.state = snapshot(this);

    this._tabs = new Tabs(`tidings:${this._base}`, Boolean(this._opts.share), (m) =>
      this._onMessage(m),
    );
    this._onWindow = {
      online: () => this._stream.wake("online"),
      offline: () => this._stream.onOffline(),
      visibilitychange: () => {
        if (g.document?.visibilityState === "visible") this._stream.wake("visible");
      },
    };
    g.addEventListener?.("online", this._onWindow.online);
    g.addEventListener?.("offline", this._onWindow.offline);
    g.document?.addEventListener("visibilitychange", this._onWindow.visibilitychange);

    this._start();
    if (this._tabs.shared) this._elect();
    else {
      this._role = "solo";
      this._loaded.then(() => this._stream.open());
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
        const { data: count } = await this._http.call(
          "refresh",
          "GET",
          "/notifications/unread-count",
        );
        const query = listQuery({
          limit: this._opts.pageSize,
          filter: this._filter,
          grouped: this._opts.grouped,
        });
        const { data: page, link } = await this._http.call(
          "refresh",
          "GET",
          `/notifications?${query}`,
        );
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
      const { data } = await this._http.call("markRead", "POST", "/notifications/read", {
        ids: wanted,
      });
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
      const { data } = await this._http.call("markAllRead", "POST", "/notifications/read", body);
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
      await this._http.call("delete", "DELETE", `/notifications/${id}`);
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
        const { data: page, link } = await this._http.call("loadMore", "GET", this._nextUrl);
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
      const { data } = await this._http.call("markSeen", "POST", "/notifications/seen", {
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
      const { data, link } = await this._http.call("list", "GET", `/notifications?${query}`);
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
        const { data, link } = await this._http.call(
          "expandGroup",
          "GET",
          `/notifications?${query}`,
        );
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
      ({ data: count } = await this._http.call("counts", "GET", "/notifications/unread-count"));
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
      const { data } = await this._http.call("preferences", "GET", "/notifications/preferences");
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
      const { data } = await this._http.call(
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
    this._stream.close();
    this._credentials.close();
    clearTimeout(this._countsTimer ?? undefined);
    this._tabs.close();
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
    return pushState(registration);
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
    try {
      return await enablePush(this._http, this._opts.timeout, registration);
    } catch (error) {
      throw this._fail("enablePush", error);
    }
  }

  /**
   * Unsubscribe this browser and tell tidings to forget the subscription. Resolves "off" (also
   * when it was not subscribed); rejects with a TidingsError.
   * @param {{registration?: ServiceWorkerRegistration}} [options]
   * @returns {Promise<"off">}
   */
  async disablePush({ registration } = {}) {
    try {
      return await disablePush(this._http, registration);
    } catch (error) {
      throw this._fail("disablePush", error);
    }
  }

  // --- start-up and leadership -----------------------------------------------------------------

  /** Load the list: on creation and on reconnect(). `_loaded` settles when it is done. */
  _start() {
    // A token the host page rendered in: exchanged for the session cookie before anything else.
    const token = this._opts.token;
    const session = token ? this._credentials.session(token) : Promise.resolve(true);
    /** @type {Promise<void>} */
    this._loaded = session.then(() => this.refresh()).catch(() => {});
  }

  _elect() {
    this._role = "follower";
    this._post({ t: "hello" });
    this._tabs.elect(
      () => {
        this._role = "leader";
        this._credentials.arm();
        this._emit({ type: "state" });
        this._loaded.then(() => this._stream.open());
      },
      () => this._closed,
    );
    this._emit({ type: "state" });
  }

  /** @param {object} message to the other tabs */
  _post(message) {
    this._tabs.post(message);
  }

  /** What another tab posted (or reconnect() in this one). @param {any} m */
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
      this._stream.wake("poke");
    } else if (m.t === "resync") {
      this.refresh().catch(() => {});
    } else if (m.t === "session") {
      this._credentials.onSession(m.renewAt);
    } else if (m.t === "reconnect") {
      this._start();
      if (this._isLeader()) {
        this._stream.attempt = 0;
        this._loaded.then(() => this._stream.open());
      }
    }
  }

  _isLeader() {
    return this._role === "leader" || this._role === "solo";
  }

  /**
   * One REST call (http.js): the bells ask the push key with it, without an `error` change.
   * @param {string} action
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  _call(action, method, path, body) {
    return this._http.call(action, method, path, body);
  }

  /** @param {TidingsState["connection"]} connection the stream's, told to every tab */
  _leaderSetConnection(connection) {
    if (this._role === "follower") return;
    if (connection === this._connection) return;
    this._connection = connection;
    this._post({ t: "status", connection });
    this._emit({ type: "state" });
  }

  /** archive() and unarchive(): optimistic in this tab, the event tells the others. */
  async _archive(action, ids) {
    // Archiving takes rows out of the default list; unarchiving takes them out of the archive.
    const leaving = (action === "archive") !== this._filter.archived;
    const removed = leaving ? this._list.removeAll(ids) : [];
    if (removed.length) this._emit({ type: "state" });
    try {
      const { data } = await this._http.call(action, "POST", `/notifications/${action}`, { ids });
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
