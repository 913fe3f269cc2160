// bell-theme.js: the look both bells share (<tidings-bell> in its shadow root, the Vue bells in a
// page-wide <style>): the palette once, in light and dark, and the CSS of the parts both draw
// with the same class names (the row menu, the clamp, the empty state, the toasts, the phone
// sheet). Each bell adds the CSS of its own class names (the Vue bell keeps those of the original
// NotificationBell.vue). `adoptStyle` puts that CSS on the page without inline style.
//
// Only `adoptStyle`, when called, touches browser globals, so the module loads in Node.

/**
 * The colours, each overridable by the host as `--tidings-<name>`. Every text colour is 4.5:1 or
 * more on the background it is drawn on (axe checks it in tests/browser/test_a11y.py).
 */
export const LIGHT = Object.freeze({
  accent: "#2563eb",
  bg: "#ffffff",
  fg: "#1f2937",
  muted: "#636b78", // 4.9:1 on unread-bg
  border: "#e5e7eb",
  "unread-bg": "#eff6ff",
  "unread-muted": "#4b5563", // the meta text of unread rows (#6b7280 was 4.44:1)
  "avatar-bg": "#dbeafe",
  "avatar-fg": "#1e3a8a",
  "badge-bg": "#dc2626",
  "badge-fg": "#ffffff",
  "warn-bg": "#fef3c7",
  "warn-fg": "#92400e",
  "hover-bg": "#f3f4f6",
  "ok-fg": "#15803d",
});

/** Dark: the same names; the badge keeps its colours. */
export const DARK = Object.freeze({
  accent: "#60a5fa",
  bg: "#1f2937",
  fg: "#f3f4f6",
  muted: "#9ca3af",
  border: "#374151",
  "unread-bg": "#1e3a5f",
  "unread-muted": "#cbd5e1",
  "avatar-bg": "#1e3a8a",
  "avatar-fg": "#dbeafe",
  "warn-bg": "#451a03",
  "warn-fg": "#fde68a",
  "hover-bg": "#374151",
  "ok-fg": "#4ade80",
});

/** @param {Record<string, string>} palette */
function declarations(palette) {
  return Object.entries(palette)
    .map(([name, value]) => `--_${name}: var(--tidings-${name}, ${value});`)
    .join("\n  ");
}

/**
 * The palette as CSS custom properties (`--_accent`, …) on a bell's root: light by default, dark
 * when the system is dark unless the theme is "light", dark when the theme is "dark".
 * @param {{root: string, theme: (value: "light" | "dark") => string, notLight: string}} at
 *   the root's selector, the root with a theme, the root without theme "light"
 * @returns {string}
 */
export function paletteCss({ root, theme, notLight }) {
  return `${root} {\n  ${declarations(LIGHT)}\n}
@media (prefers-color-scheme: dark) {\n  ${notLight} {\n  ${declarations(DARK)}\n  }\n}
${theme("dark")} {\n  ${declarations(DARK)}\n}\n`;
}

/**
 * The CSS of the parts both bells draw with the same class names, under `scope` ("" in a shadow
 * root, ".tidings-vue " in the page).
 * @param {string} scope
 * @param {string} panel the open panel's selector (".panel", ".notification-dropdown")
 * @returns {string}
 */
export function sharedCss(scope, panel) {
  const s = scope;
  return `
${s}.tb-avatar-slot { flex: none; width: 2rem; }
${s}.tb-message {
  display: -webkit-box; -webkit-box-orient: vertical; -webkit-line-clamp: 3; line-clamp: 3;
  overflow: hidden; overflow-wrap: anywhere; color: inherit; text-decoration: none;
}
${s}.tb-message.tb-full { display: block; -webkit-line-clamp: none; line-clamp: none; }
${s}a.tb-message:hover { text-decoration: underline; }
${s}a.tb-message:focus-visible { text-decoration: underline; }
${s}.tb-row-top { display: flex; align-items: flex-start; gap: .25rem; }
${s}.tb-row-top > .tb-text { flex: 1; min-width: 0; }
${s}.tb-link {
  border: 0; background: none; padding: .1rem .3rem; border-radius: 4px; color: var(--_accent);
  font-size: .78rem; white-space: nowrap; min-height: 24px;
}
${s}.tb-link:hover { text-decoration: underline; }
${s}.tb-link.full-toggle { margin-left: -.3rem; }
${s}.tb-menu-button {
  flex: none; display: inline-grid; place-items: center; width: 28px; height: 28px;
  min-height: 28px; padding: 0; border: 0; border-radius: 6px; background: none;
  color: inherit; font-size: 1.1rem; line-height: 1;
}
${s}.tb-menu-button:hover, ${s}.tb-menu-button[aria-expanded="true"] {
  background: var(--_hover-bg);
}
${s}.tb-menu {
  margin: .35rem 0 0; padding: .25rem; list-style: none; border: 1px solid var(--_border);
  border-radius: 8px; background: var(--_bg); color: var(--_fg);
  box-shadow: 0 4px 12px rgba(0, 0, 0, .12);
}
${s}.tb-menu [role="menuitem"] {
  display: block; width: 100%; min-height: 28px; padding: .3rem .5rem; border: 0;
  border-radius: 5px; background: none; color: var(--_fg); font-size: .85rem; text-align: left;
}
${s}.tb-menu [role="menuitem"]:hover, ${s}.tb-menu [role="menuitem"]:focus {
  background: var(--_hover-bg); outline: 2px solid var(--_accent); outline-offset: -2px;
}
${s}.tb-menu [role="separator"] { height: 1px; margin: .25rem 0; background: var(--_border); }
${s}.tb-snoozed { color: inherit; }
${s}.tb-empty {
  display: flex; flex-direction: column; align-items: center; gap: .35rem; margin: 0;
  padding: 2rem .75rem; color: var(--_muted); text-align: center;
}
${s}.tb-empty svg { width: 2.5rem; height: 2.5rem; color: var(--_ok-fg); }
${s}.tb-empty strong { color: var(--_fg); font-size: .95rem; }
${s}.tb-tab-count {
  display: inline-block; min-width: 1.1rem; padding: 0 .3rem; box-sizing: border-box;
  border-radius: .55rem; background: var(--_accent); color: var(--_bg); font-size: .7rem;
  font-weight: 700; line-height: 1.1rem; text-align: center;
}
${s}.tb-icon-button {
  display: inline-grid; place-items: center; width: 28px; height: 28px; min-height: 28px;
  padding: 0; border: 0; border-radius: 6px; background: none; color: var(--_accent);
}
${s}.tb-icon-button:hover { background: var(--_hover-bg); }
${s}.tb-icon-button svg { width: 1.1rem; height: 1.1rem; }
${s}.tb-close { display: none; color: var(--_fg); }
${s}.tb-push {
  border: 1px solid var(--_accent); border-radius: 6px; background: var(--_bg);
  color: var(--_accent); padding: .2rem .6rem; font-size: .85rem; min-height: 28px;
}
${s}.tb-toasts {
  position: fixed; right: 1rem; bottom: 1rem; z-index: var(--tidings-z, 1000);
  display: flex; flex-direction: column; gap: .5rem; width: min(22rem, calc(100vw - 2rem));
}
${s}.tb-toast {
  display: flex; align-items: flex-start; gap: .5rem; padding: .6rem .6rem .6rem .75rem;
  border: 1px solid var(--_border); border-left: 4px solid var(--_accent); border-radius: 8px;
  background: var(--_bg); color: var(--_fg); box-shadow: 0 10px 30px rgba(0, 0, 0, .18);
  font-size: .85rem;
}
${s}.tb-toast-open {
  flex: 1; min-width: 0; border: 0; padding: 0; background: none; color: inherit;
  text-align: left; font: inherit; min-height: 24px;
}
${s}.tb-toast-open strong { display: block; font-size: .78rem; color: var(--_muted); }
${s}.tb-toast-dismiss { color: var(--_fg); }
@media (prefers-reduced-motion: no-preference) {
  ${s}.tb-toast { animation: tb-toast-in .2s ease-out; }
}
@keyframes tb-toast-in { from { opacity: 0; transform: translateY(.5rem); } to { opacity: 1; } }
/* A phone: the panel is a sheet over the whole width (at 320 px a dropdown hanging from the bell
   started off screen), with the same controls and a close button. */
@media (max-width: 480px) {
  ${s}${panel} {
    position: fixed; inset: 0; top: 0; width: 100vw; max-width: none; height: 100dvh;
    border-radius: 0; border: 0; transform: none !important; display: flex;
    flex-direction: column;
  }
  ${s}${panel}[hidden] { display: none; }
  ${s}${panel} ul { max-height: none; flex: 1; }
  ${s}${panel} .tb-view { flex: 1; min-height: 0; display: flex; flex-direction: column; }
  ${s}.tb-close { display: inline-grid; }
  ${s}.tb-toasts { left: .5rem; right: .5rem; bottom: .5rem; width: auto; }
}
`;
}

/** Icons (aria-hidden: each control they sit in has a name). */
export const ICONS = Object.freeze({
  bell: `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
  <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/>
  <path d="M13.73 21a2 2 0 0 1-3.46 0"/></svg>`,
  check: `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
  <circle cx="12" cy="12" r="10"/><path d="m8 12 3 3 5-6"/></svg>`,
  refresh: `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
  <path d="M21 12a9 9 0 1 1-3-6.7L21 8"/><path d="M21 3v5h-5"/></svg>`,
  close: `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
  stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
  <path d="M18 6 6 18M6 6l12 12"/></svg>`,
});

/** @type {Map<string, CSSStyleSheet>} one constructed sheet per CSS text, shared by every bell */
const SHEETS = new Map();

/**
 * Give `target` (a shadow root, or the document) the CSS `css`, once. A constructed stylesheet
 * (`adoptedStyleSheets`) is not inline style, so a Content-Security-Policy whose `style-src` has
 * no `'unsafe-inline'` keeps the bell's look; a browser without constructed stylesheets gets a
 * `<style>` element instead (what every bell did before).
 * @param {ShadowRoot | Document} target
 * @param {string} css
 */
export function adoptStyle(target, css) {
  if ("adoptedStyleSheets" in target && typeof CSSStyleSheet === "function") {
    let sheet = SHEETS.get(css);
    if (sheet === undefined) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(css);
      SHEETS.set(css, sheet);
    }
    if (!target.adoptedStyleSheets.includes(sheet)) {
      target.adoptedStyleSheets = [...target.adoptedStyleSheets, sheet];
    }
    return;
  }
  const doc = "head" in target ? target : target.ownerDocument;
  const parent = "head" in target ? target.head : target;
  if (Array.from(parent.querySelectorAll("style")).some((s) => s.textContent === css)) return;
  const style = doc.createElement("style");
  style.textContent = css;
  parent.prepend(style);
}
