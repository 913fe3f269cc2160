// The Web Push part of tidings.js that runs without a browser: the server's key, decoded for
// pushManager.subscribe({applicationServerKey}).
import { test } from "node:test";
import assert from "node:assert/strict";

import { base64urlBytes } from "../../src/tidings/web/static/tidings.js";

test("push: a base64url key without padding decodes to its bytes", () => {
  for (const length of [65, 64, 63, 16, 1]) {
    const bytes = Uint8Array.from({ length }, (_, i) => (i * 37 + 251) % 256);
    const text = Buffer.from(bytes).toString("base64url");
    assert.ok(!text.includes("=") && !text.includes("+") && !text.includes("/"));
    assert.deepEqual(base64urlBytes(text), bytes);
  }
});
