// bell-core.js: what <tidings-bell> and the Vue bell share. Both draw the same `BellView`, made
// here from the tidings.js client's state, and call the same actions; only the drawing differs.
//
// Nothing here touches browser globals at import time, so the pure helpers run in Node.

import { safeLink } from "./tidings.js";
import { format, initials, pickLocale, relativeTime, stringsFor } from "./bell-strings.js";

export { pickLocale };

/** @typedef {import("./tidings.js").Notification} Notification */
/** @typedef {import("./tidings.js").TidingsState} TidingsState */
/** @typedef {import("./tidings.js").TidingsChange} TidingsChange */
/** @typedef {import("./bell-strings.js").BellStrings} BellStrings */

/**
 * A row of the list after folding: a notification on its own, a folded group (its newest
 * unread notification stands for `count`), or a member shown under its unfolded group.
 * @typedef {{kind: "item" | "member", n: Notification}
 *   | {kind: "group", n: Notification, count: number, expanded: boolean}} FoldedRow
 */

/**
 * Fold unread notifications sharing a `group` into their newest: its `count` is the sum of the
 * members' `group_count` (a row the server already folded stands for several; 1 otherwise).
 * An expanded group's members follow its head. Read ones are never folded.
 * @param {Notification[]} items newest first
 * @param {Set<string>} [expanded] the groups shown unfolded
 * @returns {FoldedRow[]}
 */
export function foldRows(items, expanded = new Set()) {
  /** @type {Map<string, {members: Notification[], count: number}>} */
  const groups = new Map();
  for (const n of items) {
    if (!n.group || n.read_at) continue;
    let g = groups.get(n.group);
    if (!g) groups.set(n.group, (g = { members: [], count: 0 }));
    g.members.push(n);
    g.count += Number(n.group_count) > 1 ? Number(n.group_count) : 1;
  }
  /** @type {FoldedRow[]} */
  const rows = [];
  for (const n of items) {
    const g = n.group && !n.read_at ? groups.get(n.group) : undefined;
    if (!g || g.count <= 1) {
      rows.push({ kind: "item", n });
    } else if (g.members[0] === n) {
      const open = expanded.has(/** @type {string} */ (n.group));
      rows.push({ kind: "group", n, count: g.count, expanded: open });
      if (open) for (const m of g.members.slice(1)) rows.push({ kind: "member", n: m });
    }
  }
  return rows;
}

/**
 * The tabs: "All" first, then each category that has notifications (counted by the server, or
 * in the list, or shown before), alphabetically, with its unread count.
 * @param {{unread: number, categories: Record<string, {unread: number, unseen: number}>}} counts
 * @param {Iterable<string>} known categories seen in the list or earlier
 * @returns {{category: string | null, unread: number}[]}
 */
export function tabsOf(counts, known) {
  const names = new Set(Object.keys(counts.categories));
  for (const name of known) if (name) names.add(name);
  return [
    { category: null, unread: counts.unread },
    ...[...names].sort().map((category) => ({
      category,
      unread: counts.categories[category]?.unread ?? 0,
    })),
  ];
}

/**
 * Where a key moves the focus in the list of `count` rows, the focus being on row `at` (-1: not
 * on a row): a row index, "bell" (the bell button), or null (the key is not ours).
 * @param {string} key
 * @param {number} count
 * @param {number} at
 * @returns {number | "bell" | null}
 */
export function listKeyTarget(key, count, at) {
  if (!count) return null;
  if (key === "ArrowDown") return at < 0 ? 0 : Math.min(count - 1, at + 1);
  if (key === "ArrowUp") return at === 0 ? "bell" : at < 0 ? count - 1 : at - 1;
  if (key === "Home" && at >= 0) return 0;
  if (key === "End" && at >= 0) return count - 1;
  return null;
}

/**
 * How far (px) to move the open panel, which hangs from the bell's right edge, so it stays on a
 * viewport `width` wide (WCAG 1.4.10: at 320 px a bell left of the right edge pushed it out past
 * the left): right when its left edge is off screen, left when its right edge is.
 * @param {number} left the panel's left edge
 * @param {number} right its right edge
 * @param {number} width the viewport's width
 * @param {number} [margin]
 * @returns {number}
 */
export function panelShift(left, right, width, margin = 8) {
  if (left < margin) return margin - left;
  if (right > width - margin) return Math.max(margin - left, width - margin - right);
  return 0;
}

/**
 * The ARIA tabs pattern: the tab that Left/Right (wrapping round), Home or End move to from tab
 * `at` of `count`, or null (not such a key, or the focus is not on a tab).
 * @param {string} key
 * @param {number} count
 * @param {number} at
 * @returns {number | null}
 */
export function tabKeyTarget(key, count, at) {
  if (!count || at < 0) return null;
  if (key === "ArrowRight") return (at + 1) % count;
  if (key === "ArrowLeft") return (at - 1 + count) % count;
  if (key === "Home") return 0;
  if (key === "End") return count - 1;
  return null;
}

/**
 * The ARIA menu pattern: the item that Down/Up (wrapping round), Home or End move to from item
 * `at` of `count`, or null (not such a key).
 * @param {string} key
 * @param {number} count
 * @param {number} at
 * @returns {number | null}
 */
export function menuKeyTarget(key, count, at) {
  if (!count) return null;
  if (key === "ArrowDown") return at < 0 ? 0 : (at + 1) % count;
  if (key === "ArrowUp") return at < 0 ? count - 1 : (at - 1 + count) % count;
  if (key === "Home") return 0;
  if (key === "End") return count - 1;
  return null;
}

/** The snooze presets a row's menu offers, in order. */
export const SNOOZE_PRESETS = Object.freeze(["hour", "tomorrow", "nextWeek"]);

/**
 * When a snooze preset ends, in the user's time zone (the browser's): "hour" an hour from now,
 * "tomorrow" tomorrow at 9:00, "nextWeek" next Monday at 9:00 (a week today on a Monday).
 * @param {string} preset one of SNOOZE_PRESETS
 * @param {Date} [now]
 * @returns {Date}
 */
export function snoozeUntil(preset, now = new Date()) {
  if (preset === "hour") return new Date(now.getTime() + 3600_000);
  const at = new Date(now.getTime());
  if (preset === "tomorrow") at.setDate(at.getDate() + 1);
  else if (preset === "nextWeek") at.setDate(at.getDate() + ((8 - at.getDay()) % 7 || 7));
  else throw new RangeError(`no snooze preset ${preset}`);
  at.setHours(9, 0, 0, 0);
  return at;
}

/**
 * A time as ISO 8601 with the local offset ("2026-12-08T09:00:00+01:00"), as the server wants
 * `until`: the user's 9:00 stays 9:00 in what the server logs and returns.
 * @param {Date} date
 * @returns {string}
 */
export function isoWithOffset(date) {
  const pad = (/** @type {number} */ n) => String(Math.abs(n)).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset < 0 ? "-" : "+";
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`
  );
}

/**
 * A category's name on its tab: the publisher's label (`labels[category]`: a string, or one per
 * language {"en": …, "de": …}), else the strings' `category:<name>`, else the key made readable
 * ("pull_requests" → "Pull requests").
 * @param {string} category
 * @param {Record<string, string | Record<string, string>> | null | undefined} labels
 * @param {Record<string, unknown>} strings
 * @param {string} locale
 * @returns {string}
 */
export function categoryLabel(category, labels, strings, locale) {
  const given = labels?.[category];
  if (typeof given === "string" && given) return given;
  if (given && typeof given === "object") {
    const lang = locale.toLowerCase();
    const text = given[locale] ?? given[lang] ?? given[lang.split("-")[0]] ?? given.en;
    if (typeof text === "string" && text) return text;
  }
  const table = strings[`category:${category}`];
  if (typeof table === "string" && table) return table;
  const words = category.replace(/[_-]+/g, " ").trim();
  return words ? words[0].toLocaleUpperCase(locale) + words.slice(1) : category;
}

/**
 * Whether a list filter is the snoozed view (`?snoozed=1`).
 * @param {object} filter
 * @returns {boolean}
 */
export function isSnoozedView(filter) {
  return Boolean(/** @type {{snoozed?: boolean}} */ (filter).snoozed);
}

/** A message longer than this is clamped to three lines, with "Show all". */
export const CLAMP_CHARS = 140;

/**
 * Where the focus goes when row `id` leaves (deleted, archived): the next row, else the
 * previous one, else null (the bell button).
 * @param {number[]} ids the rows in order
 * @param {number} id
 * @returns {number | null}
 */
export function neighbourOf(ids, id) {
  const at = ids.indexOf(id);
  if (at < 0) return null;
  return ids[at + 1] ?? ids[at - 1] ?? null;
}

/**
 * What the shared keyboard handler needs of a bell's DOM.
 * @typedef {object} BellKeyboardUI
 * @property {boolean} open the panel is open
 * @property {Element | null} active the focused element (in the shadow root for the element)
 * @property {HTMLElement} bell the bell button
 * @property {HTMLElement[]} rows the rows, in order
 * @property {HTMLElement[]} tabs the tabs, in order
 * @property {{button: HTMLElement, items: HTMLElement[]} | null} menu the open row menu
 * @property {() => void} close close the panel, the focus back on the bell
 * @property {() => void} closeMenu close the row menu (the bell then focuses its button)
 * @property {(button: HTMLElement, focus: "first" | "last") => void} openMenu
 * @property {(category: string | null) => void} selectTab
 * @property {(id: number) => void} activate the row was chosen (Enter)
 */

/**
 * The keyboard of both bells (one handler, called from each bell's keydown listener): Escape
 * closes the row menu, else the panel; the menu (ARIA menu button pattern), the tabs (ARIA tabs)
 * and the list (Up/Down/Home/End over the rows, Enter on a row) move the focus.
 * @param {KeyboardEvent} e
 * @param {BellKeyboardUI} ui
 */
export function bellKeydown(e, ui) {
  if (!ui.open) return;
  const active = /** @type {HTMLElement | null} */ (ui.active);
  const role = active?.getAttribute("role");
  const menu = ui.menu;
  if (menu && (e.key === "Escape" || (e.key === "Tab" && role === "menuitem"))) {
    // Escape closes the menu only, Tab leaves it: the focus goes back to its button.
    e.preventDefault();
    ui.closeMenu();
    menu.button.focus();
    return;
  }
  if (menu && role === "menuitem") {
    const next = menuKeyTarget(e.key, menu.items.length, menu.items.indexOf(active));
    if (next !== null) {
      e.preventDefault();
      menu.items[next].focus();
    }
    return; // Enter and Space click the item
  }
  if (e.key === "Escape") {
    e.preventDefault();
    ui.close();
    return;
  }
  if (active?.classList.contains("tb-menu-button") && /^Arrow(Down|Up)$/.test(e.key)) {
    e.preventDefault();
    ui.openMenu(active, e.key === "ArrowUp" ? "last" : "first");
    return;
  }
  if (role === "tab") {
    const next = tabKeyTarget(e.key, ui.tabs.length, ui.tabs.indexOf(active));
    if (next !== null) {
      // Automatic activation: the tab that gets the focus is selected.
      e.preventDefault();
      ui.tabs[next].focus();
      ui.selectTab(ui.tabs[next].dataset.category || null);
      return;
    }
  }
  const rows = ui.rows;
  if (e.key === "Enter" && active && rows.includes(active)) {
    const link = /** @type {HTMLElement | null} */ (active.querySelector("a.tb-message"));
    if (link) link.click();
    else ui.activate(Number(active.dataset.id));
    e.preventDefault();
    return;
  }
  const at = rows.findIndex((row) => row.contains(active));
  const target = listKeyTarget(e.key, rows.length, at);
  if (target === null) return;
  e.preventDefault();
  (target === "bell" ? ui.bell : rows[target]).focus();
}

/**
 * Collects arrivals and announces them as one message once they stop coming for `quiet` ms:
 * three arriving together are "3 new notifications", not three messages of which a screen
 * reader keeps the last.
 */
export class Announcer {
  /**
   * @param {(messages: string[]) => void} say
   * @param {number} [quiet] ms
   */
  constructor(say, quiet = 300) {
    this._say = say;
    this._quiet = quiet;
    /** @type {string[]} */
    this._pending = [];
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._timer = undefined;
  }

  /** @param {string} message */
  add(message) {
    this._pending.push(message);
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.flush(), this._quiet);
  }

  flush() {
    clearTimeout(this._timer);
    const messages = this._pending;
    this._pending = [];
    if (messages.length) this._say(messages);
  }

  stop() {
    clearTimeout(this._timer);
    this._pending = [];
  }
}

/**
 * A row as both bells draw it.
 * @typedef {object} BellRow
 * @property {string} key stable across renders ("n17")
 * @property {number} id
 * @property {"item" | "group" | "member"} kind
 * @property {boolean} unread
 * @property {boolean} archived
 * @property {string} state "Unread" / "Read", said before the message (screen readers)
 * @property {string} message
 * @property {string | null} href the link, when safe
 * @property {string} time relative, in the locale
 * @property {string} datetime ISO
 * @property {{name: string, avatar: string | null, initials: string} | null} actor
 * @property {{label: string, href: string}[]} actions
 * @property {{count: number, summary: string, toggle: string, expanded: boolean} | null} group
 * @property {boolean} clamped the message is long: clamped to three lines, with a toggle
 * @property {boolean} full the whole long message is shown
 * @property {string} fullToggle "Show all" / "Show less"
 * @property {string | null} snoozed "Snoozed until Mon 09:00" (the snoozed view)
 * @property {string} menuLabel the "⋯" button's name ("More actions: <message>")
 * @property {boolean} menuOpen
 * @property {{action: string, label: string}[]} menu the row menu's items
 * @property {string} sig changes whenever anything drawn but the time changes (rows are redrawn
 *   only then)
 */

/**
 * A toast: a new arrival while the panel is closed (the `toasts` option).
 * @typedef {{key: string, id: number, title: string, message: string}} BellToast
 */

/**
 * Everything a bell draws.
 * @typedef {object} BellView
 * @property {string} locale
 * @property {boolean} open
 * @property {number} unread
 * @property {number} unseen the badge
 * @property {string} badge "" when hidden
 * @property {string} bellLabel
 * @property {string} title
 * @property {boolean} archived the archive view is shown
 * @property {boolean} snoozed the snoozed view is shown
 * @property {string} emptyDetail under the empty state's title
 * @property {BellToast[]} toasts
 * @property {{key: string, category: string | null, label: string, unreadText: string,
 *   count: number, selected: boolean}[]} tabs empty when no category exists
 * @property {BellRow[]} rows the window: the newest `maxItems` (more after "Load more")
 * @property {boolean} more "Load more" is shown
 * @property {boolean} loadingMore
 * @property {"loading" | "error" | "empty" | null} note
 * @property {string} noteText
 * @property {string | null} banner
 * @property {boolean} markAllDisabled
 * @property {string | null} push the "Turn on desktop notifications" label, or null when hidden
 * @property {string} connection
 * @property {string} status
 * @property {string} role
 */

/** How long a toast stays (ms) unless the pointer or the focus is on it. */
const TOAST_MS = 8000;

const EMPTY_STATE = /** @type {TidingsState} */ (
  /** @type {unknown} */ ({
    items: [],
    unread: 0,
    unseen: 0,
    categories: {},
    filter: { category: null, archived: false },
    status: "loading",
    error: null,
    connection: "connecting",
    role: "starting",
    hasMore: false,
    loadingMore: false,
  })
);

/**
 * The shared bell: state, strings and actions over one tidings.js client.
 */
export class BellCore {
  /**
   * @param {object} options
   * @param {ReturnType<typeof import("./tidings.js").createTidings>} options.client
   * @param {string} [options.locale] a language tag (see pickLocale)
   * @param {BellStrings | null} [options.strings] overrides of any string
   * @param {number} [options.maxItems] rows shown before "Load more" (50)
   * @param {boolean} [options.push] false: never ask for the push key (no control, no request)
   * @param {() => void} options.onUpdate the view changed: draw `core.view()`
   * @param {(text: string) => void} options.onAnnounce write this to the polite live region
   * @param {(n: Notification) => void} [options.onArrival] a notification arrived
   * @param {Record<string, string | Record<string, string>> | null} [options.categoryLabels]
   *   the publisher's names of the categories (see categoryLabel)
   * @param {boolean} [options.toasts] a toast for each arrival while the panel is closed
   */
  constructor({
    client,
    locale = "en",
    strings = null,
    maxItems = 50,
    push = true,
    onUpdate,
    onAnnounce,
    onArrival,
    categoryLabels = null,
    toasts = false,
  }) {
    this.client = client;
    this.maxItems = Math.max(1, Math.floor(maxItems) || 50);
    this._limit = this.maxItems;
    this._onUpdate = onUpdate;
    this._onArrival = onArrival ?? (() => {});
    this.locale = locale;
    this._overrides = strings;
    this.strings = stringsFor(locale, strings);
    this._version = 0;
    this.isOpen = false;
    this._seenDue = false;
    /** @type {false | string} the banner's string after a click that failed */
    this.actionError = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this._clock = undefined;
    /** @type {Set<string>} */
    this.expanded = new Set();
    /** @type {Set<string>} categories shown as tabs once seen, so a tab does not vanish */
    this._known = new Set();
    /** @type {"default" | "off" | null} the push control: shown for these states only */
    this._push = null;
    this._pushBusy = false; // enablePush() is under way
    /** @type {TidingsState} */
    this.state = EMPTY_STATE;
    /** @type {number[]} the ids of the rows last drawn, in order */
    this._ids = [];
    this._announcer = new Announcer((messages) =>
      onAnnounce(
        messages.length === 1
          ? this.t("announce", { message: messages[0] })
          : this.t("announceMany", { n: messages.length }),
      ),
    );
    // Asked once the session works (the key route needs the user); never when the page said push
    // is off, so no /notifications/push/key request at all.
    this._pushChecked = !push;
    this.categoryLabels = categoryLabels;
    /** @type {number | null} the row whose "⋯" menu is open */
    this.menuFor = null;
    /** @type {"first" | "last" | null} the menu item to focus once the menu is drawn */
    this._menuFocus = null;
    /** @type {Set<number>} long messages shown whole */
    this._full = new Set();
    this.toastsOn = Boolean(toasts);
    /** @type {BellToast[]} */
    this.toasts = [];
    /** @type {Map<string, ReturnType<typeof setTimeout>>} */
    this._toastTimers = new Map();
    this._toastHold = false;
    this._unsubscribe = client.subscribe((state, change) => this._onChange(state, change));
  }

  /**
   * A string of this bell, filled in (see bell-strings.js).
   * @param {string} key
   * @param {Record<string, string | number>} [values]
   * @returns {string}
   */
  t(key, values) {
    return format(this.strings[key], values, this.locale);
  }

  /**
   * Change the locale and/or the overrides.
   * @param {string} locale
   * @param {BellStrings | null} [strings] (unchanged when undefined)
   */
  setLocale(locale, strings) {
    this.locale = locale;
    if (strings !== undefined) this._overrides = strings;
    this.strings = stringsFor(locale, this._overrides);
    this._version += 1; // every row's labels change
    this._onUpdate();
  }

  /**
   * Show the newest `n` rows (and `n` more on each "Load more").
   * @param {number} n
   */
  setMaxItems(n) {
    this.maxItems = Math.max(1, Math.floor(n) || 50);
    this._limit = this.maxItems;
    this._onUpdate();
  }

  destroy() {
    clearInterval(this._clock);
    for (const timer of this._toastTimers.values()) clearTimeout(timer);
    this._announcer.stop();
    this._unsubscribe();
  }

  // --- actions ---------------------------------------------------------------------------------

  toggle() {
    if (this.isOpen) this.close();
    else this.open();
  }

  /** Open the panel; what it shows is now seen (the badge drops in every tab). */
  open() {
    this.isOpen = true;
    this.actionError = false;
    this.dismissToasts(); // what they said is in the list now
    // "2 minutes ago" moves on while the panel is open (only the time texts change).
    clearInterval(this._clock);
    this._clock = setInterval(() => this._onUpdate(), 30000);
    // Once per opening; a bell opened while its list still loads marks seen when it is loaded.
    this._seenDue = true;
    this._markSeenIfDue();
    this._onUpdate();
  }

  close() {
    if (!this.isOpen) return;
    this.isOpen = false;
    this._seenDue = false;
    this.menuFor = null;
    clearInterval(this._clock);
    this._onUpdate();
  }

  /** @param {string | null} category null: "All" */
  selectTab(category) {
    this._limit = this.maxItems;
    this.expanded.clear();
    this._act("setFilter", { category, archived: false });
  }

  /** @param {boolean} archived show the archive (true) or the inbox */
  showArchive(archived) {
    this._limit = this.maxItems;
    this.expanded.clear();
    this.menuFor = null;
    this._act("setFilter", { category: null, archived });
  }

  /** @param {boolean} snoozed show the snoozed notifications (true) or the inbox */
  showSnoozed(snoozed) {
    this._limit = this.maxItems;
    this.expanded.clear();
    this.menuFor = null;
    this._act("setFilter", { category: null, archived: false, snoozed });
  }

  /**
   * Open row `id`'s "⋯" menu (closing any other), its first or last item to be focused once
   * drawn (see takeMenuFocus).
   * @param {number} id
   * @param {"first" | "last" | null} [focus]
   */
  openMenu(id, focus = "first") {
    this.menuFor = id;
    this._menuFocus = focus;
    this._onUpdate();
  }

  closeMenu() {
    if (this.menuFor === null) return;
    this.menuFor = null;
    this._menuFocus = null;
    this._onUpdate();
  }

  /**
   * The menu item the bell should focus now that the menu is drawn ("first", "last"), once.
   * @returns {"first" | "last" | null}
   */
  takeMenuFocus() {
    const focus = this._menuFocus;
    this._menuFocus = null;
    return focus;
  }

  /**
   * A row menu's item was chosen. Returns whether the row leaves the list (the focus then goes
   * to its neighbour; else back to the menu's button).
   * @param {number} id
   * @param {string} action "markRead", "archive", "unarchive", "delete", "unsnooze",
   *   "snooze:<preset>"
   * @returns {boolean}
   */
  runMenu(id, action) {
    this.menuFor = null;
    this._menuFocus = null;
    if (action === "markRead") this.markRead(id);
    else if (action === "archive") this.archive(id);
    else if (action === "unarchive") this.unarchive(id);
    else if (action === "delete") this.remove(id);
    else if (action === "unsnooze") this.unsnooze(id);
    else if (action.startsWith("snooze:")) this.snooze(id, action.slice(7));
    this._onUpdate();
    return action !== "markRead";
  }

  /**
   * Snooze a notification until a preset's time (SNOOZE_PRESETS) or a Date.
   * @param {number} id
   * @param {string | Date} until
   */
  snooze(id, until) {
    const at = until instanceof Date ? until : snoozeUntil(until);
    this._act("snooze", [id], isoWithOffset(at));
  }

  /** @param {number} id */
  unsnooze(id) {
    this._act("unsnooze", [id]);
  }

  /** Show a long message whole, or clamped again. @param {number} id */
  toggleFull(id) {
    if (this._full.has(id)) this._full.delete(id);
    else this._full.add(id);
    this._onUpdate();
  }

  /** @param {Record<string, string | Record<string, string>> | null} labels */
  setCategoryLabels(labels) {
    this.categoryLabels = labels;
    this._onUpdate();
  }

  /** @param {boolean} on */
  setToasts(on) {
    this.toastsOn = Boolean(on);
    if (!this.toastsOn) this.dismissToasts();
  }

  /** @param {string} key */
  dismissToast(key) {
    clearTimeout(this._toastTimers.get(key));
    this._toastTimers.delete(key);
    const before = this.toasts.length;
    this.toasts = this.toasts.filter((t) => t.key !== key);
    if (this.toasts.length !== before) this._onUpdate();
  }

  dismissToasts() {
    for (const timer of this._toastTimers.values()) clearTimeout(timer);
    this._toastTimers.clear();
    if (!this.toasts.length) return;
    this.toasts = [];
    this._onUpdate();
  }

  /**
   * While the pointer or the focus is on a toast it stays (WCAG 2.2.1: time to read it).
   * @param {boolean} hold
   */
  holdToasts(hold) {
    this._toastHold = hold;
  }

  /** @param {Notification} n */
  _toast(n) {
    const key = `t${n.id}`;
    const toast = { key, id: n.id, title: this.t("toastTitle"), message: n.message };
    // Three at most: a burst shows its newest, the list has them all.
    this.toasts = [...this.toasts.filter((t) => t.key !== key), toast].slice(-3);
    for (const k of [...this._toastTimers.keys()]) {
      if (!this.toasts.some((t) => t.key === k)) {
        clearTimeout(this._toastTimers.get(k));
        this._toastTimers.delete(k);
      }
    }
    const expire = () => {
      if (this._toastHold) this._toastTimers.set(key, setTimeout(expire, TOAST_MS));
      else this.dismissToast(key);
    };
    this._toastTimers.set(key, setTimeout(expire, TOAST_MS));
  }

  /** Fold or unfold a group; unfolding loads the members the server folded into it. */
  toggleGroup(group) {
    if (this.expanded.has(group)) {
      this.expanded.delete(group);
    } else {
      this.expanded.add(group);
      this._act("expandGroup", group);
    }
    this._onUpdate();
  }

  /** Show the next `maxItems` rows: those already held first, then the server's next page. */
  more() {
    if (this.state.loadingMore) return; // "Load more" stays focusable while it loads
    const total = foldRows(this.state.items, this.expanded).length;
    if (total <= this._limit && this.state.hasMore) this._act("loadMore");
    this._limit += this.maxItems;
    this._onUpdate();
  }

  /** The row itself was clicked (or Enter on it): that is reading it. */
  activate(id) {
    const n = this.state.items.find((m) => m.id === id);
    if (n && !n.read_at) this._act("markRead", [id]);
  }

  markRead(id) {
    this._act("markRead", [id]);
  }

  markAllRead() {
    this.actionError = false;
    this._act("markAllRead");
  }

  archive(id) {
    this._act("archive", [id]);
  }

  unarchive(id) {
    this._act("unarchive", [id]);
  }

  remove(id) {
    this._act("delete", id);
  }

  refresh() {
    this.actionError = false;
    return this._act("refresh");
  }

  enablePush() {
    const client = /** @type {any} */ (this.client);
    // Once at a time: the browser's prompt and its push service can take seconds (up to the
    // client's `timeout`), and the button says meanwhile that it is working on it.
    if (typeof client.enablePush !== "function" || this._pushBusy) return;
    this._pushBusy = true;
    this.actionError = false;
    this._onUpdate();
    Promise.resolve()
      .then(() => client.enablePush())
      .catch(() => {})
      .finally(() => {
        this._pushBusy = false;
        return this._checkPush();
      });
  }

  /**
   * Where the focus goes when row `id` leaves the list.
   * @param {number} id
   * @returns {number | null}
   */
  neighbourOf(id) {
    return neighbourOf(this._ids, id);
  }

  /**
   * A client call for a click. Its failure is on screen already (the client emits it as an
   * `error` change, which sets the banner), so the rejection stops here.
   * @param {string} method
   * @param {...unknown} args
   * @returns {Promise<void>}
   */
  _act(method, ...args) {
    const client = /** @type {any} */ (this.client);
    return Promise.resolve(client[method](...args)).catch(() => {});
  }

  _markSeenIfDue() {
    if (!this._seenDue || this.state.status !== "ready") return;
    this._seenDue = false;
    if (this.state.unseen > 0) this._act("markSeen");
  }

  _onChange(state, change) {
    this.state = state;
    if (this.isOpen) this._markSeenIfDue();
    if (!this._pushChecked && state.status === "ready") {
      this._pushChecked = true;
      this._checkPush();
    }
    for (const n of state.items) if (n.category) this._known.add(n.category);
    for (const name of Object.keys(state.categories)) this._known.add(name);
    if (change.type === "error") {
      // Not the user's own action (opening marks seen): no "that did not work" for those.
      const quiet = ["refresh", "loadMore", "counts", "expandGroup", "markSeen"];
      if (change.action === "enablePush") {
        // "Try again" does not help when the browser blocks notifications or cannot subscribe
        // (no push service, no service worker): the banner says which. A server's refusal is
        // the usual "that did not work".
        const code = change.error?.code;
        this.actionError =
          code === "push_denied"
            ? "pushBlocked"
            : ["push_failed", "push_unsupported", "push_no_worker"].includes(code)
              ? "pushFailed"
              : "actionError";
      } else if (!quiet.includes(change.action)) this.actionError = "actionError";
    } else if (change.type === "notification") {
      this.actionError = false;
      // Said once, by the live region; the toast is not a live region of its own.
      this._announcer.add(change.notification.message);
      if (this.toastsOn && !this.isOpen) this._toast(change.notification);
    }
    this._onUpdate();
    if (change.type === "notification") this._onArrival(change.notification);
  }

  /** The push control shows when push can be turned on here and the server has a key. */
  async _checkPush() {
    const client = /** @type {any} */ (this.client);
    if (typeof client.pushState !== "function") return;
    let state = null;
    try {
      state = await client.pushState();
      if (state === "default" || state === "off") {
        // A 404 (push not configured on the server) throws: no control. Not emitted as an
        // error: nothing the user did failed.
        await client._call("pushKey", "GET", "/notifications/push/key");
      }
    } catch {
      state = null;
    }
    this._push = state === "default" || state === "off" ? state : null;
    this._onUpdate();
  }

  // --- the view --------------------------------------------------------------------------------

  /** @returns {BellView} */
  view() {
    const state = this.state;
    const filter = state.filter;
    const now = Date.now();
    const folded = foldRows(state.items, this.expanded);
    const shown = folded.slice(0, this._limit);
    const rows = shown.map((row) => this._row(row, now));
    this._ids = rows.map((r) => r.id);
    const categories = tabsOf(state, this._known);
    const tabs =
      categories.length > 1 && !filter.archived && !isSnoozedView(filter)
        ? categories.map(({ category, unread }) => {
            // A category's name as shown: the string `category:<name>` when given (translated
            // names), else the name itself.
            const label =
              category === null
                ? this.t("all")
                : categoryLabel(category, this.categoryLabels, this.strings, this.locale);
            return {
              key: category ?? "",
              category,
              label,
              unreadText: this.t("tabUnread"),
              count: unread,
              selected: category === filter.category,
            };
          })
        : [];
    const items = state.items;
    /** @type {"loading" | "error" | "empty" | null} */
    let note = null;
    if (!items.length) {
      if (state.status === "loading") note = "loading";
      else if (state.status === "error") note = "error";
      else if (state.status === "ready") note = "empty";
    }
    const noteText =
      note === "empty"
        ? this.t(
            filter.archived ? "emptyArchive" : isSnoozedView(filter) ? "emptySnoozed" : "empty",
          )
        : note
          ? this.t(note)
          : "";
    const emptyDetail =
      note === "empty" && !filter.archived && !isSnoozedView(filter) ? this.t("emptyDetail") : "";
    const unseen = state.unseen;
    return {
      locale: this.locale,
      open: this.isOpen,
      unread: state.unread,
      unseen,
      badge: unseen > 0 ? (unseen > 99 ? "99+" : String(unseen)) : "",
      bellLabel: unseen > 0 ? this.t("bellUnseen", { n: unseen }) : this.t("bell"),
      title: this.t(
        filter.archived ? "archiveTitle" : isSnoozedView(filter) ? "snoozedTitle" : "title",
      ),
      archived: filter.archived,
      snoozed: isSnoozedView(filter),
      emptyDetail,
      toasts: this.toasts,
      tabs,
      rows,
      more: folded.length > shown.length || state.hasMore,
      loadingMore: state.loadingMore,
      note,
      noteText,
      banner: this._banner(),
      markAllDisabled: state.unread <= 0,
      push: this._push ? this.t(this._pushBusy ? "pushWorking" : "pushOn") : null,
      connection: state.connection,
      status: state.status,
      role: state.role,
    };
  }

  /**
   * @param {FoldedRow} row
   * @param {number} now
   * @returns {BellRow}
   */
  _row(row, now) {
    const n = row.n;
    const base = typeof location === "undefined" ? undefined : location.href;
    const unread = !n.read_at;
    const actor = n.actor?.name
      ? {
          name: n.actor.name,
          avatar: safeLink(n.actor.avatar_url, base),
          initials: initials(n.actor.name),
        }
      : null;
    /** @type {{label: string, href: string}[]} */
    const actions = [];
    for (const a of (n.actions ?? []).slice(0, 2)) {
      const href = safeLink(a?.url, base);
      if (href && a.label) actions.push({ label: a.label, href });
    }
    const group =
      row.kind === "group"
        ? {
            count: row.count,
            summary: this.t("group", { n: row.count }),
            toggle: row.expanded ? this.t("groupHide") : this.t("groupShow", { n: row.count - 1 }),
            expanded: row.expanded,
          }
        : null;
    const snoozedView = isSnoozedView(this.state.filter);
    /** @type {{action: string, label: string}[]} */
    const menu = [];
    if (n.archived_at) {
      menu.push({ action: "unarchive", label: this.t("unarchive") });
    } else if (snoozedView) {
      menu.push({ action: "unsnooze", label: this.t("unsnooze") });
    } else {
      if (unread) menu.push({ action: "markRead", label: this.t("markRead") });
      const clock = new Intl.DateTimeFormat(this.locale, { hour: "numeric", minute: "2-digit" });
      for (const preset of SNOOZE_PRESETS) {
        const time = clock.format(snoozeUntil(preset, new Date(now)));
        menu.push({ action: `snooze:${preset}`, label: this.t(`snooze:${preset}`, { time }) });
      }
      menu.push({ action: "archive", label: this.t("archive") });
    }
    menu.push({ action: "delete", label: this.t("delete") });
    const clamped = String(n.message ?? "").length > CLAMP_CHARS;
    const full = clamped && this._full.has(n.id);
    const until = Date.parse(/** @type {any} */ (n).snoozed_until ?? "");
    const view = {
      key: `n${n.id}`,
      id: n.id,
      kind: row.kind,
      unread,
      archived: Boolean(n.archived_at),
      state: this.t(unread ? "unread" : "read"),
      message: n.message,
      href: safeLink(n.link, base),
      time: relativeTime(n.created_at, this.locale, now),
      datetime: n.created_at ?? "",
      actor,
      actions,
      group,
      clamped,
      full,
      fullToggle: clamped ? this.t(full ? "showLess" : "showAll") : "",
      snoozed: Number.isNaN(until)
        ? null
        : this.t("snoozedUntil", {
            time: new Intl.DateTimeFormat(this.locale, {
              weekday: "short",
              hour: "numeric",
              minute: "2-digit",
            }).format(until),
          }),
      menuLabel: this.t("moreActions", { message: n.message }),
      menuOpen: this.menuFor === n.id,
      menu,
      sig: "",
    };
    // The time is left out: it changes every second and is updated without a redraw.
    view.sig = JSON.stringify([{ ...view, time: "" }, this._version]);
    return view;
  }

  _banner() {
    const s = this.state;
    if (this.actionError) return this.t(this.actionError);
    if (s.connection === "offline") return this.t("offline");
    if (s.connection === "unauthorized") return this.t("unauthorized");
    if (s.status === "error" && s.items.length) return this.t("error");
    if (s.connection === "reconnecting") return this.t("reconnecting");
    return null;
  }
}
