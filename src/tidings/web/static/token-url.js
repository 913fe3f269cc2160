// The bell's refresh callback from a URL: the host app's own token route (Laravel's
// GET /tidings/token, Django's {% url 'tidings-token' %}), fetched by the bell itself. With it a
// page needs no inline script to hand the bell a callback, so the bell keeps refreshing inside a
// Vue 2 root (which re-creates the element and drops the page's <script> tags) and under a
// Content-Security-Policy without 'unsafe-inline'.

/**
 * A getToken callback that asks `url` for `{"token": "…"}` with the page's cookies.
 * 401 and 403 (logged out) give null, which the bell shows as "session ended"; any other failure
 * rejects, which the client treats as a failed refresh and tries again later.
 * @param {string} url the app's token route (same origin as the page)
 * @returns {() => Promise<string | null>}
 */
export function tokenFromUrl(url) {
  return async () => {
    /** @type {Record<string, string>} */
    const headers = {
      Accept: "application/json",
      // Laravel answers an unauthenticated XHR with 401 JSON, not a redirect to the login page.
      "X-Requested-With": "XMLHttpRequest",
    };
    // Laravel's layout carries <meta name="csrf-token">; sent along, a token route the app
    // registered as POST passes VerifyCsrfToken too.
    const meta = globalThis.document?.querySelector('meta[name="csrf-token"]');
    const csrf = meta?.getAttribute("content");
    if (csrf) headers["X-CSRF-TOKEN"] = csrf;
    const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
    if (response.status === 401 || response.status === 403) return null;
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    const body = await response.json();
    return typeof body?.token === "string" && body.token ? body.token : null;
  };
}
