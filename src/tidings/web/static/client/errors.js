// The one error type of the client, and how any failure becomes one.

/**
 * Every failure of a client method: the promise rejects with one, and subscribers get it.
 * `status` is the HTTP status, or 0 when no answer came (network down, `timeout` elapsed);
 * `code` is the server's `error` code, or "network" / "timeout" / "bad_response".
 */
export class TidingsError extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string, action?: string}} [details]
   */
  constructor(message, { status = 0, code = "network", action = "" } = {}) {
    super(message);
    this.name = "TidingsError";
    /** @type {number} */
    this.status = status;
    /** @type {string} */
    this.code = code;
    /** @type {string} the client method that failed ("refresh", "markRead", …) */
    this.action = action;
  }
}

/**
 * Any failure (a TidingsError, a body that is not JSON, a network error) as a TidingsError.
 * @param {any} error
 * @param {string} action
 * @returns {TidingsError}
 */
export function toTidingsError(error, action) {
  if (error instanceof TidingsError) {
    if (!error.action) error.action = action;
    return error;
  }
  if (error instanceof SyntaxError) {
    return new TidingsError("the server's answer was not JSON", { code: "bad_response", action });
  }
  return new TidingsError(error?.message || "network error", { code: "network", action });
}

/**
 * The short `error` of the state: "unauthorized", "network" or the server's detail.
 * @param {TidingsError} error
 * @returns {string}
 */
export function describe(error) {
  if (error.status === 401) return "unauthorized";
  if (error.status === 0) return "network";
  return error.message;
}
