// What the server sends, read defensively: Link headers, SSE payloads, notifications, links.
// Pure functions (they run in Node).

/** The `rel="next"` target of a Link header, or null. */
export function parseNextLink(header) {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (!match) continue;
    for (const param of match[2].split(";")) {
      const rel = /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i.exec(param);
      if (rel && rel[1].toLowerCase().split(/\s+/).includes("next")) return match[1];
    }
  }
  return null;
}

/** The JSON object in an SSE `data:` payload, or null when it is not one (never throws). */
export function parseEventData(raw) {
  if (typeof raw !== "string" || raw === "") return null;
  try {
    const value = JSON.parse(raw);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** A notification as the server sends it: a positive integer id and a string message. */
export function isNotification(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    Number.isSafeInteger(value.id) &&
    value.id > 0 &&
    typeof value.message === "string"
  );
}

/** A link that is safe to put in an href: http(s) only, resolved against `base`. */
export function safeLink(link, base) {
  if (typeof link !== "string" || link === "") return null;
  try {
    const url = new URL(link, base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}
