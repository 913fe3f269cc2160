// bell-strings.js: the strings of both bells (<tidings-bell> and the Vue bell), one table per
// language, and the one format they are written in.
//
// A string is plain text with `{name}` placeholders ("Notifications, {n} new"), or, when it
// depends on a number, an object of plural forms chosen with Intl.PluralRules for `n` in the
// bell's locale: {"one": "{n} new notification", "other": "{n} new notifications"} ("other" is
// the fallback; "zero", "two", "few", "many" are used by the languages that have them). Both
// forms are JSON, so the `strings` attribute can override any of them.
//
// Nothing here touches browser globals at import time, so it runs in Node.

/** @typedef {string | Partial<Record<Intl.LDMLPluralRule, string>>} BellString */
/** @typedef {Record<string, BellString>} BellStrings */

/** @type {BellStrings} */
const EN = {
  bell: "Notifications",
  bellUnseen: { one: "Notifications, {n} new", other: "Notifications, {n} new" },
  title: "Notifications",
  refresh: "Refresh",
  markAllRead: "Mark all read",
  markRead: "Mark read",
  delete: "Delete",
  archive: "Archive",
  unarchive: "Restore",
  showArchive: "Archived",
  showInbox: "Back to inbox",
  archiveTitle: "Archived notifications",
  tabs: "Categories",
  all: "All",
  // After a tab's visible count, for screen readers only: "billing 2 unread".
  tabUnread: "unread",
  unread: "Unread",
  read: "Read",
  group: { one: "{n} new notification", other: "{n} new notifications" },
  groupShow: { one: "Show {n} more", other: "Show {n} more" },
  groupHide: "Show less",
  loadMore: "Load more",
  loading: "Loading…",
  empty: "All caught up",
  emptyDetail: "New notifications will show up here.",
  emptyArchive: "No archived notifications",
  error: "Could not load notifications.",
  actionError: "That did not work. Please try again.",
  offline: "You are offline. New notifications will appear when you are back.",
  reconnecting: "Reconnecting…",
  unauthorized: "Your session has ended. Reload the page to sign in again.",
  announce: "New notification: {message}",
  announceMany: { one: "{n} new notification", other: "{n} new notifications" },
  // Actions, not states: the button says what pressing it does.
  desktopOn: "Turn off desktop alerts",
  desktopOff: "Turn on desktop alerts",
  desktopBlocked: "Desktop alerts are blocked in your browser settings",
  desktopTitle: "New notification",
  pushOn: "Turn on desktop notifications",
  pushWorking: "Turning on desktop notifications…",
  pushFailed: "Desktop notifications could not be turned on in this browser.",
  pushBlocked: "Desktop notifications are blocked in your browser settings.",
  // The row's "⋯" menu button (its name says whose menu it is).
  moreActions: "More actions: {message}",
  "snooze:hour": "Snooze for 1 hour",
  "snooze:tomorrow": "Snooze until tomorrow, {time}",
  "snooze:nextWeek": "Snooze until next week",
  unsnooze: "Unsnooze",
  showSnoozed: "Snoozed",
  snoozedTitle: "Snoozed notifications",
  emptySnoozed: "No snoozed notifications",
  snoozedUntil: "Snoozed until {time}",
  showAll: "Show all",
  showLess: "Show less",
  close: "Close",
  toastTitle: "New notification",
  dismiss: "Dismiss",
};

/** @type {BellStrings} */
const DE = {
  bell: "Benachrichtigungen",
  bellUnseen: { one: "Benachrichtigungen, {n} neu", other: "Benachrichtigungen, {n} neu" },
  title: "Benachrichtigungen",
  refresh: "Aktualisieren",
  // Short: the header keeps it next to the title at 22rem.
  markAllRead: "Alle gelesen",
  markRead: "Als gelesen markieren",
  delete: "Löschen",
  archive: "Archivieren",
  unarchive: "Wiederherstellen",
  showArchive: "Archiv",
  showInbox: "Zurück zum Posteingang",
  archiveTitle: "Archivierte Benachrichtigungen",
  tabs: "Kategorien",
  all: "Alle",
  tabUnread: "ungelesen",
  unread: "Ungelesen",
  read: "Gelesen",
  group: { one: "{n} neue Benachrichtigung", other: "{n} neue Benachrichtigungen" },
  groupShow: { one: "{n} weitere anzeigen", other: "{n} weitere anzeigen" },
  groupHide: "Weniger anzeigen",
  loadMore: "Mehr laden",
  loading: "Wird geladen…",
  empty: "Alles erledigt",
  emptyDetail: "Neue Benachrichtigungen erscheinen hier.",
  emptyArchive: "Keine archivierten Benachrichtigungen",
  error: "Benachrichtigungen konnten nicht geladen werden.",
  actionError: "Das hat nicht geklappt. Bitte versuchen Sie es erneut.",
  offline: "Sie sind offline. Neue Benachrichtigungen erscheinen, sobald Sie wieder online sind.",
  reconnecting: "Verbindung wird wiederhergestellt…",
  unauthorized: "Ihre Sitzung ist abgelaufen. Laden Sie die Seite neu, um sich anzumelden.",
  announce: "Neue Benachrichtigung: {message}",
  announceMany: { one: "{n} neue Benachrichtigung", other: "{n} neue Benachrichtigungen" },
  desktopOn: "Desktop-Hinweise ausschalten",
  desktopOff: "Desktop-Hinweise einschalten",
  desktopBlocked: "Desktop-Hinweise sind in den Browser-Einstellungen blockiert",
  desktopTitle: "Neue Benachrichtigung",
  pushOn: "Desktop-Benachrichtigungen einschalten",
  pushWorking: "Desktop-Benachrichtigungen werden eingeschaltet…",
  pushFailed: "Desktop-Benachrichtigungen konnten in diesem Browser nicht eingeschaltet werden.",
  pushBlocked: "Desktop-Benachrichtigungen sind in den Browser-Einstellungen blockiert.",
  moreActions: "Weitere Aktionen: {message}",
  "snooze:hour": "1 Stunde zurückstellen",
  "snooze:tomorrow": "Bis morgen, {time} zurückstellen",
  "snooze:nextWeek": "Bis nächste Woche zurückstellen",
  unsnooze: "Zurückholen",
  showSnoozed: "Zurückgestellt",
  snoozedTitle: "Zurückgestellte Benachrichtigungen",
  emptySnoozed: "Keine zurückgestellten Benachrichtigungen",
  snoozedUntil: "Zurückgestellt bis {time}",
  showAll: "Alles anzeigen",
  showLess: "Weniger anzeigen",
  close: "Schließen",
  toastTitle: "Neue Benachrichtigung",
  dismiss: "Ausblenden",
};

/** The strings of each language the bells ship with, by language subtag. */
export const LOCALES = Object.freeze({ en: Object.freeze(EN), de: Object.freeze(DE) });

/** The English strings: the keys every table has. */
export const STRINGS = LOCALES.en;

/**
 * The locale to use: the first of `candidates` that is a valid language tag (an element's
 * `lang`, the nearest ancestor's, the document's, the browser's), else "en". The tag is kept
 * whole ("de-AT") for Intl; the table is chosen by `tableFor`.
 * @param {...(string | null | undefined)} candidates
 * @returns {string}
 */
export function pickLocale(...candidates) {
  for (const tag of candidates) {
    if (typeof tag !== "string" || !tag.trim()) continue;
    try {
      return Intl.getCanonicalLocales(tag.trim())[0];
    } catch {
      // not a language tag: try the next one
    }
  }
  return "en";
}

/**
 * The language table for a locale: the exact tag, else its language ("de-AT" → de), else English.
 * @param {string} locale
 * @returns {BellStrings}
 */
export function tableFor(locale) {
  const lower = locale.toLowerCase();
  const table = LOCALES[lower] ?? LOCALES[lower.split("-")[0]];
  return table ?? LOCALES.en;
}

/**
 * The strings of a locale with the host's overrides on top; a key missing from a table falls
 * back to English.
 * @param {string} locale
 * @param {BellStrings | null} [overrides]
 * @returns {BellStrings}
 */
export function stringsFor(locale, overrides) {
  return { ...LOCALES.en, ...tableFor(locale), ...(overrides || {}) };
}

/**
 * One string, filled in: the plural form for `values.n` (Intl.PluralRules in `locale`), then
 * every `{name}` replaced by `values[name]` (a name not given is left as it is, so a typo shows).
 * @param {BellString | undefined} template
 * @param {Record<string, string | number>} [values]
 * @param {string} [locale]
 * @returns {string}
 */
export function format(template, values = {}, locale = "en") {
  let text = template;
  if (text !== null && typeof text === "object") {
    const n = Number(values.n);
    const form = Number.isFinite(n) ? new Intl.PluralRules(locale).select(n) : "other";
    text = text[form] ?? text.other ?? Object.values(text)[0];
  }
  return String(text ?? "").replace(/\{(\w+)\}/g, (whole, name) =>
    Object.hasOwn(values, name) ? String(values[name]) : whole,
  );
}

/**
 * "5 minutes ago" in the locale (Intl.RelativeTimeFormat); a week or older: the date.
 * @param {string | null | undefined} iso
 * @param {string} [locale]
 * @param {number} [now] ms since the epoch
 * @returns {string}
 */
export function relativeTime(iso, locale = "en", now = Date.now()) {
  const when = Date.parse(iso ?? "");
  if (Number.isNaN(when)) return "";
  const seconds = Math.round((when - now) / 1000);
  const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, "second");
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return rtf.format(Math.round(seconds / 3600), "hour");
  if (abs < 7 * 86400) return rtf.format(Math.round(seconds / 86400), "day");
  return new Date(when).toLocaleDateString(locale);
}

/**
 * Up to two initials of a name, for an actor without an avatar ("Ada Lovelace" → "AL").
 * @param {string | null | undefined} name
 * @returns {string}
 */
export function initials(name) {
  const words = String(name ?? "")
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if (!words.length) return "?";
  const first = Array.from(words[0])[0];
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] : "";
  return (first + last).toLocaleUpperCase();
}
