// React wrapper (React 18 and 19) for <tidings-bell> and the client: `<TidingsBell>` and
// `useTidings()`. Plain JavaScript without JSX, so it needs no build step of its own.
//
// The bell reads its attributes once, when it is connected (the client is made then), and React
// 18 and 19 treat props of custom elements differently (18: always attributes; 19: a property
// when the element has one, and `locale` is a read-only one). So the wrapper makes the element
// itself, with its attributes set before it enters the page, and renders only a `display:
// contents` span to hold it; a change of baseUrl, token, pageSize, heartbeat or attributes makes
// a new bell, the other props are updated in place.

import { createElement, useEffect, useLayoutEffect, useRef, useState } from "react";
import "./tidings-bell.js";
import { createTidings } from "./tidings.js";

/** @typedef {import("./tidings.js").Notification} Notification */
/** @typedef {import("./tidings.js").TidingsOptions} TidingsOptions */
/** @typedef {import("./tidings.js").TidingsState} TidingsState */
/** @typedef {import("./tidings.js").Tidings} Tidings */

/**
 * The props of `<TidingsBell>`: the attributes of `<tidings-bell>` (docs/client.md) in camelCase.
 * @typedef {object} TidingsBellProps
 * @property {string} [baseUrl] the tidings server; default: this page's origin
 * @property {string} [token] a user token to start the session with
 * @property {(() => (string | null | Promise<string | null>)) | null} [getToken] a fresh user
 *   token (before the last one expires, and on a 401), or null when the user is logged out
 * @property {number} [pageSize] notifications per page (10)
 * @property {number} [heartbeat] the server's TIDINGS_HEARTBEAT, until its pings announce it (15)
 * @property {number} [maxItems] rows shown before "Load more" (50)
 * @property {string} [locale] a language tag (default: the nearest `lang`, the browser's)
 * @property {Record<string, string>} [strings] overrides of the locale's strings
 * @property {"light" | "dark"} [theme] default: the system's
 * @property {boolean} [noDesktop] hide the desktop-alerts switch
 * @property {(notification: Notification) => void} [onNotification] a notification arrived
 * @property {Record<string, string>} [attributes] any other attribute of `<tidings-bell>`, as is
 * @property {string} [className] of the span that holds the bell
 */

/**
 * The attributes that can change on a live bell: set, changed or removed.
 * @param {HTMLElement} el
 * @param {TidingsBellProps} props
 */
function applyLive(el, props) {
  /** @type {Record<string, string | null>} */
  const wanted = {
    theme: props.theme ?? null,
    locale: props.locale ?? null,
    "max-items": props.maxItems === undefined ? null : String(props.maxItems),
    strings: props.strings ? JSON.stringify(props.strings) : null,
    "no-desktop": props.noDesktop ? "" : null,
  };
  for (const [name, value] of Object.entries(wanted)) {
    if (el.getAttribute(name) === value) continue;
    if (value === null) el.removeAttribute(name);
    else el.setAttribute(name, value);
  }
}

/**
 * `<tidings-bell>` in a React app.
 * @param {TidingsBellProps} props
 * @returns {import("react").ReactElement}
 */
export function TidingsBell(props) {
  const host = useRef(/** @type {HTMLSpanElement | null} */ (null));
  const bell = useRef(/** @type {HTMLElement | null} */ (null));
  // The newest props, for the callbacks of a bell made by an earlier render.
  const latest = useRef(props);
  latest.current = props;
  const { baseUrl, token, pageSize, heartbeat, attributes } = props;
  const identity = JSON.stringify([baseUrl, token, pageSize, heartbeat, attributes]);

  useLayoutEffect(() => {
    const el = /** @type {HTMLElement & {getToken?: unknown}} */ (
      document.createElement("tidings-bell")
    );
    const p = latest.current;
    const fixed = { ...(p.attributes || {}) };
    if (p.baseUrl) fixed["base-url"] = p.baseUrl;
    if (p.token) fixed.token = p.token;
    if (p.pageSize !== undefined) fixed["page-size"] = String(p.pageSize);
    if (p.heartbeat !== undefined) fixed.heartbeat = String(p.heartbeat);
    for (const [name, value] of Object.entries(fixed)) el.setAttribute(name, value);
    applyLive(el, p);
    el.getToken = () => {
      const getToken = latest.current.getToken;
      return typeof getToken === "function" ? getToken() : null;
    };
    /** @param {Event} e */
    const arrived = (e) => latest.current.onNotification?.(/** @type {CustomEvent} */ (e).detail);
    el.addEventListener("new-notification", arrived);
    host.current?.appendChild(el);
    bell.current = el;
    return () => {
      el.removeEventListener("new-notification", arrived);
      el.remove(); // disconnected: the bell closes its client
      bell.current = null;
    };
  }, [identity]);

  useLayoutEffect(() => {
    if (bell.current) applyLive(bell.current, props);
  });

  return createElement("span", {
    ref: host,
    className: props.className,
    style: { display: "contents" },
  });
}

/**
 * A client for the life of the component, and its state (null until the client exists): for a
 * UI of your own. The client is made again when `baseUrl` or `token` changes; the other options
 * are read when it is made (getToken: the newest one is called).
 * @param {TidingsOptions} [options]
 * @returns {{client: Tidings | null, state: TidingsState | null}}
 */
export function useTidings(options = {}) {
  const [made, setMade] = useState(
    /** @type {{client: Tidings | null, state: TidingsState | null}} */ ({
      client: null,
      state: null,
    }),
  );
  const latest = useRef(options);
  latest.current = options;
  useEffect(() => {
    const given = latest.current;
    const client = createTidings({
      ...given,
      getToken: given.getToken
        ? () => {
            const getToken = latest.current.getToken;
            return typeof getToken === "function" ? getToken() : null;
          }
        : undefined,
    });
    const stop = client.subscribe((state) => setMade({ client, state }));
    return () => {
      stop();
      client.close();
    };
  }, [options.baseUrl, options.token]);
  return made;
}
