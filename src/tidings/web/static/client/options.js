// The options of createTidings(): checked strictly, so a misspelled one fails loudly.

/** @typedef {import("../tidings.js").TidingsOptions} TidingsOptions */

const OPTION_TYPES = {
  baseUrl: "string",
  token: "string",
  getToken: "function",
  pageSize: "integer",
  heartbeat: "number",
  timeout: "number",
  backoff: "object",
  share: "boolean",
  withCredentials: "boolean",
  fetch: "function",
  grouped: "boolean",
  category: "string",
  maxItems: "count",
};
const BACKOFF_KEYS = ["initial", "max"];
const DEFAULTS = {
  pageSize: 10,
  heartbeat: 15,
  timeout: 10000,
  share: true,
  getToken: null,
  grouped: false,
  maxItems: 200,
};

/** Edit distance, for "did you mean" on a misspelled option. */
function distance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      next.push(Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + cost));
    }
    row = next;
  }
  return row[b.length];
}

function unknownKey(where, key, known) {
  const lower = key.toLowerCase();
  const near = known.find((k) => k.toLowerCase() === lower || distance(k, key) <= 2);
  const hint = near ? ` (did you mean "${near}"?)` : ` (known: ${known.join(", ")})`;
  return new TypeError(`${where}: unknown option "${key}"${hint}`);
}

/**
 * The options with defaults filled in; a TypeError for an unknown key or a wrong type, so a
 * misspelled option fails loudly instead of being ignored. `undefined` counts as absent (so a
 * wrapper may pass every option through), and so do `null` for getToken and "" for token and
 * baseUrl.
 * @param {TidingsOptions} [options]
 * @returns {TidingsOptions & {backoff: {initial: number, max: number}}}
 */
export function checkOptions(options = {}) {
  const where = "createTidings";
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object`);
  }
  const known = Object.keys(OPTION_TYPES);
  const out = { ...DEFAULTS, backoff: { initial: 1000, max: 30000 } };
  for (const [key, value] of Object.entries(/** @type {Record<string, any>} */ (options))) {
    if (!Object.hasOwn(OPTION_TYPES, key)) throw unknownKey(where, key, known);
    if (value === undefined || (value === null && key === "getToken")) continue;
    if (value === "" && (key === "token" || key === "baseUrl" || key === "category")) continue;
    const type = OPTION_TYPES[key];
    const bad = (what) =>
      new TypeError(`${where}: option "${key}" must be ${what}, got ${show(value)}`);
    if (type === "integer") {
      if (!Number.isInteger(value) || value < 1 || value > 100)
        throw bad("an integer from 1 to 100");
    } else if (type === "count") {
      if (!Number.isInteger(value) || value < 1) throw bad("a positive integer");
    } else if (type === "number") {
      if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
        throw bad("a positive number");
      }
    } else if (type === "object") {
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw bad("an object like {initial: 1000, max: 30000}");
      }
      for (const [sub, ms] of Object.entries(value)) {
        if (!BACKOFF_KEYS.includes(sub)) throw unknownKey(`${where}: backoff`, sub, BACKOFF_KEYS);
        if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) {
          throw new TypeError(`${where}: backoff.${sub} must be a positive number of ms`);
        }
      }
      out.backoff = { ...out.backoff, ...value };
      continue;
    } else if (typeof value !== type) {
      throw bad(`a ${type}`);
    }
    out[key] = value;
  }
  return out;
}

function show(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  if (Array.isArray(value)) return "an array";
  return String(value);
}
