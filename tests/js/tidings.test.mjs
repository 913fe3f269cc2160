// Pure logic of tidings.js, without a browser: backoff, Link parsing, event data, dedupe/order.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  NotificationList,
  backoffDelay,
  isNotification,
  parseEventData,
  parseNextLink,
  safeLink,
} from "../../src/tidings/web/static/tidings.js";

const n = (id, extra = {}) => ({ id, message: `m${id}`, read_at: null, ...extra });

test("backoff doubles, is capped, and is jittered between half and all of the step", () => {
  const opts = { initial: 1000, max: 30000 };
  assert.equal(backoffDelay(0, { ...opts, random: () => 0 }), 500);
  assert.equal(backoffDelay(0, { ...opts, random: () => 1 }), 1000);
  assert.equal(backoffDelay(3, { ...opts, random: () => 1 }), 8000);
  assert.equal(backoffDelay(50, { ...opts, random: () => 1 }), 30000);
  assert.equal(backoffDelay(50, { ...opts, random: () => 0 }), 15000);
  assert.equal(backoffDelay(-1, { ...opts, random: () => 1 }), 1000);
  for (let attempt = 0; attempt < 40; attempt++) {
    const delay = backoffDelay(attempt, opts);
    assert.ok(delay >= 500 && delay <= 30000, `attempt ${attempt}: ${delay}`);
  }
});

test("backoff spreads clients: two random draws differ", () => {
  const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(4)));
  assert.ok(seen.size > 1);
});

test("the next link is found among several, with any spacing and case", () => {
  assert.equal(
    parseNextLink('</notifications?limit=10&before=5>; rel="next"'),
    "/notifications?limit=10&before=5",
  );
  assert.equal(parseNextLink('</a>; rel="prev", </b>; rel="next"'), "/b");
  assert.equal(parseNextLink("</c>;rel=next"), "/c");
  assert.equal(parseNextLink('</d>; title="x, y"; REL="Next"'), "/d");
  assert.equal(parseNextLink('</e>; rel="prev next"'), "/e");
  assert.equal(parseNextLink('</f>; rel="prev"'), null);
  assert.equal(parseNextLink(""), null);
  assert.equal(parseNextLink(null), null);
  assert.equal(parseNextLink("garbage"), null);
});

test("event data: a JSON object or null, never a throw", () => {
  assert.deepEqual(parseEventData('{"ids":[1,2],"unread":3}'), { ids: [1, 2], unread: 3 });
  assert.deepEqual(parseEventData("{}"), {});
  assert.equal(parseEventData(""), null);
  assert.equal(parseEventData("not json"), null);
  assert.equal(parseEventData('{"truncated":'), null);
  assert.equal(parseEventData("[1,2]"), null);
  assert.equal(parseEventData("null"), null);
  assert.equal(parseEventData("42"), null);
  assert.equal(parseEventData(undefined), null);
});

test("a notification needs a positive integer id and a string message", () => {
  assert.ok(isNotification(n(1)));
  assert.ok(!isNotification({ id: "1", message: "x" }));
  assert.ok(!isNotification({ id: 0, message: "x" }));
  assert.ok(!isNotification({ id: 1.5, message: "x" }));
  assert.ok(!isNotification({ id: 2 }));
  assert.ok(!isNotification(null));
});

test("links: http(s) only, resolved against the page", () => {
  assert.equal(safeLink("https://example.com/a", "http://host/"), "https://example.com/a");
  assert.equal(safeLink("/orders/7", "http://host/page"), "http://host/orders/7");
  assert.equal(safeLink("javascript:alert(1)", "http://host/"), null);
  assert.equal(safeLink("data:text/html,x", "http://host/"), null);
  assert.equal(safeLink(null, "http://host/"), null);
  assert.equal(safeLink("", "http://host/"), null);
});

test("the list keeps one per id, newest first, whatever the arrival order", () => {
  const list = new NotificationList();
  assert.equal(list.add(n(2)), true);
  assert.equal(list.add(n(5)), true);
  assert.equal(list.add(n(3)), true);
  assert.equal(list.add(n(5)), false);
  assert.equal(list.add({ id: "x" }), false);
  assert.deepEqual(
    list.items.map((x) => x.id),
    [5, 3, 2],
  );
  assert.equal(list.newest, 5);
  assert.equal(list.oldest, 2);
  assert.equal(list.remove(3).id, 3);
  assert.equal(list.remove(3), null);
  assert.equal(list.add(n(3)), true);
});

test("a fresh first page keeps live arrivals, drops older pages and what was deleted", () => {
  const list = new NotificationList([n(9), n(8), n(7), n(6), n(2), n(1)]);
  // The server now has 8, 7, 5 on its first page (6 was deleted) and 9 arrived after the page.
  list.replacePage([n(8), n(7), n(5)]);
  assert.deepEqual(
    list.items.map((x) => x.id),
    [9, 8, 7, 5],
  );
  list.replacePage([]);
  assert.deepEqual(
    list.items.map((x) => x.id),
    [9, 8, 7, 5],
  );
});

test("mark read by ids and up to a seq; only unread ones change; undo restores", () => {
  const list = new NotificationList([n(4), n(3, { read_at: "earlier" }), n(2), n(1)]);
  assert.deepEqual(list.markRead({ ids: [2, 3] }, "now"), [2]);
  assert.deepEqual(list.markRead({ upTo: 3 }, "now"), [1]);
  assert.equal(list.get(4).read_at, null);
  assert.equal(list.get(3).read_at, "earlier");
  list.markUnread([1, 2]);
  assert.equal(list.get(1).read_at, null);
  assert.deepEqual(list.markRead({ upTo: null }, "now"), []);
});

test("the list marks seen up to a seq, rolls back what it changed, trims the oldest", () => {
  const list = new NotificationList([n(1), n(2, { seen_at: "earlier" }), n(3), n(4)]);
  assert.deepEqual(list.markSeen(3, "now"), [3, 1]);
  assert.equal(list.get(4).seen_at ?? null, null); // newer than up_to: untouched
  assert.equal(list.get(2).seen_at, "earlier");
  assert.deepEqual(list.markSeen(3, null, [3, 1]), [3, 1]); // the rollback
  assert.equal(list.get(2).seen_at, "earlier");
  assert.equal(list.get(1).seen_at, null);
  assert.deepEqual(
    list.removeAll([2, 9]).map((m) => m.id),
    [2],
  );
  assert.equal(list.trim(5), false);
  assert.equal(list.trim(2), true);
  assert.deepEqual(
    list.items.map((m) => m.id),
    [4, 3],
  );
  assert.ok(!list.has(1));
  assert.ok(list.add(n(1))); // dropped by the trim: "load more" may bring it back
});
