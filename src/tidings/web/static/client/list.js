// The kept list of notifications (newest first, one per id) and the queries that fill it.
// Pure (it runs in Node).

import { isNotification } from "./wire.js";

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

/** The per-category counts of an unread-count answer (malformed entries left out). */
export function categoriesOf(count) {
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

/** Now, as the server writes times (read_at, seen_at set optimistically). */
export const nowIso = () => new Date().toISOString();

/**
 * @param {Record<string, {unread: number, unseen: number}>} categories
 * @returns {Record<string, {unread: number, unseen: number}>}
 */
export function structuredCopy(categories) {
  /** @type {Record<string, {unread: number, unseen: number}>} */
  const out = {};
  for (const [name, counts] of Object.entries(categories)) out[name] = { ...counts };
  return out;
}
