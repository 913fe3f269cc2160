// Pure logic of tidings.js added for issue 9 item 8 and issue 12 item 11: options checking, the
// error type, reading a token's expiry, and the watchdog's bound from the announced heartbeat.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  TidingsError,
  announcedHeartbeat,
  checkOptions,
  jwtClaims,
  renewDelay,
  staleAfter,
} from "../../src/tidings/web/static/tidings.js";

const b64url = (value) =>
  Buffer.from(JSON.stringify(value)).toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
const jwt = (claims) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(claims)}.signature`;

test("options: defaults filled in, undefined counts as absent", () => {
  const opts = checkOptions({ pageSize: 20, token: undefined, getToken: null, baseUrl: "" });
  assert.equal(opts.pageSize, 20);
  assert.equal(opts.heartbeat, 15);
  assert.equal(opts.timeout, 10000);
  assert.equal(opts.share, true);
  assert.equal(opts.getToken, null);
  assert.equal(opts.token, undefined);
  assert.deepEqual(opts.backoff, { initial: 1000, max: 30000 });
  assert.deepEqual(checkOptions({ backoff: { max: 5000 } }).backoff, { initial: 1000, max: 5000 });
  assert.equal(checkOptions().pageSize, 10);
});

test("options: a misspelled key throws and names the one that was meant", () => {
  assert.throws(() => checkOptions({ pagesize: 5 }), {
    name: "TypeError",
    message: 'createTidings: unknown option "pagesize" (did you mean "pageSize"?)',
  });
  assert.throws(() => checkOptions({ getTokn: () => "t" }), /did you mean "getToken"/);
  assert.throws(() => checkOptions({ heartBeat: 15 }), /did you mean "heartbeat"/);
  assert.throws(() => checkOptions({ colour: "red" }), /unknown option "colour" \(known: baseUrl/);
  assert.throws(
    () => checkOptions({ backoff: { initail: 5 } }),
    /backoff: unknown option "initail" \(did you mean "initial"\?\)/,
  );
});

test("options: a value of the wrong type throws with what was expected", () => {
  assert.throws(
    () => checkOptions({ pageSize: "10" }),
    /"pageSize" must be an integer from 1 to 100, got "10"/,
  );
  assert.throws(() => checkOptions({ pageSize: 500 }), /from 1 to 100, got 500/);
  assert.throws(() => checkOptions({ heartbeat: 0 }), /"heartbeat" must be a positive number/);
  assert.throws(() => checkOptions({ timeout: Infinity }), /"timeout" must be a positive number/);
  assert.throws(() => checkOptions({ getToken: "token" }), /"getToken" must be a function/);
  assert.throws(() => checkOptions({ share: "yes" }), /"share" must be a boolean/);
  assert.throws(() => checkOptions({ backoff: [1, 2] }), /"backoff" must be an object/);
  assert.throws(() => checkOptions({ backoff: { max: -1 } }), /backoff.max must be a positive/);
  assert.throws(() => checkOptions(null), /options must be an object/);
  assert.throws(() => checkOptions([]), /options must be an object/);
});

test("TidingsError carries status, code and action", () => {
  const error = new TidingsError("gone", { status: 404, code: "not_found", action: "delete" });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "TidingsError");
  assert.deepEqual([error.status, error.code, error.action], [404, "not_found", "delete"]);
  const network = new TidingsError("no answer");
  assert.deepEqual([network.status, network.code], [0, "network"]);
});

test("a JWT's claims are read without verifying; anything else is null", () => {
  assert.deepEqual(jwtClaims(jwt({ sub: "alice", exp: 100 })), { sub: "alice", exp: 100 });
  assert.equal(jwtClaims("not a token"), null);
  assert.equal(jwtClaims("a.b.c"), null);
  assert.equal(jwtClaims(`x.${Buffer.from("[1]").toString("base64")}.y`), null);
  assert.equal(jwtClaims(null), null);
});

test("renewal: at four fifths of the lifetime, at most a minute early", () => {
  const now = 1_000_000_000_000;
  const at = (s) => now / 1000 + s;
  // exp - iat: immune to this clock (the browser's may be wrong).
  assert.equal(renewDelay(jwt({ iat: 50, exp: 60 }), now), 8000);
  assert.equal(renewDelay(jwt({ iat: 0, exp: 900 }), now), 840000);
  // Without iat: exp against this clock.
  assert.equal(renewDelay(jwt({ exp: at(10) }), now), 8000);
  assert.equal(renewDelay(jwt({ exp: at(3600) }), now), 3540000);
  // Nothing usable: the client renews on the server's 401 instead.
  assert.equal(renewDelay(jwt({ exp: at(-5) }), now), null);
  // Due within a second (a cached token about to expire): no renewal loop, the 401 path instead.
  assert.equal(renewDelay(jwt({ exp: at(1) }), now), null);
  assert.equal(renewDelay(jwt({ exp: at(1.25) }), now), 1000);
  assert.equal(renewDelay(jwt({ sub: "alice" }), now), null);
  assert.equal(renewDelay(jwt({ exp: "soon" }), now), null);
  assert.equal(renewDelay("opaque-session-token", now), null);
  // A timer longer than browsers allow would fire at once: capped.
  assert.equal(renewDelay(jwt({ iat: 0, exp: 10 ** 9 }), now), 2 ** 31 - 1);
});

test("the watchdog's bound comes from the announced heartbeat, never from arrival gaps", () => {
  assert.equal(announcedHeartbeat({ heartbeat: 15 }), 15000);
  assert.equal(announcedHeartbeat({ heartbeat: 0.5 }), 500);
  assert.equal(announcedHeartbeat({}), null); // an older server: keep the configured heartbeat
  assert.equal(announcedHeartbeat(null), null);
  assert.equal(announcedHeartbeat({ heartbeat: 0 }), null);
  assert.equal(announcedHeartbeat({ heartbeat: "15" }), null);
  assert.equal(staleAfter(15000), 38500);
  assert.equal(staleAfter(1000), 3500);
});
