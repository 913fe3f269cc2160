// tidings.js: the browser client for tidings (https://… your tidings server /static/tidings.js).
//
// A dependency-free ES module. One `createTidings()` per page keeps a list of the user's
// notifications and their unread count in sync with the server. All tabs of a browser share ONE
// stream: the tab holding a Web Lock is the leader, opens the EventSource and relays what it
// receives to the other tabs over a BroadcastChannel; when it closes, the next tab waiting on the
// lock takes over at once. Everything else (REST calls, the list) is per tab.
//
// This file is the public API; the code is in ./client/ (a module per part, see architecture.md).
// Nothing there touches browser globals at import time, so the pure helpers run in Node.
//
// Failure convention: every method that talks to the server returns a promise that resolves when
// the server agreed and rejects with a `TidingsError` when it did not; the same error is also
// emitted to subscribers as a change `{type: "error", action, error}`, so a UI can render failures
// from `subscribe()` alone and still `await` a single call.

import { Tidings as Client } from "./client/client.js";
import { TidingsError } from "./client/errors.js";

export { TidingsError };
export { checkOptions } from "./client/options.js";
export { jwtClaims, renewDelay } from "./client/credentials.js";
export { announcedHeartbeat, backoffDelay, staleAfter } from "./client/stream.js";
export { isNotification, parseEventData, parseNextLink, safeLink } from "./client/wire.js";
export { NotificationList, listQuery, matchesFilter } from "./client/list.js";
export { base64urlBytes } from "./client/push.js";

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

/**
 * The client `createTidings()` returns (a type only: make one with `createTidings()`).
 * @typedef {import("./client/client.js").Tidings} Tidings
 */

/**
 * Create a client (see TidingsOptions; an unknown option throws a TypeError).
 * @param {TidingsOptions} [options]
 * @returns {Tidings}
 */
export function createTidings(options = {}) {
  return new Client(options);
}
