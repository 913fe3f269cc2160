// <tidings-bell>: a notification bell as a custom element, on tidings.js. No framework.
//
//   <script type="module" src="https://tidings.example.com/static/tidings-bell.js"></script>
//   <tidings-bell base-url="https://tidings.example.com"></tidings-bell>
//
// Attributes: token (a user token; exchanged for the session cookie), base-url, page-size,
// heartbeat (the server's TIDINGS_HEARTBEAT until its pings announce it), max-items (rows shown
// before "Load more", 50), locale (a language tag; default: the element's `lang`, the nearest
// `lang` around it, the document's, the browser's), strings (JSON: any of the locale's strings,
// see bell-strings.js), theme ("light" | "dark"; default: the system's), no-desktop (hide the
// desktop-alerts switch), token-url (the app's token route, fetched with the page's cookies for
// a fresh token: no script needed, see token-url.js), no-push (never ask for the push key: the
// server has none, or the page registers no service worker), category-labels (JSON:
// {"billing": "Invoices"} or per language {"billing": {"en": "Invoices", "de": "Rechnungen"}}),
// toasts (a toast for each arrival while the panel is closed; off by default), timeout (ms a
// REST call or a stream connect may take before it is abandoned and retried, 10000).
// Properties: getToken (async () => token: on 401 and before a token's exp; wins over
// token-url), strings (overrides, as the attribute), locale (the one in use, read-only), client
// (the tidings.js client, read-only), open. Methods: show(), close(), toggle(). Events:
// `new-notification` (detail: the notification).
// What it draws comes from bell-core.js, which the Vue bell shares.
// Theme with CSS custom properties (--tidings-accent, --tidings-bg, … see the style below).

import { createTidings, safeLink } from "./tidings.js";
import { BellCore, bellKeydown, isSnoozedView, panelShift } from "./bell-core.js";
import { ICONS, adoptStyle, paletteCss, sharedCss } from "./bell-theme.js";
import { STRINGS, format, pickLocale } from "./bell-strings.js";
import { tokenFromUrl } from "./token-url.js";

export { STRINGS };

const DESKTOP_KEY = "tidings:desktop";

const STYLE = `
:host {
  --_radius: var(--tidings-radius, 10px);
  --_width: var(--tidings-width, 22rem);
  --_shadow: var(--tidings-shadow, 0 10px 30px rgba(0, 0, 0, .15));
  position: relative;
  display: inline-block;
  font: var(--tidings-font, 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--_fg);
}
${paletteCss({
  root: ":host",
  theme: (value) => `:host([theme="${value}"])`,
  notLight: ':host(:not([theme="light"]))',
})}
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
/* Rows of controls wrap: longer labels (German) go to the next line instead of out of the panel,
   where overflow: hidden cut them off. */
/* One line: the title shrinks (an ellipsis) before a control wraps under it (German). */
.head {
  display: flex; align-items: center; gap: .35rem; padding: .5rem .5rem .5rem .75rem;
  border-bottom: 1px solid var(--_border);
}
.head h2 {
  flex: 1; min-width: 0; margin: 0; font-size: 1rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap;
}
.link-button {
  border: 0; background: none; padding: .2rem .35rem; border-radius: 4px; color: var(--_accent);
  font-size: .85rem; white-space: nowrap;
}
.link-button:hover { text-decoration: underline; }
.link-button:disabled, .link-button[aria-disabled="true"] {
  color: var(--_muted); cursor: default; text-decoration: none;
}
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
/* WCAG 2.2 target size (2.5.8): every control and link at least 24 px tall. */
button { min-height: 24px; }
.item.unread .message { font-weight: 600; }
.meta {
  display: flex; flex-wrap: wrap; align-items: center; gap: .25rem; margin-top: .15rem;
  color: var(--_muted); font-size: .78rem;
}
.meta time { flex: 1 0 auto; white-space: nowrap; }
.meta .link-button { font-size: .78rem; padding: .1rem .3rem; }
.note { margin: 0; padding: 1.5rem .75rem; color: var(--_muted); text-align: center; }
.note.tb-empty { padding: 2rem .75rem; }
.foot {
  display: flex; flex-wrap: wrap; align-items: center; gap: .25rem .5rem; padding: .4rem .75rem;
  border-top: 1px solid var(--_border);
}
.foot .push { flex-basis: 100%; order: 9; }
.item.unread .meta { color: var(--_unread-muted); }
.item { cursor: default; }
.avatar {
  flex: none; display: inline-grid; place-items: center; width: 2rem; height: 2rem;
  border-radius: 50%; overflow: hidden; background: var(--_avatar-bg); color: var(--_avatar-fg);
  font-size: .75rem; font-weight: 700;
}
.avatar img { width: 100%; height: 100%; object-fit: cover; }
.actor { display: block; font-size: .8rem; font-weight: 600; }
.summary { display: block; font-size: .8rem; font-weight: 700; }
.actions { display: flex; flex-wrap: wrap; gap: .4rem; margin-top: .3rem; }
.action {
  border: 1px solid var(--_accent); background: var(--_bg); color: var(--_accent);
  border-radius: 6px; padding: .15rem .55rem; font-size: .8rem;
}
.item.member { padding-left: 2rem; }
.tabs {
  display: flex; flex-wrap: wrap; gap: .25rem; padding: .4rem .75rem;
  border-bottom: 1px solid var(--_border);
}
.tab {
  display: inline-flex; align-items: center; gap: .3rem; border: 1px solid var(--_border);
  background: var(--_bg); border-radius: 999px; padding: .1rem .5rem .1rem .6rem;
  font-size: .8rem; line-height: 1.1rem;
}
.tab[aria-selected="true"] { border-color: var(--_accent); font-weight: 600; }
${sharedCss("", ".panel")}
.sr {
  position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0;
}
`;

let counter = 0;

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function make(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** @param {string} className @param {string} text @param {string} [label] */
function button(className, text, label) {
  const b = /** @type {HTMLButtonElement} */ (make("button", className, text));
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  return b;
}

/**
 * The `<tidings-bell>` element. Attributes are read once, when it is first connected (`theme`,
 * `no-desktop`, `locale`, `lang`, `strings` and `max-items` also later); a failed action (mark
 * read, delete, …) shows in its banner.
 */
export class TidingsBell extends HTMLElement {
  constructor() {
    super();
    /** @type {import("./bell-strings.js").BellStrings | null} */
    this._overrides = null;
    this._client = null;
    /** @type {BellCore | null} */
    this._core = null;
    /** @type {Map<number, HTMLLIElement>} */
    this._rows = new Map();
    /** @type {WeakMap<HTMLLIElement, string>} what each row shows, to redraw only on a change */
    this._sigs = new WeakMap();
    /** @type {number | "bell" | null} where the focus goes once a row it was on has left */
    this._focusAfter = null;
    /**
     * The host's refresh callback: a fresh user token, or null when logged out. May be set at
     * any time; it is read when needed.
     * @type {(() => (string | null | Promise<string | null>)) | null}
     */
    this.getToken = this.getToken ?? null;
    const id = `tidings-bell-${++counter}`;
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `
      <button class="bell" part="button" type="button" aria-haspopup="true" aria-expanded="false"
        aria-controls="${id}-panel">${ICONS.bell}<span class="badge" part="badge"
        hidden></span></button>
      <div class="panel" part="panel" id="${id}-panel" role="region"
        aria-labelledby="${id}-title" hidden>
        <div class="head">
          <h2 id="${id}-title"></h2>
          <button class="tb-icon-button refresh" type="button">${ICONS.refresh}</button>
          <button class="link-button mark-all" type="button"></button>
          <button class="tb-icon-button tb-close" type="button">${ICONS.close}</button>
        </div>
        <div class="tabs" part="tabs" role="tablist" hidden></div>
        <p class="banner" part="banner" hidden></p>
        <div class="view tb-view" id="${id}-view">
          <ul class="list" part="list"></ul>
          <div class="note" part="note" hidden></div>
        </div>
        <div class="foot">
          <button class="link-button more" type="button" hidden></button>
          <button class="link-button archive-view" type="button"></button>
          <button class="link-button snoozed-view" type="button"></button>
          <button class="tb-push push" type="button" hidden></button>
          <button class="link-button desktop" type="button" hidden></button>
        </div>
      </div>
      <div class="sr" role="status" aria-live="polite" aria-atomic="true"></div>
      <div class="tb-toasts" part="toasts"></div>`;
    adoptStyle(root, STYLE); // after innerHTML: the fallback <style> is a child of root
    const $ = (sel) => root.querySelector(sel);
    this._el = {
      bell: $(".bell"),
      badge: $(".badge"),
      panel: $(".panel"),
      title: $("h2"),
      refresh: $(".refresh"),
      markAll: $(".mark-all"),
      tabs: $(".tabs"),
      view: $(".view"),
      banner: $(".banner"),
      list: $(".list"),
      note: $(".note"),
      more: $(".more"),
      archiveView: $(".archive-view"),
      snoozedView: $(".snoozed-view"),
      close: $(".tb-close"),
      toasts: $(".tb-toasts"),
      push: $(".push"),
      desktop: $(".desktop"),
      live: $(".sr"),
    };
    this._el.bell.addEventListener("click", () => this.toggle());
    this._el.refresh.addEventListener("click", () => this._core?.refresh());
    this._el.markAll.addEventListener("click", () => this._core?.markAllRead());
    this._el.more.addEventListener("click", () => this._core?.more());
    // A click elsewhere in the panel closes an open row menu (the ARIA menu pattern).
    this._el.panel.addEventListener("click", (e) => {
      const core = this._core;
      if (!core || core.menuFor === null) return;
      const inside = /** @type {HTMLElement} */ (e.target).closest(".tb-menu, .tb-menu-button");
      if (!inside) core.closeMenu();
    });
    this._el.archiveView.addEventListener("click", () =>
      this._core?.showArchive(!this._core.state.filter.archived),
    );
    this._el.snoozedView.addEventListener("click", () =>
      this._core?.showSnoozed(!isSnoozedView(this._core.state.filter)),
    );
    this._el.close.addEventListener("click", () => this.close());
    this._el.toasts.addEventListener("click", (e) => this._onToastClick(e));
    /** @type {[string, boolean][]} */
    const holds = [
      ["pointerenter", true],
      ["pointerleave", false],
      ["focusin", true],
      ["focusout", false],
    ];
    for (const [type, hold] of holds) {
      this._el.toasts.addEventListener(type, () => this._core?.holdToasts(hold));
    }
    this._el.push.addEventListener("click", () => this._core?.enablePush());
    this._el.desktop.addEventListener("click", () => this._toggleDesktop());
    this._el.tabs.addEventListener("click", (e) => {
      const tab = /** @type {HTMLElement | null} */ (
        /** @type {HTMLElement} */ (e.target).closest(".tab")
      );
      if (tab) this._core?.selectTab(tab.dataset.category || null);
    });
    this._el.list.addEventListener("click", (e) => this._onListClick(e));
    root.addEventListener("keydown", (e) => this._onKeydown(/** @type {KeyboardEvent} */ (e)));
    // Tab past the panel's last control (or Shift+Tab out of it) closes it, so it does not stay
    // open over the page content that now has the focus.
    root.addEventListener("focusin", (e) => {
      // The focus left an open row menu (and its button): the menu closes.
      const core = this._core;
      if (!core || core.menuFor === null) return;
      const at = /** @type {HTMLElement} */ (e.target);
      const row = this._rows.get(core.menuFor);
      const inMenu = at.closest(".tb-menu") || at.classList.contains("tb-menu-button");
      if (!row || !row.contains(at) || !inMenu) core.closeMenu();
    });
    root.addEventListener("focusout", (e) => {
      const to = /** @type {FocusEvent} */ (e).relatedTarget;
      if (this.open && to instanceof Node && !this.contains(to) && !root.contains(to)) {
        this.close({ focus: false });
      }
    });
    this._onDocumentClick = (e) => {
      if (this.open && !e.composedPath().includes(this)) this.close({ focus: false });
    };
  }

  static get observedAttributes() {
    return [
      "theme",
      "no-desktop",
      "locale",
      "lang",
      "strings",
      "max-items",
      "category-labels",
      "toasts",
    ];
  }

  attributeChangedCallback(name) {
    if (!this._core) return;
    if (name === "strings") this._readStrings();
    if (name === "max-items") this._core.setMaxItems(this._maxItems());
    if (name === "category-labels") this._core.setCategoryLabels(this._categoryLabels());
    if (name === "toasts") this._core.setToasts(this.hasAttribute("toasts"));
    if (name === "locale" || name === "lang" || name === "strings") {
      this._core.setLocale(this._pickLocale(), this._overrides);
    } else {
      this._render();
    }
  }

  /**
   * The tidings.js client (null while disconnected).
   * @returns {ReturnType<typeof createTidings> | null}
   */
  get client() {
    return this._client;
  }

  /**
   * The overrides of the locale's strings (see bell-strings.js); setting replaces them.
   * @returns {import("./bell-strings.js").BellStrings}
   */
  get strings() {
    return this._core?.strings ?? { ...STRINGS, ...(this._overrides || {}) };
  }

  set strings(value) {
    this._overrides = value && typeof value === "object" ? { ...value } : null;
    this._core?.setLocale(this._pickLocale(), this._overrides);
  }

  /** The locale in use. @returns {string} */
  get locale() {
    return this._core?.locale ?? this._pickLocale();
  }

  /** Whether the dropdown is open. @returns {boolean} */
  get open() {
    return this._core?.isOpen ?? false;
  }

  /** The `locale` attribute, else the nearest `lang`, else the document's or browser's. */
  _pickLocale() {
    const around = this.closest("[lang]")?.getAttribute("lang");
    return pickLocale(
      this.getAttribute("locale"),
      around,
      document.documentElement.lang,
      globalThis.navigator?.language,
    );
  }

  _readStrings() {
    if (!this.hasAttribute("strings")) return;
    try {
      const parsed = JSON.parse(this.getAttribute("strings") || "");
      if (parsed && typeof parsed === "object") this._overrides = parsed;
    } catch {
      // not JSON: keep the defaults
    }
  }

  /** The `category-labels` attribute (JSON), or null (not given or not JSON). */
  _categoryLabels() {
    try {
      const parsed = JSON.parse(this.getAttribute("category-labels") || "null");
      return parsed && typeof parsed === "object" ? parsed : null;
    } catch {
      return null; // not JSON: the keys, made readable
    }
  }

  _maxItems() {
    const value = Number(this.getAttribute("max-items"));
    return Number.isInteger(value) && value > 0 ? value : 50;
  }

  connectedCallback() {
    this._readStrings();
    document.addEventListener("click", this._onDocumentClick);
    // Focus landing outside closes it as a click outside does: also when Tab past the page's last
    // control went through the browser's own UI and wrapped round (focusout had no target then).
    document.addEventListener("focusin", this._onDocumentClick);
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
      timeout: number("timeout", 10000),
      grouped: true,
      // Read when needed, so a host may set `bell.getToken` (or `token-url`) after the element
      // exists.
      getToken: () => {
        if (typeof this.getToken === "function") return this.getToken();
        const url = this.getAttribute("token-url");
        return url ? tokenFromUrl(url)() : null;
      },
    });
    this._core = new BellCore({
      client: this._client,
      locale: this._pickLocale(),
      strings: this._overrides,
      maxItems: this._maxItems(),
      push: !this.hasAttribute("no-push"),
      categoryLabels: this._categoryLabels(),
      toasts: this.hasAttribute("toasts"),
      onUpdate: () => this._render(),
      onAnnounce: (text) => this._announce(text),
      onArrival: (n) => this._arrived(n),
    });
  }

  disconnectedCallback() {
    document.removeEventListener("click", this._onDocumentClick);
    document.removeEventListener("focusin", this._onDocumentClick);
    this._core?.destroy();
    this._core = null;
    this._client?.close();
    this._client = null;
    this._rows.clear();
    this._el.list.replaceChildren();
  }

  /** Open the dropdown when closed, close it when open. */
  toggle() {
    if (this.open) this.close();
    else this.show();
  }

  /** Open the dropdown (what it shows becomes seen). */
  show() {
    this._core?.open();
  }

  /**
   * Close the dropdown.
   * @param {{focus?: boolean}} [options] focus: give the focus back to the bell button (true)
   */
  close({ focus = true } = {}) {
    if (!this.open) return;
    this._core?.close();
    if (focus) this._el.bell.focus();
  }

  // --- arrivals --------------------------------------------------------------------------------

  _announce(text) {
    const live = this._el.live;
    // Emptied first, so the same text twice is announced twice.
    live.textContent = "";
    requestAnimationFrame(() => {
      live.textContent = text;
    });
  }

  _arrived(n) {
    this.dispatchEvent(
      new CustomEvent("new-notification", { detail: n, bubbles: true, composed: true }),
    );
    this._desktop(n);
  }

  _desktop(n) {
    if (!this._desktopEnabled() || document.visibilityState === "visible") return;
    try {
      // The tag makes the tabs that all got it show one alert, not one each.
      const alert = new Notification(this._t("desktopTitle"), {
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

  /** @param {string} key @param {Record<string, string | number>} [values] */
  _t(key, values) {
    return this._core ? this._core.t(key, values) : format(STRINGS[key], values);
  }

  // --- rendering -------------------------------------------------------------------------------

  _render() {
    const core = this._core;
    if (!core) return;
    const v = core.view();
    const el = this._el;
    this._renderToasts(v.toasts);
    el.badge.hidden = !v.badge;
    el.badge.textContent = v.badge;
    el.bell.setAttribute("aria-label", v.bellLabel);
    el.bell.setAttribute("aria-expanded", v.open ? "true" : "false");
    const opening = v.open && el.panel.hidden;
    el.panel.hidden = !v.open;
    if (opening) {
      el.panel.style.transform = "";
      const box = el.panel.getBoundingClientRect();
      const dx = panelShift(box.left, box.right, document.documentElement.clientWidth);
      el.panel.style.transform = dx ? `translateX(${dx}px)` : "";
    }
    this.dataset.unread = String(v.unread);
    this.dataset.unseen = String(v.unseen);
    this.dataset.connection = v.connection;
    this.dataset.role = v.role;
    this.dataset.status = v.status;
    this.dataset.locale = v.locale;
    this.dataset.view = v.archived ? "archive" : v.snoozed ? "snoozed" : "inbox";
    if (!v.open && this._rows.size === 0) return; // nothing drawn yet: the panel is drawn on open

    el.title.textContent = v.title;
    el.refresh.setAttribute("aria-label", this._t("refresh"));
    el.refresh.title = this._t("refresh");
    el.close.setAttribute("aria-label", this._t("close"));
    el.markAll.textContent = this._t("markAllRead");
    el.markAll.disabled = v.markAllDisabled;
    el.markAll.hidden = v.archived || v.snoozed;
    const moreFocused = el.more.matches(":focus");
    el.more.textContent = this._t("loadMore");
    // aria-disabled, not disabled, while it loads: a disabled button drops the focus to <body>,
    // where Escape no longer reaches the bell.
    el.more.setAttribute("aria-disabled", v.loadingMore ? "true" : "false");
    if (moreFocused && !v.more) {
      // Everything is loaded: the focus goes to the last row, where the list continues.
      this._focusAfter = v.rows.at(-1)?.id ?? "bell";
    }
    el.more.hidden = !v.more;
    el.archiveView.textContent = this._t(v.archived ? "showInbox" : "showArchive");
    el.archiveView.hidden = v.snoozed;
    el.snoozedView.textContent = this._t(v.snoozed ? "showInbox" : "showSnoozed");
    el.snoozedView.hidden = v.archived;
    el.note.hidden = !v.note;
    el.note.dataset.note = v.note ?? "";
    el.note.classList.toggle("tb-empty", v.note === "empty");
    const noteSig = JSON.stringify([v.note, v.noteText, v.emptyDetail]);
    if (el.note.dataset.sig !== noteSig) {
      el.note.dataset.sig = noteSig;
      if (v.note === "empty") {
        // "All caught up", with an icon: the empty list is good news, not a blank.
        el.note.innerHTML = ICONS.check;
        el.note.append(make("strong", "", v.noteText));
        if (v.emptyDetail) el.note.append(make("span", "", v.emptyDetail));
      } else {
        el.note.textContent = v.noteText;
      }
    }
    el.banner.hidden = !v.banner;
    el.banner.textContent = v.banner || "";
    if (!v.push && !el.push.hidden && el.push.matches(":focus")) {
      // The control just activated goes (notifications blocked): the keyboard keeps its place.
      el.archiveView.focus();
    }
    el.push.hidden = !v.push;
    el.push.textContent = v.push || "";
    const canDesktop = typeof Notification === "function" && !this.hasAttribute("no-desktop");
    el.desktop.hidden = !canDesktop;
    if (canDesktop) {
      const blocked = Notification.permission === "denied";
      el.desktop.disabled = blocked;
      el.desktop.textContent = blocked
        ? this._t("desktopBlocked")
        : this._t(this._desktopEnabled() ? "desktopOn" : "desktopOff");
      // The label says what pressing does ("Turn on…"), so no aria-pressed: a toggle's name
      // must stay the same when pressed.
      el.desktop.removeAttribute("aria-pressed");
    }
    this._renderTabs(v.tabs);
    this._renderList(v.rows);
    this._focusMenu();
  }

  /** A menu just opened from the keyboard or a click: its first (or last) item takes the focus. */
  _focusMenu() {
    const core = this._core;
    if (!core || core.menuFor === null) return;
    const focus = core.takeMenuFocus();
    if (!focus) return;
    const row = this._rows.get(core.menuFor);
    /** @type {HTMLElement[]} */
    const items = row ? Array.from(row.querySelectorAll('[role="menuitem"]')) : [];
    (focus === "last" ? items.at(-1) : items[0])?.focus();
  }

  /** @param {import("./bell-core.js").BellToast[]} toasts */
  _renderToasts(toasts) {
    const box = this._el.toasts;
    const sig = JSON.stringify(toasts);
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    const focused = box.contains(this.shadowRoot.activeElement);
    box.replaceChildren(
      ...toasts.map((t) => {
        const toast = make("div", "tb-toast");
        toast.dataset.id = String(t.id);
        toast.dataset.key = t.key;
        const openIt = button("tb-toast-open", "");
        openIt.append(make("strong", "", t.title), make("span", "", t.message));
        const dismiss = button("tb-icon-button tb-toast-dismiss", "", this._t("dismiss"));
        dismiss.innerHTML = ICONS.close;
        toast.append(openIt, dismiss);
        return toast;
      }),
    );
    // The toast that had the focus went: the bell keeps it, not <body>.
    if (focused && !box.contains(this.shadowRoot.activeElement)) {
      /** @type {HTMLElement} */ (box.querySelector(".tb-toast-dismiss") ?? this._el.bell).focus();
    }
  }

  _onToastClick(e) {
    const core = this._core;
    const target = /** @type {HTMLElement} */ (e.target);
    const toast = /** @type {HTMLElement | null} */ (target.closest(".tb-toast"));
    if (!core || !toast) return;
    e.stopPropagation(); // not a click outside that closes the panel it opens
    if (target.closest(".tb-toast-dismiss")) {
      core.dismissToast(toast.dataset.key || "");
    } else {
      // Opens the panel on that notification.
      this._focusAfter = Number(toast.dataset.id);
      core.holdToasts(false);
      core.open();
    }
  }

  /**
   * The ARIA tabs pattern: a tablist whose selected tab alone is in the Tab order (arrow keys
   * move between tabs), each tab named by what it shows ("billing 2" + "unread" for screen
   * readers), the list under it their tabpanel.
   */
  _renderTabs(tabs) {
    const box = this._el.tabs;
    const view = this._el.view;
    box.hidden = !tabs.length;
    box.setAttribute("aria-label", this._t("tabs"));
    const base = view.id;
    const selected = tabs.findIndex((tab) => tab.selected);
    if (tabs.length) {
      view.setAttribute("role", "tabpanel");
      view.setAttribute("aria-labelledby", `${base}-tab-${Math.max(0, selected)}`);
    } else {
      view.removeAttribute("role");
      view.removeAttribute("aria-labelledby");
    }
    const sig = JSON.stringify(tabs);
    if (box.dataset.sig === sig) return;
    box.dataset.sig = sig;
    const focused = /** @type {HTMLElement | null} */ (this.shadowRoot.activeElement);
    const focusedKey = focused?.classList.contains("tab") ? focused.dataset.category : null;
    box.replaceChildren(
      ...tabs.map((tab, i) => {
        const b = button("tab", "");
        b.id = `${base}-tab-${i}`;
        b.dataset.category = tab.key;
        b.setAttribute("role", "tab");
        b.setAttribute("aria-selected", tab.selected ? "true" : "false");
        b.setAttribute("aria-controls", base);
        // No tab selected (a category the list no longer has): the first one takes the focus.
        b.tabIndex = tab.selected || (selected < 0 && i === 0) ? 0 : -1;
        b.append(make("span", "label", tab.label));
        if (tab.count > 0) {
          b.append(" ", make("span", "count tb-tab-count", String(tab.count)));
          b.append(make("span", "sr", ` ${tab.unreadText}`));
        }
        return b;
      }),
    );
    if (focusedKey !== null && focusedKey !== undefined) {
      /** @type {HTMLElement | null} */ (
        box.querySelector(`.tab[data-category="${CSS.escape(focusedKey)}"]`)
      )?.focus();
    }
  }

  /** Rows keyed by id: a row is built once and redrawn only when what it shows changed. */
  _renderList(rows) {
    const list = this._el.list;
    const active = this.shadowRoot.activeElement;
    const keep = new Set();
    let previous = null;
    for (const r of rows) {
      keep.add(r.id);
      let row = this._rows.get(r.id);
      if (!row) {
        row = /** @type {HTMLLIElement} */ (make("li"));
        row.tabIndex = -1;
        row.dataset.id = String(r.id);
        this._rows.set(r.id, row);
      }
      if (this._sigs.get(row) !== r.sig) this._drawRow(row, r);
      else {
        const time = /** @type {HTMLElement} */ (row.querySelector("time"));
        if (time.textContent !== r.time) time.textContent = r.time;
      }
      const next = previous ? previous.nextSibling : list.firstChild;
      if (next !== row) list.insertBefore(row, next);
      previous = row;
    }
    let lost = false;
    for (const [id, row] of this._rows) {
      if (!keep.has(id)) {
        if (row.contains(active)) lost = true;
        row.remove();
        this._rows.delete(id);
      }
    }
    const after = this._focusAfter;
    if (after !== null && !(typeof after === "number" && !this._rows.has(after))) {
      this._focusAfter = null;
      if (after === "bell") this._el.bell.focus();
      else this._rows.get(after)?.focus();
    } else if (lost) {
      this._el.bell.focus();
    }
  }

  /**
   * A row: the avatar column (kept when there is no avatar, so every text starts at the same
   * place), the text (the message is the one primary click: its link, or the row, reads it), and
   * a "⋯" menu button with the rest (the ARIA menu button pattern).
   * @param {HTMLLIElement} row
   * @param {import("./bell-core.js").BellRow} r
   */
  _drawRow(row, r) {
    const active = /** @type {HTMLElement | null} */ (this.shadowRoot.activeElement);
    const focusedClass =
      active && active !== row && row.contains(active)
        ? active.classList[active.classList.length - 1]
        : null;
    this._sigs.set(row, r.sig);
    row.className = `item${r.kind === "item" ? "" : ` ${r.kind}`}${r.unread ? " unread" : ""}`;
    const dot = make("span", "dot");
    dot.setAttribute("aria-hidden", "true");
    const parts = [dot];
    if (r.actor) {
      const avatar = make("span", "avatar");
      if (r.actor.avatar) {
        const img = /** @type {HTMLImageElement} */ (make("img"));
        img.src = r.actor.avatar;
        img.alt = r.actor.name;
        img.loading = "lazy";
        avatar.append(img);
      } else {
        avatar.textContent = r.actor.initials;
        avatar.setAttribute("aria-hidden", "true");
        avatar.classList.add("initials");
      }
      parts.push(avatar);
    } else {
      const slot = make("span", "tb-avatar-slot");
      slot.setAttribute("aria-hidden", "true");
      parts.push(slot);
    }
    const body = make("div", "body");
    const top = make("div", "tb-row-top");
    const text = make("div", "tb-text");
    // Said first by a screen reader: unread or read, not only shown by colour.
    text.append(make("span", "sr state", `${r.state}: `));
    if (r.group) text.append(make("span", "summary", r.group.summary));
    if (r.actor) text.append(make("span", "actor", r.actor.name));
    const message = make(r.href ? "a" : "span", `message tb-message${r.full ? " tb-full" : ""}`);
    message.textContent = r.message;
    if (r.href) /** @type {HTMLAnchorElement} */ (message).href = r.href;
    message.id = `${this._el.panel.id}-m${r.id}`;
    text.append(message);
    top.append(text);
    const menuId = `${this._el.panel.id}-menu${r.id}`;
    const menuButton = button("tb-menu-button", "⋯", r.menuLabel);
    menuButton.setAttribute("aria-haspopup", "menu");
    menuButton.setAttribute("aria-expanded", r.menuOpen ? "true" : "false");
    menuButton.setAttribute("aria-controls", menuId);
    top.append(menuButton);
    body.append(top);
    if (r.clamped) {
      const toggle = button("tb-link full-toggle", r.fullToggle);
      toggle.setAttribute("aria-expanded", r.full ? "true" : "false");
      toggle.setAttribute("aria-controls", message.id);
      body.append(toggle);
    }
    if (r.actions.length) {
      const actions = make("div", "actions");
      for (const a of r.actions) {
        const b = button("action", a.label);
        b.dataset.href = a.href;
        actions.append(b);
      }
      body.append(actions);
    }
    const meta = make("div", "meta");
    const time = /** @type {HTMLTimeElement} */ (make("time", "", r.time));
    time.dateTime = r.datetime;
    meta.append(time);
    if (r.snoozed) meta.append(make("span", "tb-snoozed", r.snoozed));
    if (r.group) {
      const toggle = button("tb-link group-toggle", r.group.toggle);
      toggle.setAttribute("aria-expanded", r.group.expanded ? "true" : "false");
      meta.append(toggle);
    }
    body.append(meta);
    const menu = make("ul", "tb-menu");
    menu.id = menuId;
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", r.menuLabel);
    menu.hidden = !r.menuOpen;
    for (const item of r.menu) {
      const li = make("li");
      li.setAttribute("role", "none");
      const b = button(`menu-${item.action.replace(":", "-")}`, item.label);
      b.setAttribute("role", "menuitem");
      b.tabIndex = -1;
      b.dataset.action = item.action;
      li.append(b);
      menu.append(li);
    }
    body.append(menu);
    parts.push(body);
    row.replaceChildren(...parts);
    if (focusedClass) {
      // The focused control was redrawn: the same one again, or its row when it went away.
      const again = /** @type {HTMLElement | null} */ (row.querySelector(`.${focusedClass}`));
      const menuButton = /** @type {HTMLElement | null} */ (row.querySelector(".tb-menu-button"));
      (again && !again.closest("[hidden]") ? again : (menuButton ?? row)).focus();
    } else if (active && row.contains(active) && active !== row) {
      row.focus();
    }
  }

  _onListClick(e) {
    const core = this._core;
    const target = /** @type {HTMLElement} */ (e.target);
    const row = /** @type {HTMLElement | null} */ (target.closest(".item"));
    if (!row || !core) return;
    const id = Number(row.dataset.id);
    const control = /** @type {HTMLElement | null} */ (target.closest("button, a"));
    const cls = control?.classList;
    if (!control) core.activate(id);
    else if (cls.contains("tb-menu-button")) {
      if (core.menuFor === id) core.closeMenu();
      else core.openMenu(id, "first");
    } else if (control.dataset.action) {
      const fromKeyboard = row.contains(this.shadowRoot.activeElement);
      const action = control.dataset.action;
      // The focus stays in the bell: on the next row when this one leaves (set before the row
      // goes, which may be at once), else back on the "⋯" button.
      if (fromKeyboard && action !== "markRead") this._focusAfter = core.neighbourOf(id) ?? "bell";
      core.runMenu(id, action);
      if (fromKeyboard && action === "markRead") {
        /** @type {HTMLElement | null} */ (row.querySelector(".tb-menu-button"))?.focus();
      }
    } else if (cls.contains("full-toggle")) core.toggleFull(id);
    else if (cls.contains("group-toggle")) {
      const n = core.state.items.find((m) => m.id === id);
      if (n?.group) core.toggleGroup(n.group);
    } else if (cls.contains("action")) {
      core.activate(id);
      location.assign(control.dataset.href || "");
    } else if (cls.contains("message")) core.activate(id);
  }

  _onKeydown(e) {
    const core = this._core;
    const root = /** @type {ShadowRoot} */ (this.shadowRoot);
    const open = core && core.menuFor !== null ? this._rows.get(core.menuFor) : undefined;
    bellKeydown(e, {
      open: this.open,
      active: root.activeElement,
      bell: this._el.bell,
      rows: /** @type {HTMLElement[]} */ ([...this._el.list.children]),
      tabs: /** @type {HTMLElement[]} */ ([...this._el.tabs.children]),
      menu: open
        ? {
            button: /** @type {HTMLElement} */ (open.querySelector(".tb-menu-button")),
            items: /** @type {HTMLElement[]} */ (
              Array.from(open.querySelectorAll('[role="menuitem"]'))
            ),
          }
        : null,
      close: () => this.close(),
      closeMenu: () => core?.closeMenu(),
      openMenu: (menuButton, focus) => {
        const row = /** @type {HTMLElement} */ (menuButton.closest(".item"));
        core?.openMenu(Number(row.dataset.id), focus);
      },
      selectTab: (category) => core?.selectTab(category),
      activate: (id) => core?.activate(id),
    });
  }
}

if (typeof customElements !== "undefined" && !customElements.get("tidings-bell")) {
  customElements.define("tidings-bell", TidingsBell);
}
