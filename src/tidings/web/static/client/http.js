// REST: every call to the server, bounded in time, with one retry on a fresh credential.

import { TidingsError, toTidingsError } from "./errors.js";

/**
 * @typedef {object} HttpOptions
 * @property {string} base the tidings server, without a trailing slash
 * @property {typeof fetch} fetch
 * @property {number} timeout ms a call may take
 * @property {boolean} withCredentials send cookies cross-origin
 * @property {() => Promise<boolean>} renew a fresh credential in the cookie (false: none)
 */

/** @typedef {{ok: boolean, status: number, data: any, link: string | null}} HttpResult */

export class Http {
  /** @param {HttpOptions} options */
  constructor({ base, fetch, timeout, withCredentials, renew }) {
    this.base = base;
    this._fetch = fetch;
    this._timeout = timeout;
    this._withCredentials = withCredentials;
    this._renew = renew;
  }

  /**
   * @param {string} method
   * @param {unknown} body
   * @param {AbortSignal} signal
   * @returns {RequestInit & {headers: Record<string, string>}}
   */
  _init(method, body, signal) {
    /** @type {RequestInit & {headers: Record<string, string>}} */
    const init = {
      method,
      signal,
      credentials: this._withCredentials ? "include" : "same-origin",
      headers: { accept: "application/json" },
    };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return init;
  }

  /**
   * fetch, abandoned after `timeout` ms (a server or proxy that never answers must not hang a
   * call); `read` runs within the same bound, so a body that stalls is abandoned too.
   * @template [T=Response]
   * @param {string} url
   * @param {string} method
   * @param {unknown} [body]
   * @param {(response: Response) => Promise<T>} [read]
   * @returns {Promise<T>}
   */
  async timed(url, method, body, read = async (response) => /** @type {any} */ (response)) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this._timeout);
    try {
      return await read(await this._fetch(url, this._init(method, body, abort.signal)));
    } catch (error) {
      if (abort.signal.aborted) {
        throw new TidingsError(`no answer within ${this._timeout} ms`, { code: "timeout" });
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * One REST call: `{data, link}` on 2xx, else a TidingsError; a 401 renews and retries once.
   * @param {string} action the client method, for the error
   * @param {string} method
   * @param {string} path relative to the server
   * @param {unknown} [body] sent as JSON
   * @returns {Promise<HttpResult>}
   */
  async call(action, method, path, body) {
    const url = new URL(path, `${this.base}/`).href;
    /** @param {Response} response @returns {Promise<HttpResult>} */
    const read = async (response) => {
      const link = response.headers.get("link");
      if (response.ok) {
        const data = response.status === 204 ? null : await response.json();
        return { ok: true, status: response.status, data, link };
      }
      let problem = null;
      try {
        problem = await response.json();
      } catch {
        // not JSON: the status says enough
      }
      return { ok: false, status: response.status, data: problem, link };
    };
    let result;
    try {
      result = await this.timed(url, method, body, read);
      if (result.status === 401 && (await this._renew())) {
        result = await this.timed(url, method, body, read);
      }
    } catch (error) {
      throw toTidingsError(error, action);
    }
    if (!result.ok) {
      const problem = result.data;
      const detail = typeof problem?.detail === "string" ? problem.detail : problem?.error;
      throw new TidingsError(detail || `HTTP ${result.status}`, {
        status: result.status,
        code: typeof problem?.error === "string" ? problem.error : "http",
        action,
      });
    }
    return result;
  }
}
