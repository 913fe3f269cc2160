// <tidings-bell>: a notification bell as a custom element, on tidings.js. No framework.
//
//   <script type="module" src="https://tidings.example.com/static/tidings-bell.js"></script>
//   <tidings-bell base-url="https://tidings.example.com"></tidings-bell>
//
// Attributes: token (a user token; exchanged for the session cookie), base-url, page-size,
// heartbeat (the server's TIDINGS_HEARTBEAT until its pings announce it), theme ("light" | "dark";
// default: the system's), no-desktop (hide the desktop-alerts switch), strings (JSON).
// Properties: getToken (async () => token: on 401 and before a token's exp), strings (replace any
// of STRINGS), client (the tidings.js client, read-only), open. Methods: show(), close(),
// toggle(). Events: `new-notification` (detail: the notification).
// Theme with CSS custom properties (--tidings-accent, --tidings-bg, … see the style below).

import { createTidings, safeLink } from "./tidings.js";

export const STRINGS = {
  bell: "Notifications",
  bellUnread: (n) => `Notifications, ${n} unread`,
  title: "Notifications",
  refresh: "Refresh",
  markAllRead: "Mark all read",
  markRead: "Mark read",
  delete: "Delete",
  loadMore: "Load more",
  loading: "Loading…",
  empty: "No notifications",
  error: "Could not load notifications.",
  actionError: "That did not work. Please try again.",
  offline: "You are offline. New notifications will appear when you are back.",
  reconnecting: "Reconnecting…",
  unauthorized: "Your session has ended. Reload the page to sign in again.",
  announce: (message) => `New notification: ${message}`,
  desktopOn: "Desktop alerts: on",
  desktopOff: "Desktop alerts: off",
  desktopBlocked: "Desktop alerts are blocked in your browser settings",
  desktopTitle: "New notification",
};

const DESKTOP_KEY = "tidings:desktop";

const STYLE = `
:host {
  --_accent: var(--tidings-accent, #2563eb);
  --_bg: var(--tidings-bg, #ffffff);
  --_fg: var(--tidings-fg, #1f2937);
  --_muted: var(--tidings-muted, #636b78); /* 4.9:1 on --_unread-bg: AA needs 4.5 */
  --_border: var(--tidings-border, #e5e7eb);
  --_unread-bg: var(--tidings-unread-bg, #eff6ff);
  --_badge-bg: var(--tidings-badge-bg, #dc2626);
  --_badge-fg: var(--tidings-badge-fg, #ffffff);
  --_warn-bg: var(--tidings-warn-bg, #fef3c7);
  --_warn-fg: var(--tidings-warn-fg, #92400e);
  --_radius: var(--tidings-radius, 10px);
  --_width: var(--tidings-width, 22rem);
  --_shadow: var(--tidings-shadow, 0 10px 30px rgba(0, 0, 0, .15));
  position: relative;
  display: inline-block;
  font: var(--tidings-font, 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--_fg);
}
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) {
    --_accent: var(--tidings-accent, #60a5fa);
    --_bg: var(--tidings-bg, #1f2937);
    --_fg: var(--tidings-fg, #f3f4f6);
    --_muted: var(--tidings-muted, #9ca3af);
    --_border: var(--tidings-border, #374151);
    --_unread-bg: var(--tidings-unread-bg, #1e3a5f);
    --_warn-bg: var(--tidings-warn-bg, #451a03);
    --_warn-fg: var(--tidings-warn-fg, #fde68a);
  }
}
:host([theme="dark"]) {
  --_accent: var(--tidings-accent, #60a5fa);
  --_bg: var(--tidings-bg, #1f2937);
  --_fg: var(--tidings-fg, #f3f4f6);
  --_muted: var(--tidings-muted, #9ca3af);
  --_border: var(--tidings-border, #374151);
  --_unread-bg: var(--tidings-unread-bg, #1e3a5f);
  --_warn-bg: var(--tidings-warn-bg, #451a03);
  --_warn-fg: var(--tidings-warn-fg, #fde68a);
}
button { font: inherit; color: inherit; cursor: pointer; }
:focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.bell {
  position: relative; display: inline-grid; place-items: center; width: 2.5rem; height: 2.5rem;
  border: 0; border-radius: 50%; background: transparent;
  color: var(--tidings-bell-color, currentColor);
}
.bell:hover { background: color-mix(in srgb, var(--_accent) 12%, transparent); }
.bell svg { width: 1.5rem; height: 1.5rem; }
.badge {
  position: absolute; top: 0; right: 0; min-width: 1.25rem; height: 1.25rem; padding: 0 .3rem;
  box-sizing: border-box; border-radius: .625rem; background: var(--_badge-bg);
  color: var(--_badge-fg);
  font-size: .72rem; font-weight: 700; line-height: 1.25rem; text-align: center;
}
.badge[hidden], [hidden] { display: none !important; }
.panel {
  position: absolute; right: 0; top: calc(100% + .4rem); z-index: var(--tidings-z, 1000);
  width: var(--_width); max-width: calc(100vw - 1rem); box-sizing: border-box;
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_border);
  border-radius: var(--_radius); box-shadow: var(--_shadow); overflow: hidden;
}
.head {
  display: flex; align-items: center; gap: .5rem; padding: .6rem .75rem;
  border-bottom: 1px solid var(--_border);
}
.head h2 { flex: 1; margin: 0; font-size: 1rem; }
.link-button {
  border: 0; background: none; padding: .2rem .35rem; border-radius: 4px; color: var(--_accent);
  font-size: .85rem;
}
.link-button:hover { text-decoration: underline; }
.link-button:disabled { color: var(--_muted); cursor: default; text-decoration: none; }
.banner {
  margin: 0; padding: .5rem .75rem; background: var(--_warn-bg); color: var(--_warn-fg);
  font-size: .85rem;
}
.list {
  list-style: none; margin: 0; padding: 0; max-height: var(--tidings-max-height, 24rem);
  overflow-y: auto;
}
.item { display: flex; gap: .5rem; padding: .6rem .75rem; border-bottom: 1px solid var(--_border); }
.item:last-child { border-bottom: 0; }
.item.unread { background: var(--_unread-bg); }
.item:focus { outline: 2px solid var(--_accent); outline-offset: -2px; }
.dot {
  flex: none; width: .5rem; height: .5rem; margin-top: .45rem; border-radius: 50%;
  background: transparent;
}
.item.unread .dot { background: var(--_accent); }
.body { flex: 1; min-width: 0; }
.message { display: block; overflow-wrap: anywhere; color: inherit; text-decoration: none; }
a.message:hover { text-decoration: underline; }
.item.unread .message { font-weight: 600; }
.meta {
  display: flex; align-items: center; gap: .25rem; margin-top: .15rem; color: var(--_muted);
  font-size: .78rem;
}
.meta time { flex: 1; }
.meta .link-button { font-size: .78rem; padding: .1rem .3rem; }
.note { margin: 0; padding: 1.5rem .75rem; color: var(--_muted); text-align: center; }
.foot {
  display: flex; justify-content: space-between; gap: .5rem; padding: .4rem .75rem;
  border-top: 1px solid var(--_border);
}
.sr {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
`;

const BELL_ICON = `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
  <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/>
  <path d="M13.73 21a2 2 0 0 1-3.46 0"/></svg>`;

let counter = 0;

function text(value, ...args) {
  return typeof value === "function" ? value(...args) : value;
}

function timeLabel(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  const seconds = Math.round((Date.now() - when.getTime()) / 1000);
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  if (Math.abs(seconds) < 60) return rtf.format(-seconds, "second");
  if (Math.abs(seconds) < 3600) return rtf.format(-Math.round(seconds / 60), "minute");
  if (Math.abs(seconds) < 86400) return rtf.format(-Math.round(seconds / 3600), "hour");
  return when.toLocaleDateString();
}

/**
 * The `<tidings-bell>` element. Attributes are read once, when it is first connected (`theme`
 * and `no-desktop` also later); a failed action (mark read, delete, …) shows in its banner.
 */
export class TidingsBell extends HTMLElement {
  constructor() {
    super();
    this._strings = { ...STRINGS };
    this._client = null;
    this._state = null;
    this._open = false;
    this._rows = new Map();
    this._actionError = false;
    /**
     * The host's refresh callback: a fresh user token, or null when logged out. May be set at
     * any time; it is read when needed.
     * @type {(() => (string | null | Promise<string | null>)) | null}
     */
    this.getToken = this.getToken ?? null;
    const id = `tidings-bell-${++counter}`;
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${STYLE}</style>
      <button class="bell" part="button" type="button" aria-haspopup="true" aria-expanded="false"
        aria-controls="${id}-panel">${BELL_ICON}<span class="badge" part="badge"
        hidden></span></button>
      <div class="panel" part="panel" id="${id}-panel" role="region"
        aria-labelledby="${id}-title" hidden>
        <div class="head">
          <h2 id="${id}-title"></h2>
          <button class="link-button refresh" type="button"></button>
          <button class="link-button mark-all" type="button"></button>
        </div>
        <p class="banner" part="banner" hidden></p>
        <ul class="list" part="list"></ul>
        <p class="note loading" hidden></p>
        <p class="note empty" part="empty" hidden></p>
        <p class="note error" hidden></p>
        <div class="foot">
          <button class="link-button more" type="button" hidden></button>
          <button class="link-button desktop" type="button" hidden></button>
        </div>
      </div>
      <div class="sr" role="status" aria-live="polite" aria-atomic="true"></div>`;
    const $ = (sel) => root.querySelector(sel);
    this._el = {
      bell: $(".bell"),
      badge: $(".badge"),
      panel: $(".panel"),
      title: $("h2"),
      refresh: $(".refresh"),
      markAll: $(".mark-all"),
      banner: $(".banner"),
      list: $(".list"),
      loading: $(".loading"),
      empty: $(".empty"),
      error: $(".error"),
      more: $(".more"),
      desktop: $(".desktop"),
      live: $(".sr"),
    };
    this._el.bell.addEventListener("click", () => this.toggle());
    this._el.refresh.addEventListener("click", () => this._act("refresh"));
    this._el.markAll.addEventListener("click", () => this._act("markAllRead"));
    this._el.more.addEventListener("click", () => this._act("loadMore"));
    this._el.desktop.addEventListener("click", () => this._toggleDesktop());
    this._el.list.addEventListener("click", (e) => this._onListClick(e));
    root.addEventListener("keydown", (e) => this._onKeydown(e));
    this._onDocumentClick = (e) => {
      if (this._open && !e.composedPath().includes(this)) this.close({ focus: false });
    };
    this._renderStrings();
  }

  static get observedAttributes() {
    return ["theme", "no-desktop"];
  }

  attributeChangedCallback() {
    if (this._state) this._render();
  }

  /**
   * The tidings.js client (null while disconnected).
   * @returns {ReturnType<typeof createTidings> | null}
   */
  get client() {
    return this._client;
  }

  /**
   * The strings shown (see STRINGS); setting merges over the defaults.
   * @returns {typeof STRINGS}
   */
  get strings() {
    return this._strings;
  }

  set strings(value) {
    this._strings = { ...STRINGS, ...(value || {}) };
    this._renderStrings();
    if (this._state) this._render();
  }

  /** Whether the dropdown is open. @returns {boolean} */
  get open() {
    return this._open;
  }

  connectedCallback() {
    if (this.hasAttribute("strings")) {
      try {
        this.strings = JSON.parse(this.getAttribute("strings"));
      } catch {
        // not JSON: keep the defaults
      }
    }
    document.addEventListener("click", this._onDocumentClick);
    if (this._client) return;
    const number = (name, fallback) => {
      const value = Number(this.getAttribute(name));
      return Number.isFinite(value) && value > 0 ? value : fallback;
    };
    // A token rendered into the page: used once, then taken out of the DOM.
    const token = this.getAttribute("token") || undefined;
    this.removeAttribute("token");
    this._client = createTidings({
      token,
      baseUrl: this.getAttribute("base-url") || undefined,
      pageSize: number("page-size", 10),
      heartbeat: number("heartbeat", 15),
      // Read when needed, so a host may set `bell.getToken` after the element exists.
      getToken: () => (typeof this.getToken === "function" ? this.getToken() : null),
    });
    this._unsubscribe = this._client.subscribe((state, change) => this._onChange(state, change));
  }

  disconnectedCallback() {
    document.removeEventListener("click", this._onDocumentClick);
    this._unsubscribe?.();
    this._client?.close();
    this._client = null;
    this._state = null;
  }

  /** Open the dropdown when closed, close it when open. */
  toggle() {
    if (this._open) this.close();
    else this.show();
  }

  /** Open the dropdown. */
  show() {
    this._open = true;
    this._actionError = false;
    this._render();
  }

  /**
   * Close the dropdown.
   * @param {{focus?: boolean}} [options] focus: give the focus back to the bell button (true)
   */
  close({ focus = true } = {}) {
    if (!this._open) return;
    this._open = false;
    this._render();
    if (focus) this._el.bell.focus();
  }

  /**
   * Run a client method for a click. Its failure is already on screen: the client emits it as an
   * `error` change, which sets the banner (tidings.js: reject and emit), so the rejection is
   * handled here and goes no further.
   */
  _act(method, ...args) {
    this._client?.[method](...args).catch(() => {});
  }

  // --- state -----------------------------------------------------------------------------------

  _onChange(state, change) {
    this._state = state;
    if (change.type === "error" && change.action !== "refresh" && change.action !== "loadMore") {
      this._actionError = true;
    } else if (change.type !== "error" && change.type !== "state") {
      this._actionError = false;
    }
    this._render();
    if (change.type === "notification") this._arrived(change.notification);
  }

  _arrived(n) {
    const live = this._el.live;
    // Emptied first, so the same text twice is announced twice.
    live.textContent = "";
    requestAnimationFrame(() => {
      live.textContent = text(this._strings.announce, n.message);
    });
    this.dispatchEvent(
      new CustomEvent("new-notification", { detail: n, bubbles: true, composed: true }),
    );
    this._desktop(n);
  }

  _desktop(n) {
    if (!this._desktopEnabled() || document.visibilityState === "visible") return;
    try {
      // The tag makes the tabs that all got it show one alert, not one each.
      const alert = new Notification(text(this._strings.desktopTitle), {
        body: n.message,
        tag: `tidings-${n.id}`,
      });
      const href = safeLink(n.link, location.href);
      alert.onclick = () => {
        window.focus();
        if (href) location.assign(href);
        alert.close();
      };
    } catch {
      // a browser without page notifications (some mobile ones): the bell is enough
    }
  }

  _desktopEnabled() {
    return (
      typeof Notification === "function" &&
      Notification.permission === "granted" &&
      localStorage.getItem(DESKTOP_KEY) === "1"
    );
  }

  async _toggleDesktop() {
    if (typeof Notification !== "function") return;
    if (this._desktopEnabled()) {
      localStorage.removeItem(DESKTOP_KEY);
    } else {
      // Permission is asked only here, on the user's click.
      const permission =
        Notification.permission === "default"
          ? await Notification.requestPermission()
          : Notification.permission;
      if (permission === "granted") localStorage.setItem(DESKTOP_KEY, "1");
    }
    this._render();
  }

  // --- rendering -------------------------------------------------------------------------------

  _renderStrings() {
    const s = this._strings;
    this._el.title.textContent = text(s.title);
    this._el.refresh.textContent = text(s.refresh);
    this._el.markAll.textContent = text(s.markAllRead);
    this._el.more.textContent = text(s.loadMore);
    this._el.loading.textContent = text(s.loading);
    this._el.empty.textContent = text(s.empty);
    this._el.error.textContent = text(s.error);
  }

  _render() {
    const s = this._strings;
    const state = this._state;
    const el = this._el;
    const unread = state ? state.unread : 0;
    el.badge.hidden = unread <= 0;
    el.badge.textContent = unread > 99 ? "99+" : String(unread);
    el.bell.setAttribute("aria-label", unread > 0 ? text(s.bellUnread, unread) : text(s.bell));
    el.bell.setAttribute("aria-expanded", this._open ? "true" : "false");
    el.panel.hidden = !this._open;
    if (state) {
      this.dataset.unread = String(unread);
      this.dataset.connection = state.connection;
      this.dataset.role = state.role;
      this.dataset.status = state.status;
    }
    if (!state) return;

    const items = state.items;
    el.loading.hidden = !(state.status === "loading" && !items.length);
    el.error.hidden = !(state.status === "error" && !items.length);
    el.empty.hidden = !(state.status === "ready" && !items.length);
    el.more.hidden = !state.hasMore;
    el.more.disabled = state.loadingMore;
    el.markAll.disabled = unread <= 0;
    const banner = this._bannerText(state);
    el.banner.hidden = !banner;
    el.banner.textContent = banner || "";
    const canDesktop = typeof Notification === "function" && !this.hasAttribute("no-desktop");
    el.desktop.hidden = !canDesktop;
    if (canDesktop) {
      const blocked = Notification.permission === "denied";
      el.desktop.disabled = blocked;
      el.desktop.textContent = blocked
        ? text(s.desktopBlocked)
        : text(this._desktopEnabled() ? s.desktopOn : s.desktopOff);
      el.desktop.setAttribute("aria-pressed", this._desktopEnabled() ? "true" : "false");
    }
    this._renderList(items);
  }

  _bannerText(state) {
    const s = this._strings;
    if (this._actionError) return text(s.actionError);
    if (state.connection === "offline") return text(s.offline);
    if (state.connection === "unauthorized") return text(s.unauthorized);
    if (state.status === "error" && state.items.length) return text(s.error);
    if (state.connection === "reconnecting") return text(s.reconnecting);
    return null;
  }

  _renderList(items) {
    const list = this._el.list;
    const active = this.shadowRoot.activeElement;
    const keep = new Set();
    let previous = null;
    for (const n of items) {
      keep.add(n.id);
      let row = this._rows.get(n.id);
      if (!row) {
        row = this._makeRow(n);
        this._rows.set(n.id, row);
      }
      this._updateRow(row, n);
      const next = previous ? previous.nextSibling : list.firstChild;
      if (next !== row) list.insertBefore(row, next);
      previous = row;
    }
    for (const [id, row] of this._rows) {
      if (!keep.has(id)) {
        const wasFocused = row.contains(active);
        const sibling = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        this._rows.delete(id);
        if (wasFocused) (sibling || this._el.bell).focus();
      }
    }
  }

  _makeRow(n) {
    const row = document.createElement("li");
    row.className = "item";
    row.tabIndex = -1;
    row.dataset.id = String(n.id);
    const href = safeLink(n.link, location.href);
    const message = document.createElement(href ? "a" : "span");
    message.className = "message";
    message.textContent = n.message;
    if (href) /** @type {HTMLAnchorElement} */ (message).href = href;
    const time = document.createElement("time");
    time.dateTime = n.created_at || "";
    time.textContent = timeLabel(n.created_at);
    const mark = document.createElement("button");
    mark.type = "button";
    mark.className = "link-button mark-read";
    const del = document.createElement("button");
    del.type = "button";
    del.className = "link-button delete";
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(time, mark, del);
    const body = document.createElement("div");
    body.className = "body";
    body.append(message, meta);
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    row.append(dot, body);
    return row;
  }

  _updateRow(row, n) {
    const unread = !n.read_at;
    row.classList.toggle("unread", unread);
    const mark = row.querySelector(".mark-read");
    const del = row.querySelector(".delete");
    mark.textContent = text(this._strings.markRead);
    del.textContent = text(this._strings.delete);
    mark.setAttribute("aria-label", `${text(this._strings.markRead)}: ${n.message}`);
    del.setAttribute("aria-label", `${text(this._strings.delete)}: ${n.message}`);
    if (!unread && this.shadowRoot.activeElement === mark) row.focus(); // the button goes away
    mark.hidden = !unread;
  }

  _onListClick(e) {
    const button = e.target.closest("button");
    const row = e.target.closest(".item");
    if (!row) return;
    const id = Number(row.dataset.id);
    if (button?.classList.contains("mark-read")) this._act("markRead", [id]);
    else if (button?.classList.contains("delete")) this._act("delete", id);
    else if (e.target.closest("a.message") && row.classList.contains("unread"))
      this._act("markRead", [id]);
  }

  _onKeydown(e) {
    if (e.key === "Escape" && this._open) {
      e.preventDefault();
      this.close();
      return;
    }
    if (!this._open) return;
    const rows = [...this._el.list.children];
    if (!rows.length) return;
    const active = /** @type {HTMLElement | null} */ (this.shadowRoot.activeElement);
    const at = rows.findIndex((row) => row.contains(active));
    let target = null;
    if (e.key === "ArrowDown") target = rows[at < 0 ? 0 : Math.min(rows.length - 1, at + 1)];
    else if (e.key === "ArrowUp")
      target = at <= 0 ? (at === 0 ? this._el.bell : rows[rows.length - 1]) : rows[at - 1];
    else if (e.key === "Home" && at >= 0) target = rows[0];
    else if (e.key === "End" && at >= 0) target = rows[rows.length - 1];
    else if (e.key === "Enter" && active?.classList?.contains("item")) {
      const link = /** @type {HTMLElement | null} */ (active.querySelector("a.message"));
      if (link) link.click();
      else this._act("markRead", [Number(active.dataset.id)]);
      e.preventDefault();
      return;
    }
    if (target) {
      e.preventDefault();
      target.focus();
    }
  }
}

if (typeof customElements !== "undefined" && !customElements.get("tidings-bell")) {
  customElements.define("tidings-bell", TidingsBell);
}
