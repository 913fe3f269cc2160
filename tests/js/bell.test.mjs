// The bells' shared core without a browser: strings and plurals, the locale pick, relative
// times, folding groups, tabs, keyboard targets, the announcer and the rows' window.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  LOCALES,
  STRINGS,
  format,
  initials,
  pickLocale,
  relativeTime,
  stringsFor,
  tableFor,
} from "../../src/tidings/web/static/bell-strings.js";
import {
  Announcer,
  BellCore,
  bellKeydown,
  categoryLabel,
  foldRows,
  isoWithOffset,
  menuKeyTarget,
  snoozeUntil,
  listKeyTarget,
  neighbourOf,
  panelShift,
  tabKeyTarget,
  tabsOf,
} from "../../src/tidings/web/static/bell-core.js";
import { listQuery, matchesFilter } from "../../src/tidings/web/static/tidings.js";

const n = (id, extra = {}) => ({
  id,
  message: `m${id}`,
  read_at: null,
  seen_at: null,
  created_at: "2026-11-30T10:00:00.000Z",
  ...extra,
});

test("{n} is filled in, in a plain string and in each plural form", () => {
  assert.equal(format("Notifications, {n} unread", { n: 3 }), "Notifications, 3 unread");
  const forms = { one: "{n} new notification", other: "{n} new notifications" };
  assert.equal(format(forms, { n: 1 }), "1 new notification");
  assert.equal(format(forms, { n: 0 }), "0 new notifications");
  assert.equal(format(forms, { n: 7 }), "7 new notifications");
  assert.equal(
    format("New notification: {message}", { message: "{n} x" }),
    "New notification: {n} x",
  );
  // A placeholder nobody gave stays visible, so a typo in an override shows.
  assert.equal(format("{count} left", { n: 2 }), "{count} left");
  assert.equal(format(undefined), "");
});

test("plural forms follow the locale's rules (Intl.PluralRules)", () => {
  // French counts 0 as "one", English as "other".
  const forms = { one: "one:{n}", other: "other:{n}" };
  assert.equal(format(forms, { n: 0 }, "fr"), "one:0");
  assert.equal(format(forms, { n: 0 }, "en"), "other:0");
  // A form the table lacks falls back to "other".
  assert.equal(format({ other: "{n} Stück" }, { n: 1 }, "de"), "1 Stück");
});

test("every language table has every English key, and plural entries have 'other'", () => {
  for (const [lang, table] of Object.entries(LOCALES)) {
    assert.deepEqual(Object.keys(table).sort(), Object.keys(STRINGS).sort(), lang);
    for (const [key, value] of Object.entries(table)) {
      if (typeof value === "object") assert.ok(value.other, `${lang}.${key}`);
    }
  }
  assert.equal(LOCALES.de.markAllRead, "Alle gelesen");
});

test("the locale: the first valid tag given, its table by language, English otherwise", () => {
  assert.equal(pickLocale(null, "", "de-AT", "en"), "de-AT");
  assert.equal(pickLocale("not a tag!", "fr"), "fr");
  assert.equal(pickLocale(undefined, null), "en");
  assert.equal(tableFor("de-AT"), LOCALES.de);
  assert.equal(tableFor("DE"), LOCALES.de);
  assert.equal(tableFor("fr"), LOCALES.en);
  const strings = stringsFor("de", { title: "Posteingang" });
  assert.equal(strings.title, "Posteingang");
  assert.equal(strings.refresh, "Aktualisieren");
});

test("relative times in the locale, a date after a week", () => {
  const now = Date.parse("2026-11-30T12:00:00Z");
  const at = (seconds) => new Date(now - seconds * 1000).toISOString();
  assert.equal(relativeTime(at(5 * 60), "en", now), "5 minutes ago");
  assert.equal(relativeTime(at(5 * 60), "de", now), "vor 5 Minuten");
  assert.equal(relativeTime(at(2 * 3600), "de", now), "vor 2 Stunden");
  assert.equal(relativeTime(at(86400), "en", now), "yesterday");
  assert.equal(relativeTime(at(0), "en", now), "now");
  assert.equal(
    relativeTime(at(30 * 86400), "de", now),
    new Date(now - 30 * 86400 * 1000).toLocaleDateString("de"),
  );
  assert.equal(relativeTime("not a time", "en", now), "");
});

test("initials of an actor's name", () => {
  assert.equal(initials("Ada Lovelace"), "AL");
  assert.equal(initials("ada"), "A");
  assert.equal(initials("  Grace  Brewster Hopper "), "GH");
  assert.equal(initials(""), "?");
  assert.equal(initials("Émile Zola"), "ÉZ");
});

test("unread ones of one group fold into the newest, counting the server's group_count", () => {
  const items = [
    n(9, { group: "g" }),
    n(8),
    n(7, { group: "g", group_count: 3 }), // the server folded 3 into this one
    n(6, { group: "g", read_at: "x" }), // read: never folded
    n(5, { group: "h" }), // alone in its group: a plain row
  ];
  const rows = foldRows(items);
  assert.deepEqual(
    rows.map((r) => [r.kind, r.n.id, r.kind === "group" ? r.count : null]),
    [
      ["group", 9, 4],
      ["item", 8, null],
      ["item", 6, null],
      ["item", 5, null],
    ],
  );
  const open = foldRows(items, new Set(["g"]));
  assert.deepEqual(
    open.map((r) => [r.kind, r.n.id]),
    [
      ["group", 9],
      ["member", 7],
      ["item", 8],
      ["item", 6],
      ["item", 5],
    ],
  );
});

test("tabs: All, then every category known, with unread counts", () => {
  const tabs = tabsOf({ unread: 5, categories: { mentions: { unread: 2, unseen: 1 } } }, [
    "billing",
    "mentions",
  ]);
  assert.deepEqual(tabs, [
    { category: null, unread: 5 },
    { category: "billing", unread: 0 },
    { category: "mentions", unread: 2 },
  ]);
});

test("keys move the focus through the rows and back to the bell", () => {
  assert.equal(listKeyTarget("ArrowDown", 3, -1), 0);
  assert.equal(listKeyTarget("ArrowDown", 3, 2), 2);
  assert.equal(listKeyTarget("ArrowUp", 3, 0), "bell");
  assert.equal(listKeyTarget("ArrowUp", 3, -1), 2);
  assert.equal(listKeyTarget("End", 3, 0), 2);
  assert.equal(listKeyTarget("Home", 3, 2), 0);
  assert.equal(listKeyTarget("x", 3, 0), null);
  assert.equal(listKeyTarget("ArrowDown", 0, -1), null);
});

test("arrow keys move between tabs and wrap round, Home and End go to the ends", () => {
  assert.equal(tabKeyTarget("ArrowRight", 3, 0), 1);
  assert.equal(tabKeyTarget("ArrowRight", 3, 2), 0);
  assert.equal(tabKeyTarget("ArrowLeft", 3, 0), 2);
  assert.equal(tabKeyTarget("Home", 3, 2), 0);
  assert.equal(tabKeyTarget("End", 3, 0), 2);
  assert.equal(tabKeyTarget("ArrowDown", 3, 0), null);
  assert.equal(tabKeyTarget("ArrowRight", 3, -1), null);
});

test("the open panel moves back onto the screen, by no more than it must", () => {
  assert.equal(panelShift(-40, 264, 320), 48);
  assert.equal(panelShift(100, 404, 1000), 0);
  assert.equal(panelShift(700, 1004, 1000), -12);
  // Wider than the screen: its left edge stays on it.
  assert.equal(panelShift(20, 420, 300), -12);
});

test("a row that leaves gives the focus to the next one, else the previous", () => {
  assert.equal(neighbourOf([5, 4, 3], 4), 3);
  assert.equal(neighbourOf([5, 4, 3], 3), 4);
  assert.equal(neighbourOf([5], 5), null);
  assert.equal(neighbourOf([5], 9), null);
});

test("arrivals close together are announced once, counted", async () => {
  const said = [];
  const announcer = new Announcer((messages) => said.push(messages), 20);
  announcer.add("a");
  announcer.add("b");
  announcer.add("c");
  await new Promise((resolve) => setTimeout(resolve, 60));
  announcer.add("d");
  announcer.flush();
  assert.deepEqual(said, [["a", "b", "c"], ["d"]]);
});

test("the list query carries the filter, paging and grouping", () => {
  const filter = { category: "billing & co", archived: true };
  assert.equal(
    listQuery({ limit: 10, filter, grouped: true, before: 7 }),
    "limit=10&before=7&category=billing+%26+co&archived=1&grouped=1",
  );
  assert.equal(listQuery({ limit: 5, filter: { category: null } }), "limit=5");
  assert.ok(matchesFilter(n(1, { category: "a" }), { category: "a", archived: false }));
  assert.ok(!matchesFilter(n(1, { category: "b" }), { category: "a", archived: false }));
  assert.ok(!matchesFilter(n(1, { archived_at: "x" }), { category: null, archived: false }));
  assert.ok(matchesFilter(n(1, { archived_at: "x" }), { category: null, archived: true }));
});

/** A client holding a fixed state: BellCore only subscribes and calls methods. */
function holding(items, extra = {}) {
  const calls = [];
  const state = {
    items,
    unread: items.filter((m) => !m.read_at).length,
    unseen: items.filter((m) => !m.seen_at).length,
    categories: {},
    filter: { category: null, archived: false },
    status: "ready",
    error: null,
    connection: "open",
    role: "solo",
    hasMore: false,
    loadingMore: false,
    ...extra,
  };
  const client = new Proxy(
    {
      state,
      subscribe(listener) {
        listener(state, { type: "state" });
        return () => {};
      },
    },
    {
      get(target, key) {
        if (key in target) return target[key];
        if (key === "pushState" || key === "enablePush") return undefined; // no push here
        return async (...args) => calls.push([key, ...args]);
      },
    },
  );
  return { client, calls };
}

test("the window: the newest max-items rows; Load more shows more, then asks the server", () => {
  const items = Array.from({ length: 120 }, (_, i) => n(120 - i));
  const { client, calls } = holding(items, { hasMore: true });
  const core = new BellCore({ client, maxItems: 50, onUpdate() {}, onAnnounce() {} });
  let view = core.view();
  assert.equal(view.rows.length, 50);
  assert.equal(view.rows[0].id, 120);
  assert.ok(view.more);
  core.more();
  assert.equal(core.view().rows.length, 100);
  assert.deepEqual(calls, []); // held rows first
  core.more();
  view = core.view();
  assert.equal(view.rows.length, 120);
  assert.deepEqual(calls, []);
  core.more(); // everything held is shown: the next page comes from the server
  assert.deepEqual(calls, [["loadMore"]]);
});

test("the view: badge counts unseen, strings in German with plurals, opening marks seen", () => {
  const items = [
    n(3, { actor: { name: "Ada Lovelace", avatar_url: null } }),
    n(2),
    n(1, { seen_at: "x" }),
  ];
  const { client, calls } = holding(items);
  const core = new BellCore({ client, locale: "de", onUpdate() {}, onAnnounce() {} });
  const view = core.view();
  assert.equal(view.badge, "2");
  assert.equal(view.bellLabel, "Benachrichtigungen, 2 neu");
  assert.equal(view.rows[0].state, "Ungelesen");
  assert.deepEqual(view.rows[0].actor, { name: "Ada Lovelace", avatar: null, initials: "AL" });
  core.open();
  core.destroy(); // stops its clock
  assert.deepEqual(calls, [["markSeen"]]);
  const overridden = new BellCore({
    client,
    strings: { bellUnseen: "Inbox ({n})" },
    onUpdate() {},
    onAnnounce() {},
  });
  assert.equal(overridden.view().bellLabel, "Inbox (2)");
});

test("push control: only if pushState() is default or off and the server has a key", async () => {
  const cases = [
    [
      { pushState: async () => "default", _call: async () => ({}) },
      "Turn on desktop notifications",
    ],
    [{ pushState: async () => "off", _call: async () => ({}) }, "Turn on desktop notifications"],
    [{ pushState: async () => "on", _call: async () => ({}) }, null],
    [{ pushState: async () => "denied", _call: async () => ({}) }, null],
    [{ pushState: async () => "unsupported", _call: async () => ({}) }, null],
    [
      {
        pushState: async () => "default",
        _call: async () => {
          throw new Error("404 push_disabled");
        },
      },
      null,
    ],
    [{}, null], // a client without push
  ];
  for (const [push, expected] of cases) {
    const state = { ...holding([]).client.state };
    let enabled = 0;
    const client = {
      state,
      subscribe(listener) {
        listener(state, { type: "state" });
        return () => {};
      },
      enablePush: async () => {
        enabled += 1;
      },
      ...push,
    };
    const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(core.view().push, expected, JSON.stringify(Object.keys(push)));
    if (expected) {
      core.enablePush();
      await new Promise((resolve) => setTimeout(resolve, 0));
      assert.equal(enabled, 1);
    }
  }
});

test("push control: says it is working while enablePush is under way, once at a time", async () => {
  const state = { ...holding([]).client.state };
  let calls = 0;
  let pushState = "off";
  /** @type {() => void} */
  let finish = () => {};
  const client = {
    state,
    subscribe(listener) {
      listener(state, { type: "state" });
      return () => {};
    },
    pushState: async () => pushState,
    _call: async () => ({}),
    enablePush: () => {
      calls += 1;
      return new Promise((resolve) => {
        finish = () => {
          pushState = "on";
          resolve("on");
        };
      });
    },
  };
  const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(core.view().push, "Turn on desktop notifications");
  core.enablePush();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(core.view().push, "Turning on desktop notifications…");
  core.enablePush(); // a second click while the first is under way
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(calls, 1);
  finish();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(core.view().push, null); // on: nothing left to turn on
  assert.equal(core.view().banner, null);
});

test("push control: a failed enablePush says why in the banner, in each locale", async () => {
  const cases = [
    ["push_failed", "en", "Desktop notifications could not be turned on in this browser."],
    ["push_no_worker", "en", "Desktop notifications could not be turned on in this browser."],
    ["push_denied", "en", "Desktop notifications are blocked in your browser settings."],
    [
      "push_denied",
      "de",
      "Desktop-Benachrichtigungen sind in den Browser-Einstellungen blockiert.",
    ],
    [
      "push_failed",
      "de",
      "Desktop-Benachrichtigungen konnten in diesem Browser nicht eingeschaltet werden.",
    ],
    ["unavailable", "en", "That did not work. Please try again."], // the server refused
  ];
  for (const [code, locale, expected] of cases) {
    const state = { ...holding([]).client.state };
    /** @type {(state: unknown, change: unknown) => void} */
    let emit = () => {};
    const client = {
      state,
      subscribe(listener) {
        emit = listener;
        listener(state, { type: "state" });
        return () => {};
      },
      pushState: async () => "default",
      _call: async () => ({}),
      enablePush: async () => {
        // As tidings.js does: the failure is emitted as an `error` change, then thrown.
        const error = Object.assign(new Error(code), { code, action: "enablePush" });
        emit(state, { type: "error", action: "enablePush", error });
        throw error;
      },
    };
    const core = new BellCore({ client, locale, onUpdate() {}, onAnnounce() {} });
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(core.view().banner, null);
    core.enablePush();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(core.view().banner, expected, `${code} ${locale}`);
  }
});

test("a category's tab shows its `category:<name>` string when given", () => {
  const { client } = holding([n(2, { category: "billing" }), n(1, { category: "news" })], {
    categories: { billing: { unread: 1, unseen: 1 }, news: { unread: 1, unseen: 1 } },
  });
  const core = new BellCore({
    client,
    locale: "de",
    strings: { "category:billing": "Rechnungen" },
    onUpdate() {},
    onAnnounce() {},
  });
  const tabs = core.view().tabs;
  assert.deepEqual(
    tabs.map((t) => [t.label, t.count, t.selected]),
    [
      ["Alle", 2, true],
      ["Rechnungen", 1, false],
      ["News", 1, false],
    ],
  );
});

test("a bell opened while its list loads marks seen once it is loaded, once per opening", () => {
  const { client, calls } = holding([n(1)], { status: "loading" });
  let listener = null;
  client.subscribe = (l) => {
    listener = l;
    l(client.state, { type: "state" });
    return () => {};
  };
  const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
  core.open();
  assert.deepEqual(calls, []);
  const ready = { ...client.state, status: "ready" };
  listener(ready, { type: "state" });
  listener(ready, { type: "state" }); // still unseen (say the call failed): not asked again
  assert.deepEqual(calls, [["markSeen"]]);
  core.close();
  core.open();
  assert.deepEqual(calls, [["markSeen"], ["markSeen"]]);
  core.destroy();
});

test("the menu keys wrap round; Home and End; other keys are not the menu's", () => {
  assert.equal(menuKeyTarget("ArrowDown", 4, 3), 0);
  assert.equal(menuKeyTarget("ArrowUp", 4, 0), 3);
  assert.equal(menuKeyTarget("ArrowDown", 4, 1), 2);
  assert.equal(menuKeyTarget("Home", 4, 2), 0);
  assert.equal(menuKeyTarget("End", 4, 0), 3);
  assert.equal(menuKeyTarget("Enter", 4, 0), null);
  assert.equal(menuKeyTarget("ArrowDown", 0, -1), null);
});

test("snooze presets, in the user's time zone: an hour, tomorrow 9:00, next Monday 9:00", () => {
  // A Wednesday afternoon, local time.
  const wednesday = new Date(2026, 11, 9, 15, 30, 12);
  assert.equal(snoozeUntil("hour", wednesday).getTime() - wednesday.getTime(), 3600_000);
  const tomorrow = snoozeUntil("tomorrow", wednesday);
  assert.deepEqual(
    [tomorrow.getDate(), tomorrow.getHours(), tomorrow.getMinutes(), tomorrow.getSeconds()],
    [10, 9, 0, 0],
  );
  const week = snoozeUntil("nextWeek", wednesday);
  assert.deepEqual([week.getDay(), week.getDate(), week.getHours()], [1, 14, 9]);
  // On a Monday, next week is a week away; on a Sunday, tomorrow.
  assert.equal(snoozeUntil("nextWeek", new Date(2026, 11, 14, 8)).getDate(), 21);
  assert.equal(snoozeUntil("nextWeek", new Date(2026, 11, 13, 22)).getDate(), 14);
  // Across a month's end.
  const lastDay = snoozeUntil("tomorrow", new Date(2026, 11, 31, 23));
  assert.deepEqual([lastDay.getFullYear(), lastDay.getMonth(), lastDay.getDate()], [2027, 0, 1]);
  assert.throws(() => snoozeUntil("someday", wednesday), RangeError);
});

test("`until` is ISO 8601 with the local offset and the same instant", () => {
  const at = new Date(2026, 11, 10, 9, 0, 0);
  const iso = isoWithOffset(at);
  assert.match(iso, /^2026-12-10T09:00:00[+-]\d\d:\d\d$/);
  assert.equal(Date.parse(iso), at.getTime());
});

test("a category label: the publisher's (per language), the strings', or the key, readable", () => {
  const labels = { billing: "Invoices", deploys: { en: "Deploys", de: "Auslieferungen" } };
  assert.equal(categoryLabel("billing", labels, {}, "de"), "Invoices");
  assert.equal(categoryLabel("deploys", labels, {}, "de-AT"), "Auslieferungen");
  assert.equal(categoryLabel("deploys", labels, {}, "fr"), "Deploys");
  assert.equal(categoryLabel("news", labels, { "category:news": "Neues" }, "de"), "Neues");
  assert.equal(categoryLabel("pull_requests", null, {}, "en"), "Pull requests");
});

test("a row menu: mark read while unread, three snoozes, archive, delete; one open at once", () => {
  const { client, calls } = holding([n(2), n(1, { read_at: "2026-01-01T00:00:00Z" })]);
  const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
  const [unread, read] = core.view().rows;
  assert.deepEqual(
    unread.menu.map((i) => i.action),
    ["markRead", "snooze:hour", "snooze:tomorrow", "snooze:nextWeek", "archive", "delete"],
  );
  assert.deepEqual(
    read.menu.map((i) => i.action),
    ["snooze:hour", "snooze:tomorrow", "snooze:nextWeek", "archive", "delete"],
  );
  assert.equal(unread.menuLabel, "More actions: m2");
  assert.match(unread.menu[2].label, /^Snooze until tomorrow, 9:00/);
  core.openMenu(2, "last");
  assert.deepEqual(
    core.view().rows.map((r) => r.menuOpen),
    [true, false],
  );
  assert.equal(core.takeMenuFocus(), "last");
  assert.equal(core.takeMenuFocus(), null);
  core.openMenu(1);
  assert.deepEqual(
    core.view().rows.map((r) => r.menuOpen),
    [false, true],
  );
  assert.equal(core.runMenu(1, "markRead"), false);
  assert.equal(core.menuFor, null);
  assert.equal(core.runMenu(2, "snooze:hour"), true);
  const [method, ids, until] = calls.at(-1);
  assert.deepEqual([method, ids], ["snooze", [2]]);
  assert.ok(Math.abs(Date.parse(until) - Date.now() - 3600_000) < 5000, until);
  core.destroy();
});

test("the snoozed view: its title, Unsnooze in the menu, when each comes back", () => {
  const until = "2026-12-14T09:00:00+01:00";
  const { client, calls } = holding([n(3, { snoozed_until: until })], {
    filter: { category: null, archived: false, snoozed: true },
  });
  const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
  const view = core.view();
  assert.equal(view.title, "Snoozed notifications");
  assert.equal(view.snoozed, true);
  assert.deepEqual(
    view.rows[0].menu.map((i) => i.action),
    ["unsnooze", "delete"],
  );
  assert.match(view.rows[0].snoozed, /^Snoozed until /);
  core.runMenu(3, "unsnooze");
  assert.deepEqual(calls.at(-1), ["unsnooze", [3]]);
  core.showSnoozed(false);
  assert.deepEqual(calls.at(-1), [
    "setFilter",
    { category: null, archived: false, snoozed: false },
  ]);
  core.destroy();
});

test("a long message is clamped with Show all; the empty inbox is all caught up", () => {
  const long = "word ".repeat(60);
  const { client } = holding([n(4, { message: long }), n(5)]);
  const core = new BellCore({ client, onUpdate() {}, onAnnounce() {} });
  const [clamped, short] = core.view().rows;
  assert.deepEqual([clamped.clamped, clamped.full, clamped.fullToggle], [true, false, "Show all"]);
  assert.equal(short.clamped, false);
  core.toggleFull(4);
  assert.deepEqual([core.view().rows[0].full, core.view().rows[0].fullToggle], [true, "Show less"]);
  core.destroy();
  const empty = new BellCore({ client: holding([]).client, onUpdate() {}, onAnnounce() {} });
  assert.deepEqual(
    [empty.view().note, empty.view().noteText, empty.view().emptyDetail],
    ["empty", "All caught up", "New notifications will show up here."],
  );
  empty.destroy();
});

test("toasts only when asked for and the panel is closed; three at most; open clears them", () => {
  let listener = null;
  const { client } = holding([]);
  client.subscribe = (l) => {
    listener = l;
    l(client.state, { type: "state" });
    return () => {};
  };
  const said = [];
  const core = new BellCore({ client, onUpdate() {}, onAnnounce: (t) => said.push(t) });
  const arrive = (id) =>
    listener(client.state, { type: "notification", notification: n(id, { message: `hi ${id}` }) });
  arrive(1);
  assert.deepEqual(core.view().toasts, []); // off by default
  core.setToasts(true);
  for (const id of [2, 3, 4, 5]) arrive(id);
  assert.deepEqual(
    core.view().toasts.map((t) => t.message),
    ["hi 3", "hi 4", "hi 5"],
  );
  core.dismissToast("t4");
  assert.deepEqual(
    core.view().toasts.map((t) => t.id),
    [3, 5],
  );
  core.open();
  assert.deepEqual(core.view().toasts, []);
  arrive(6);
  assert.deepEqual(core.view().toasts, []); // the panel is open: the list shows it
  core.destroy();
});

test("one keyboard handler: Escape closes the menu first; arrows move in the menu", () => {
  const el = (role, extra = {}) => ({
    role,
    focused: 0,
    dataset: {},
    classList: { contains: (c) => (extra.classes ?? []).includes(c) },
    getAttribute: (name) => (name === "role" ? role : null),
    focus() {
      this.focused += 1;
    },
    contains(other) {
      return other === this;
    },
    querySelector: () => null,
    ...extra,
  });
  const button = el(null, { classes: ["tb-menu-button"] });
  const items = [el("menuitem"), el("menuitem"), el("menuitem")];
  const done = [];
  const ui = (active, menu) => ({
    open: true,
    active,
    bell: el(null),
    rows: [],
    tabs: [],
    menu,
    close: () => done.push("close"),
    closeMenu: () => done.push("closeMenu"),
    openMenu: (_, focus) => done.push(`openMenu:${focus}`),
    selectTab: () => {},
    activate: () => {},
  });
  const key = (k) => ({
    key: k,
    prevented: false,
    preventDefault() {
      this.prevented = true;
    },
  });
  const menu = { button, items };
  bellKeydown(key("ArrowUp"), ui(items[0], menu));
  assert.equal(items[2].focused, 1);
  bellKeydown(key("Escape"), ui(items[1], menu));
  assert.deepEqual(done, ["closeMenu"]);
  assert.equal(button.focused, 1);
  bellKeydown(key("ArrowUp"), ui(button, null));
  assert.deepEqual(done, ["closeMenu", "openMenu:last"]);
  const escape = key("Escape");
  bellKeydown(escape, ui(button, null));
  assert.deepEqual(done, ["closeMenu", "openMenu:last", "close"]);
  assert.equal(escape.prevented, true);
});

test("the snoozed list: `?snoozed=1`, and only snoozed notifications belong in it", () => {
  const snoozed = { category: null, archived: false, snoozed: true };
  assert.equal(listQuery({ limit: 10, filter: snoozed }), "limit=10&snoozed=1");
  assert.equal(listQuery({ limit: 10, filter: { category: null, archived: false } }), "limit=10");
  const asleep = n(1, { snoozed_until: "2026-12-08T09:00:00+01:00" });
  assert.equal(matchesFilter(asleep, snoozed), true);
  assert.equal(matchesFilter(n(2), snoozed), false);
  assert.equal(matchesFilter(asleep, { category: null, archived: false }), false);
  assert.equal(matchesFilter(n(2), { category: null, archived: false }), true);
});
