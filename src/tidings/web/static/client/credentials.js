// The credential: a user token becomes the HttpOnly session cookie (POST /notifications/session),
// renewed through the host's getToken() before it expires, or on the server's 401.
//
// The session cookie is shared by the tabs, and so is this: the tab that put a token in the
// cookie tells the others when it is due for renewal; only the leader renews (so each token is
// renewed once) and keeps the stream on the newest credential.

/** @typedef {import("./client.js").Tidings} Tidings */

/** The longest setTimeout delay browsers honour (about 24.8 days); longer ones fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The claims of a JWT, unverified (only to read `exp`), or null when it is not one. */
export function jwtClaims(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = globalThis.atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(json);
    return claims !== null && typeof claims === "object" && !Array.isArray(claims) ? claims : null;
  } catch {
    return null;
  }
}

/**
 * In how many ms to fetch a new credential for `token`, so it is in place before `exp`: at four
 * fifths of the lifetime, and at most a minute early. The lifetime is `exp - iat` when the token
 * has `iat` (immune to a wrong browser clock), else `exp` minus this clock. Null when the token
 * says nothing usable or the renewal would be due within a second (then the client renews on the
 * server's 401, as before).
 * @param {string} token
 * @param {number} [now] ms since the epoch
 * @returns {number | null}
 */
export function renewDelay(token, now = Date.now()) {
  const claims = jwtClaims(token);
  if (!claims || typeof claims.exp !== "number" || !Number.isFinite(claims.exp)) return null;
  const hasIat = typeof claims.iat === "number" && claims.iat < claims.exp;
  const lifetime = hasIat ? (claims.exp - claims.iat) * 1000 : claims.exp * 1000 - now;
  const delay = Math.round(lifetime - Math.min(60000, lifetime / 5));
  // Under a second: a token about to expire (a host that hands out a cached one). Renewing it
  // again and again would only spin; the 401 path takes over.
  return delay >= 1000 ? Math.min(MAX_TIMER_MS, delay) : null;
}

/** The credential of one client: the session, its renewal timer, the host's getToken(). */
export class Credentials {
  /**
   * @param {Tidings} client
   * @param {(() => (string | null | Promise<string | null>)) | null | undefined} getToken
   */
  constructor(client, getToken) {
    this._client = client;
    this._getToken = getToken;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._renewTimer = null;
    /** @type {number | null} when the credential in the cookie is due for renewal (ms), if known */
    this._renewAt = null;
    /** @type {Promise<boolean> | null} */
    this._pending = null;
  }

  /**
   * POST /notifications/session: the token becomes the HttpOnly cookie EventSource sends.
   * @param {string} token
   * @returns {Promise<boolean>}
   */
  async session(token) {
    const c = this._client;
    try {
      const url = `${c._base}/notifications/session`;
      const response = await c._http.timed(url, "POST", { token });
      response.body?.cancel().catch(() => {});
      if (response.ok) {
        const delay = renewDelay(token);
        const renewAt = delay === null ? null : Date.now() + delay;
        c._post({ t: "session", renewAt });
        this.onSession(renewAt);
      }
      return response.ok;
    } catch {
      return false;
    }
  }

  /**
   * Ask the host page for a fresh token and turn it into the session cookie (single flight).
   * @returns {Promise<boolean>}
   */
  refresh() {
    const getToken = this._getToken;
    if (typeof getToken !== "function") return Promise.resolve(false);
    if (!this._pending) {
      this._pending = (async () => {
        try {
          const token = await getToken();
          return token ? await this.session(token) : false;
        } catch {
          return false;
        } finally {
          this._pending = null;
        }
      })();
    }
    return this._pending;
  }

  /**
   * A token went into the cookie (this tab or another): when to renew it, and a stream on it.
   * @param {number | null} renewAt
   */
  onSession(renewAt) {
    this._renewAt = renewAt;
    this.arm();
    // The open stream still runs on the previous credential and would end at its expiry (a gap
    // of the server's `retry:`): switch to a stream on the new one now.
    if (this._client._isLeader()) this._client._stream.reopenQuietly();
  }

  /** Set the renewal timer: the leader renews, when the host can give a token. */
  arm() {
    clearTimeout(this._renewTimer ?? undefined);
    this._renewTimer = null;
    const at = this._renewAt;
    const c = this._client;
    if (c._closed || !c._isLeader() || typeof at !== "number") return;
    if (typeof this._getToken !== "function") return;
    this._renewTimer = setTimeout(() => this._renew(), Math.max(0, at - Date.now()));
  }

  async _renew() {
    this._renewTimer = null;
    this._renewAt = null;
    // Success goes through session() (a new renewal time, a stream on the new credential);
    // failure leaves the 401 path at expiry.
    if (!this._client._closed && this._client._isLeader()) await this.refresh();
  }

  close() {
    clearTimeout(this._renewTimer ?? undefined);
  }
}
