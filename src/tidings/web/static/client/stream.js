// The transport (leader only): one EventSource, its reconnects with backoff, a watchdog for a
// stream that died silently, and the credential renewed when the server refused it.

import { parseEventData } from "./wire.js";

/** @typedef {import("./client.js").Tidings} Tidings */

const STREAM_EVENTS = [
  "new-notification",
  "notifications-read",
  "notification-deleted",
  "notifications-seen",
  "notifications-archived",
  "notifications-unarchived",
  "notifications-snoozed",
  "notifications-unsnoozed",
  "notifications-expired",
  "reset",
  "ping",
];

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

/** The stream of one client; only the leading (or solo) tab opens it. */
export class Stream {
  /**
   * @param {Tidings} client
   * @param {number} heartbeatMs the heartbeat we were told, until the stream announces its own
   */
  constructor(client, heartbeatMs) {
    this._client = client;
    /** @type {EventSource | null} */
    this.source = null;
    this.attempt = 0;
    this._authTries = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._retryTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._connectTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._watchdog = undefined;
    this._lastAlive = 0;
    this._heartbeatMs = heartbeatMs;
    /** Read marks and deletions made while the stream was down are not replayed: reload. */
    this.needResync = false;
  }

  /**
   * (Re)open the stream from the client's resume point. `quiet`: a planned switch (a renewed
   * credential) while the stream works, so the connection state stays "open" instead of
   * flashing "reconnecting".
   */
  open({ quiet = false } = {}) {
    const c = this._client;
    if (c._closed || !c._isLeader()) return;
    this._closeSource();
    clearTimeout(this._retryTimer);
    const es = new globalThis.EventSource(
      `${c._base}/notifications/stream?last_event_id=${c._resume}`,
      { withCredentials: c._opts.withCredentials },
    );
    this.source = es;
    this._armConnectTimer(es);
    if (!quiet && c._connection !== "offline") {
      c._leaderSetConnection(c._connection === "open" ? "reconnecting" : c._connection);
    }
    es.onopen = () => {
      if (es !== this.source) return;
      clearTimeout(this._connectTimer);
      this.attempt = 0;
      this._authTries = 0;
      this._alive();
      this._startWatchdog();
      if (this.needResync) {
        // Read marks and deletions made while we were away are not replayed: reload the list.
        this.needResync = false;
        c._post({ t: "resync" });
        c.refresh().catch(() => {});
      }
    };
    es.onerror = () => {
      if (es !== this.source) return;
      this.needResync = true;
      if (es.readyState === 2 /* CLOSED: a non-200 answer; EventSource gives up */) {
        clearTimeout(this._connectTimer);
        this.source = null;
        this._recover();
      } else {
        // CONNECTING: the browser retries by itself after the server's `retry:`; that attempt
        // gets the same bound as ours, or a connect nobody answers would hang here for minutes.
        this._armConnectTimer(es);
        c._leaderSetConnection(globalThis.navigator?.onLine === false ? "offline" : "reconnecting");
      }
    };
    for (const type of STREAM_EVENTS) {
      es.addEventListener(type, (e) => {
        if (es !== this.source) return;
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
        if (data) c._applyAndRelay(type, data);
      });
    }
  }

  /** The stream delivered something: it is open, whatever `navigator.onLine` claims. */
  _alive() {
    this._lastAlive = Date.now();
    this._client._leaderSetConnection("open");
  }

  _closeSource() {
    clearTimeout(this._connectTimer);
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  /**
   * A connect (ours or the browser's own retry) that is not answered in time is abandoned.
   * @param {EventSource} es
   */
  _armConnectTimer(es) {
    clearTimeout(this._connectTimer);
    this._connectTimer = setTimeout(() => {
      if (es !== this.source || es.readyState === 1) return;
      this._closeSource();
      this.needResync = true;
      const offline = globalThis.navigator?.onLine === false;
      this._client._leaderSetConnection(offline ? "offline" : "reconnecting");
      this._schedule(backoffDelay(this.attempt++, this._client._opts.backoff));
    }, this._client._opts.timeout);
  }

  /** The stream was refused: learn why (a 401 means a new credential), then retry later. */
  async _recover() {
    const c = this._client;
    const offline = globalThis.navigator?.onLine === false;
    c._leaderSetConnection(offline ? "offline" : "reconnecting");
    let status = 0;
    try {
      const response = await c._http.timed(`${c._base}/notifications/unread-count`, "GET");
      status = response.status;
      response.body?.cancel().catch(() => {});
    } catch {
      status = 0; // the network or the server is away, or did not answer in time
    }
    if (c._closed || !c._isLeader() || this.source) return;
    if (status === 401) {
      // A fresh credential is tried at once the first time; after that, with the backoff.
      const refreshed = await c._credentials.refresh();
      if (c._closed || !c._isLeader() || this.source) return;
      if (refreshed && this._authTries++ === 0) {
        this.open();
        return;
      }
      if (!refreshed) c._leaderSetConnection("unauthorized");
    }
    this._schedule(backoffDelay(this.attempt++, c._opts.backoff));
  }

  /** @param {number} delay */
  _schedule(delay) {
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this.open(), delay);
  }

  _startWatchdog() {
    clearInterval(this._watchdog);
    const every = Math.max(1000, this._heartbeatMs / 2);
    this._watchdog = setInterval(() => {
      if (this.source?.readyState === 1 && this.stale()) {
        // No heartbeat: the socket died silently (sleep, network change). Reopen now.
        this.needResync = true;
        this.open();
      }
    }, every);
  }

  stale() {
    return Date.now() - this._lastAlive > staleAfter(this._heartbeatMs);
  }

  /**
   * `online`, a tab made visible, or a follower's poke: reopen a stream that may be dead.
   * @param {string} why
   */
  wake(why) {
    const c = this._client;
    if (c._closed) return;
    if (!c._isLeader()) {
      c._post({ t: "poke" });
      return;
    }
    if (why === "online" || !this.source || this.stale()) {
      this.attempt = 0;
      this.needResync = true;
      this.open();
    }
  }

  /**
   * The browser says it is offline. That is a guess (a proxy, a VPN or localhost may still
   * work): an open stream that is still delivering keeps "open", and if it really died its error
   * or the watchdog says so; only a stream that is not open is shown offline at once.
   */
  onOffline() {
    const c = this._client;
    if (c._isLeader() && this.source?.readyState === 1 && !this.stale()) return;
    c._leaderSetConnection("offline");
  }

  /** Switch to a stream on a new credential, if one is open. */
  reopenQuietly() {
    if (this.source?.readyState === 1) this.open({ quiet: true });
  }

  close() {
    this._closeSource();
    clearTimeout(this._retryTimer);
    clearInterval(this._watchdog);
  }
}
