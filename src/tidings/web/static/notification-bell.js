// NotificationBell: the tidings bell as a Vue component, for Vue 2.7 and Vue 3 from this one file.
//
// A drop-in for the original NotificationBell.vue: same name, same class names, the same
// `new-notification` event; underneath, tidings.js (one shared stream per browser, resume,
// backoff, read state) and bell-core.js, which <tidings-bell> shares: the same strings, locales,
// tabs, groups, archive view and keyboard handling. Options API with a template string, so it
// needs a Vue build that includes the template compiler (Vue 2: vue/dist/vue.esm.js; Vue 3:
// vue/dist/vue.esm-bundler.js or vue.esm-browser.js). Both teardown hooks are present
// (beforeDestroy for Vue 2, beforeUnmount for Vue 3); the teardown runs once.
//
//   import NotificationBell from "https://tidings.example.com/static/notification-bell.js";
//   components: { NotificationBell }
//   <notification-bell base-url="https://tidings.example.com" :get-token="fetchToken" />
//   <notification-bell base-url="https://tidings.example.com" token-url="/tidings/token" />
//
// Vue 3 stores the compiled template on the component object; a page that runs Vue 2 and Vue 3
// side by side gives one of them a copy: `{ ...NotificationBell }`.

import { createTidings } from "./tidings.js";
import { BellCore, bellKeydown, isSnoozedView, panelShift } from "./bell-core.js";
import { ICONS, adoptStyle, paletteCss, sharedCss } from "./bell-theme.js";
import { STRINGS, pickLocale } from "./bell-strings.js";
import { tokenFromUrl } from "./token-url.js";

export { STRINGS };

const STYLE = `
${paletteCss({
  root: ".tidings-vue",
  theme: (value) => `.tidings-vue[data-theme="${value}"]`,
  notLight: '.tidings-vue:not([data-theme="light"])',
})}
.tidings-vue { position: relative; display: inline-block; color: var(--_fg);
  font: var(--tidings-font, 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif); }
.tidings-vue button { font: inherit; color: inherit; cursor: pointer; }
.tidings-vue :focus-visible { outline: 2px solid var(--_accent); outline-offset: 2px; }
.tidings-vue .bell-button { position: relative; background: none; border: none; padding: .4rem;
  color: var(--tidings-bell-color, currentColor); border-radius: 50%; }
.tidings-vue .bell-button svg { width: 1.5rem; height: 1.5rem; display: block; }
.tidings-vue .notification-badge { position: absolute; top: -2px; right: -4px; min-width: 1.25rem;
  box-sizing: border-box; background: var(--_badge-bg); color: var(--_badge-fg);
  border-radius: .625rem; padding: 0 .3rem; font-size: .72rem; font-weight: 700;
  line-height: 1.25rem; }
.tidings-vue .notification-dropdown {
  position: absolute; right: 0; top: 100%; width: var(--tidings-width, 22rem);
  max-width: calc(100vw - 1rem); background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border);
  border-radius: var(--tidings-radius, 10px); box-shadow: 0 10px 30px rgba(0,0,0,.15);
  z-index: var(--tidings-z, 1000);
  overflow: hidden; }
/* One line: the title shrinks (an ellipsis) before a control wraps under it (German). */
.tidings-vue .dropdown-header {
  display: flex; gap: .35rem; align-items: center; padding: .5rem .5rem .5rem .75rem;
  border-bottom: 1px solid var(--_border); }
.tidings-vue .dropdown-title { flex: 1; min-width: 0; margin: 0; font-size: 1rem; font-weight: 700;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.tidings-vue .mark-all-button,
.tidings-vue .dropdown-footer .tidings-link {
  background: none; border: 0; color: var(--_accent); font-size: .85rem; padding: .15rem .3rem;
  white-space: nowrap; }
.tidings-vue button:disabled, .tidings-vue button[aria-disabled="true"] {
  color: var(--_muted); cursor: default; }
.tidings-vue .notification-banner {
  margin: 0; padding: .5rem .75rem; background: var(--_warn-bg); color: var(--_warn-fg);
  font-size: .85rem;
}
.tidings-vue ul {
  list-style: none; padding: 0; margin: 0; max-height: var(--tidings-max-height, 24rem);
  overflow-y: auto;
}
.tidings-vue li { padding: .6rem .75rem; border-bottom: 1px solid var(--_border); }
.tidings-vue li:last-child { border-bottom: none; }
.tidings-vue li.unread { background: var(--_unread-bg); }
.tidings-vue li.unread .notification-meta { color: var(--_unread-muted); }
.tidings-vue .notification-item { display: flex; gap: .5rem; }
.tidings-vue .notification-dot { flex: none; width: .5rem; height: .5rem; margin-top: .45rem;
  border-radius: 50%; }
.tidings-vue li.unread .notification-dot { background: var(--_accent); }
.tidings-vue .notification-item.member { padding-left: 2rem; }
.tidings-vue .notification-body { flex: 1; min-width: 0; }
.tidings-vue .notification-avatar { flex: none; display: inline-grid; place-items: center;
  width: 2rem; height: 2rem; border-radius: 50%; overflow: hidden; font-size: .75rem;
  font-weight: 700; background: var(--_avatar-bg); color: var(--_avatar-fg); }
.tidings-vue .notification-avatar img { width: 100%; height: 100%; object-fit: cover; }
.tidings-vue .notification-actor { display: block; font-size: .8rem; font-weight: 600; }
.tidings-vue .notification-summary { display: block; font-size: .8rem; font-weight: 700; }
.tidings-vue .notification-actions { display: flex; flex-wrap: wrap; gap: .4rem;
  margin-top: .3rem; }
.tidings-vue .notification-actions button { border: 1px solid var(--_accent);
  background: var(--_bg); color: var(--_accent); border-radius: 6px; padding: .15rem .55rem;
  font-size: .8rem; }
.tidings-vue .notification-tabs { display: flex; flex-wrap: wrap; gap: .25rem;
  padding: .4rem .75rem; border-bottom: 1px solid var(--_border); }
.tidings-vue .notification-tabs button { display: inline-flex; align-items: center; gap: .3rem;
  border: 1px solid var(--_border); background: var(--_bg); color: var(--_fg);
  border-radius: 999px; padding: .1rem .5rem .1rem .6rem; font-size: .8rem; line-height: 1.1rem; }
.tidings-vue .notification-tabs button[aria-selected="true"] { border-color: var(--_accent);
  font-weight: 600; }
.tidings-vue li.unread .notification-message { font-weight: 600; }
.tidings-vue li:focus { outline: 2px solid var(--_accent); outline-offset: -2px; }
/* WCAG 2.2 target size (2.5.8): every control at least 24 px tall. */
.tidings-vue button { min-height: 24px; }
.tidings-vue .notification-meta {
  display: flex; flex-wrap: wrap; gap: .25rem; align-items: center; margin-top: .15rem;
  color: var(--_muted); font-size: .78rem;
}
.tidings-vue .notification-meta time { flex: 1 0 auto; white-space: nowrap; }
.tidings-vue .notification-loading,
.tidings-vue .notification-error {
  padding: 1.5rem .75rem; color: var(--_muted); text-align: center;
}
.tidings-vue .dropdown-footer { display: flex; flex-wrap: wrap; align-items: center;
  gap: .25rem .5rem; padding: .4rem .75rem; border-top: 1px solid var(--_border); }
.tidings-vue .dropdown-footer .tidings-link { background: none; border: 0; color: var(--_accent);
  font-size: .85rem; padding: .2rem .35rem; white-space: nowrap; }
.tidings-vue .mark-all-button { background: none; border: 0; color: var(--_accent);
  font-size: .85rem; padding: .2rem .35rem; white-space: nowrap; }
.tidings-vue .push-button { flex-basis: 100%; order: 9; }
/* The row menu is a list inside a row: not a row itself. */
.tidings-vue ul.tb-menu { max-height: none; overflow: visible; }
.tidings-vue .tb-menu li { padding: 0; border: 0; background: none; }
.tidings-vue .tidings-icon svg { width: 1.5rem; height: 1.5rem; display: block; }
${sharedCss(".tidings-vue ", ".notification-dropdown")}
.tidings-vue .tidings-sr {
  position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap;
}
`;

const TEMPLATE = `
<div class="notification-container tidings-vue" :data-unread="view.unread"
     :data-unseen="view.unseen" :data-connection="view.connection" :data-status="view.status"
     :data-locale="view.locale" :data-theme="theme || null"
     :data-view="view.archived ? 'archive' : view.snoozed ? 'snoozed' : 'inbox'"
     @keydown="onKeydown" @focusout="onFocusout" @focusin="onFocusin">
  <button ref="button" type="button" class="bell-button" aria-haspopup="true"
          :aria-expanded="view.open ? 'true' : 'false'" :aria-controls="panelId"
          :aria-label="view.bellLabel"
          @click="toggleDropdown">
    <span class="tidings-icon" v-html="icons.bell"></span>
    <span v-if="view.badge" class="notification-badge">{{ view.badge }}</span>
  </button>
  <div v-if="view.open" :id="panelId" class="notification-dropdown" role="region"
       :aria-labelledby="panelId + '-title'" @click="onPanelClick">
    <div class="dropdown-header">
      <h2 :id="panelId + '-title'" class="dropdown-title">{{ view.title }}</h2>
      <button type="button" class="refresh-button tb-icon-button" :aria-label="t('refresh')"
              :title="t('refresh')" @click.prevent="refreshNotifications"
              v-html="icons.refresh"></button>
      <button v-if="!view.archived && !view.snoozed" type="button" class="mark-all-button"
              :disabled="view.markAllDisabled" @click="markAllRead">{{ t('markAllRead') }}</button>
      <button type="button" class="tb-icon-button tb-close" :aria-label="t('close')"
              @click="close" v-html="icons.close"></button>
    </div>
    <div v-if="view.tabs.length" ref="tabs" class="notification-tabs" role="tablist"
         :aria-label="t('tabs')">
      <button v-for="(tab, i) in view.tabs" :key="tab.key" :id="panelId + '-tab-' + i"
              type="button" class="tab-button" role="tab" :data-category="tab.key"
              :aria-selected="tab.selected ? 'true' : 'false'" :aria-controls="panelId + '-view'"
              :tabindex="tabStop(i) ? 0 : -1" @click="selectTab(tab.category)">
        <!-- The spaces are parts of the expressions: Vue 3 drops a text's leading space at an
             element's start, and the name read "All 6unread". -->
        <span class="label">{{ tab.label }}</span><template v-if="tab.count > 0">{{ ' '
          }}<span class="count tb-tab-count">{{ tab.count }}</span><span
          class="tidings-sr">{{ ' ' + tab.unreadText }}</span></template>
      </button>
    </div>
    <p v-if="view.banner" class="notification-banner">{{ view.banner }}</p>
    <div :id="panelId + '-view'" class="tb-view" :role="view.tabs.length ? 'tabpanel' : null"
         :aria-labelledby="view.tabs.length ? panelId + '-tab-' + selectedTab : null">
    <div v-if="view.note === 'empty'" class="no-notifications tb-empty">
      <span v-html="icons.check"></span><strong>{{ view.noteText }}</strong><span
        v-if="view.emptyDetail">{{ view.emptyDetail }}</span>
    </div>
    <ul ref="list">
      <li v-if="view.note && view.note !== 'empty'" :class="noteClass">{{ view.noteText }}</li>
      <li v-for="row in view.rows" :key="row.key" :data-id="row.id" tabindex="-1"
          :class="['notification-item', row.kind === 'item' ? '' : row.kind,
                   { unread: row.unread }]"
          @click="onRowClick(row, $event)">
        <span class="notification-dot" aria-hidden="true"></span>
        <span v-if="row.actor" class="notification-avatar"
              :aria-hidden="row.actor.avatar ? null : 'true'">
          <img v-if="row.actor.avatar" :src="row.actor.avatar" :alt="row.actor.name"
               loading="lazy"><template v-else>{{ row.actor.initials }}</template>
        </span>
        <span v-else class="tb-avatar-slot" aria-hidden="true"></span>
        <div class="notification-body">
          <div class="tb-row-top">
            <div class="tb-text">
              <span class="tidings-sr">{{ row.state + ': ' }}</span>
              <span v-if="row.group" class="notification-summary">{{ row.group.summary }}</span>
              <span v-if="row.actor" class="notification-actor">{{ row.actor.name }}</span>
              <a v-if="row.href" :id="panelId + '-m' + row.id"
                 :class="['notification-message', 'tb-message', { 'tb-full': row.full }]"
                 :href="row.href">{{ row.message }}</a>
              <span v-else :id="panelId + '-m' + row.id"
                    :class="['notification-message', 'tb-message', { 'tb-full': row.full }]"
                    >{{ row.message }}</span>
            </div>
            <button type="button" class="tb-menu-button" aria-haspopup="menu"
                    :aria-expanded="row.menuOpen ? 'true' : 'false'"
                    :aria-controls="panelId + '-menu' + row.id" :aria-label="row.menuLabel"
                    @click.stop="toggleMenu(row)">⋯</button>
          </div>
          <button v-if="row.clamped" type="button" class="tb-link full-toggle"
                  :aria-expanded="row.full ? 'true' : 'false'"
                  :aria-controls="panelId + '-m' + row.id"
                  @click.stop="toggleFull(row)">{{ row.fullToggle }}</button>
          <div v-if="row.actions.length" class="notification-actions">
            <button v-for="action in row.actions" :key="action.href + action.label" type="button"
                    class="action-button"
                    @click.stop="runAction(row, action)">{{ action.label }}</button>
          </div>
          <span class="notification-meta">
            <time :datetime="row.datetime">{{ row.time }}</time>
            <span v-if="row.snoozed" class="tb-snoozed">{{ row.snoozed }}</span>
            <button v-if="row.group" type="button" class="tb-link group-toggle"
                    :aria-expanded="row.group.expanded ? 'true' : 'false'"
                    @click.stop="toggleGroup(row)">{{ row.group.toggle }}</button>
          </span>
          <ul :id="panelId + '-menu' + row.id" class="tb-menu" role="menu"
              :aria-label="row.menuLabel" :hidden="!row.menuOpen">
            <li v-for="item in row.menu" :key="item.action" role="none"><button type="button"
                role="menuitem" tabindex="-1" :data-action="item.action"
                :class="'menu-' + item.action.replace(':', '-')"
                @click.stop="runMenu(row, item, $event)">{{ item.label }}</button></li>
          </ul>
        </div>
      </li>
    </ul>
    </div>
    <div class="dropdown-footer">
      <button v-if="view.more" ref="more" type="button" class="load-more-button tidings-link"
              :aria-disabled="view.loadingMore ? 'true' : 'false'"
              @click="loadMore">{{ t('loadMore') }}</button>
      <button v-if="!view.snoozed" ref="archiveView" type="button"
              class="archive-view-button tidings-link"
              @click="toggleArchive">{{
                t(view.archived ? 'showInbox' : 'showArchive') }}</button>
      <button v-if="!view.archived" type="button" class="snoozed-view-button tidings-link"
              @click="toggleSnoozed">{{
                t(view.snoozed ? 'showInbox' : 'showSnoozed') }}</button>
      <button v-if="view.push" ref="push" type="button" class="push-button tb-push"
              @click="enablePush">{{ view.push }}</button>
    </div>
  </div>
  <div class="tidings-sr" role="status" aria-live="polite"
       aria-atomic="true">{{ announcement }}</div>
  <div v-if="view.toasts.length" class="tb-toasts" @pointerenter="holdToasts(true)"
       @pointerleave="holdToasts(false)" @focusin="holdToasts(true)"
       @focusout="holdToasts(false)">
    <div v-for="toast in view.toasts" :key="toast.key" class="tb-toast" :data-id="toast.id">
      <button type="button" class="tb-toast-open" @click.stop="openToast(toast)"><strong>{{
        toast.title }}</strong><span>{{ toast.message }}</span></button>
      <button type="button" class="tb-icon-button tb-toast-dismiss" :aria-label="t('dismiss')"
              @click.stop="dismissToast(toast)" v-html="icons.close"></button>
    </div>
  </div>
</div>`;

let counter = 0;

function injectStyle() {
  if (typeof document !== "undefined") adoptStyle(document, STYLE);
}

const CLOSED_VIEW = {
  open: false,
  unread: 0,
  unseen: 0,
  badge: "",
  bellLabel: STRINGS.bell,
  title: STRINGS.title,
  archived: false,
  tabs: [],
  rows: [],
  more: false,
  loadingMore: false,
  note: "loading",
  noteText: "",
  banner: null,
  markAllDisabled: true,
  snoozed: false,
  emptyDetail: "",
  toasts: [],
  push: null,
  connection: "connecting",
  status: "loading",
  role: "starting",
  locale: "en",
};

/**
 * The bell as a Vue component (Options API).
 * Props: `baseUrl` (string), `token` (string), `pageSize` (number, 10), `heartbeat` (number, 15:
 * seconds, until the server's pings announce it), `getToken` (() => token | Promise<token>,
 * called on 401 and before a token's exp), `tokenUrl` (the app's token route, fetched with the
 * page's cookies when there is no getToken: a Blade or Django template can hand it over as a plain
 * attribute), `noPush` (never ask for the push key), `locale` (a language tag; default: the nearest
 * `lang`, the document's, the browser's), `strings` (object: any of the locale's strings, see
 * bell-strings.js), `maxItems` (rows before "Load more", 50), `theme` ("light" | "dark"; default:
 * the system's), `categoryLabels` (object: {"billing": "Invoices"}, or per language
 * {"billing": {"en": "Invoices", "de": "Rechnungen"}}), `toasts` (boolean: a toast for each
 * arrival while the panel is closed; off by default), `timeout` (number, 10000: ms a REST call or
 * a stream connect may take before it is abandoned and retried).
 * Events: `new-notification` (the notification). Method: `refreshNotifications()` (a promise
 * that always resolves: a failure shows in the bell, from the client's `error` change).
 */
export const NotificationBell = {
  name: "NotificationBell",
  props: {
    baseUrl: { type: String, default: "" },
    token: { type: String, default: "" },
    pageSize: { type: Number, default: 10 },
    heartbeat: { type: Number, default: 15 },
    getToken: { type: Function, default: null },
    tokenUrl: { type: String, default: "" },
    noPush: { type: Boolean, default: false },
    locale: { type: String, default: "" },
    strings: { type: Object, default: null },
    maxItems: { type: Number, default: 50 },
    theme: { type: String, default: "" },
    categoryLabels: { type: Object, default: null },
    toasts: { type: Boolean, default: false },
    timeout: { type: Number, default: 10000 },
  },
  emits: ["new-notification"],
  template: TEMPLATE,
  data() {
    return {
      view: { ...CLOSED_VIEW },
      announcement: "",
      panelId: `tidings-vue-panel-${++counter}`,
      icons: ICONS,
    };
  },
  computed: {
    noteClass() {
      const note = this.view.note;
      if (note === "loading") return "notification-loading";
      if (note === "error") return "notification-error";
      return "no-notifications";
    },
    /** The selected tab's index (the first when none is: a category the list no longer has). */
    selectedTab() {
      return Math.max(
        0,
        this.view.tabs.findIndex((tab) => tab.selected),
      );
    },
  },
  watch: {
    "view.open"(open) {
      if (open) this.$nextTick(() => this.place());
    },
    locale() {
      this.core && this.core.setLocale(this.pickLocale(), this.strings);
    },
    strings() {
      this.core && this.core.setLocale(this.pickLocale(), this.strings);
    },
    maxItems() {
      this.core && this.core.setMaxItems(this.maxItems);
    },
    categoryLabels() {
      this.core && this.core.setCategoryLabels(this.categoryLabels);
    },
    toasts() {
      this.core && this.core.setToasts(this.toasts);
    },
  },
  mounted() {
    injectStyle();
    this.tidingsClient = createTidings({
      token: this.token || undefined,
      baseUrl: this.baseUrl || undefined,
      pageSize: this.pageSize,
      heartbeat: this.heartbeat,
      timeout: this.timeout,
      grouped: true,
      getToken: () => {
        if (this.getToken) return this.getToken();
        return this.tokenUrl ? tokenFromUrl(this.tokenUrl)() : null;
      },
    });
    // Not in data(): the core and client are not made reactive (Vue would wrap their internals).
    this.core = new BellCore({
      client: this.tidingsClient,
      locale: this.pickLocale(),
      strings: this.strings,
      maxItems: this.maxItems,
      push: !this.noPush,
      categoryLabels: this.categoryLabels,
      toasts: this.toasts,
      onUpdate: () => {
        if (!this.core) return;
        const pushButton = this.$refs.push;
        const hadFocus = pushButton && pushButton === document.activeElement;
        const moreFocused = this.$refs.more && this.$refs.more === document.activeElement;
        this.view = this.core.view();
        // The push control just activated goes (notifications blocked): the keyboard keeps
        // its place on the next control, not on the page.
        if (hadFocus && !this.view.push) {
          this.$nextTick(() => this.$refs.archiveView && this.$refs.archiveView.focus());
        }
        // Everything is loaded and "Load more" goes: the focus goes to the last row.
        if (moreFocused && !this.view.more) this.focusAfter(this.view.rows.at(-1)?.id ?? null);
        if (this.core.menuFor !== null) {
          const focus = this.core.takeMenuFocus();
          if (focus) this.$nextTick(() => this.focusMenu(focus));
        }
      },
      onAnnounce: (text) => this.announce(text),
      onArrival: (n) => this.arrived(n),
    });
    this.view = this.core.view();
    this.onDocumentClick = (event) => {
      // The path, not contains(): the clicked button may be gone already (re-rendered).
      if (this.core && this.core.isOpen && !event.composedPath().includes(this.$el)) {
        this.core.close();
      }
    };
    document.addEventListener("click", this.onDocumentClick);
    // Focus landing outside closes it as a click outside does: also when Tab past the page's last
    // control went through the browser's own UI and wrapped round (focusout had no target then).
    document.addEventListener("focusin", this.onDocumentClick);
  },
  beforeDestroy() {
    this.teardown();
  },
  beforeUnmount() {
    this.teardown();
  },
  methods: {
    t(key, values) {
      return this.core ? this.core.t(key, values) : String(STRINGS[key]);
    },
    pickLocale() {
      const around = this.$el && this.$el.closest ? this.$el.closest("[lang]") : null;
      return pickLocale(
        this.locale,
        around && around.getAttribute("lang"),
        document.documentElement.lang,
        typeof navigator === "undefined" ? null : navigator.language,
      );
    },
    /** Keeps the open dropdown on screen (see panelShift). */
    place() {
      const panel = this.$el && this.$el.querySelector(".notification-dropdown");
      if (!panel) return;
      panel.style.transform = "";
      const box = panel.getBoundingClientRect();
      const dx = panelShift(box.left, box.right, document.documentElement.clientWidth);
      panel.style.transform = dx ? `translateX(${dx}px)` : "";
    },
    toggleDropdown() {
      this.core.toggle();
    },
    close() {
      this.core.close();
      this.$nextTick(() => this.$refs.button && this.$refs.button.focus());
    },
    refreshNotifications() {
      return this.core.refresh();
    },
    markAllRead() {
      this.core.markAllRead();
    },
    toggleGroup(row) {
      const n = this.core.state.items.find((m) => m.id === row.id);
      if (n && n.group) this.core.toggleGroup(n.group);
    },
    runAction(row, action) {
      this.core.activate(row.id);
      location.assign(action.href);
    },
    onRowClick(row, event) {
      // A click on the row (not on one of its buttons) reads it; so does following its link.
      if (event.target.closest("button, .tb-menu")) return;
      this.core.activate(row.id);
    },
    loadMore() {
      this.core.more();
    },
    /** The tab in the Tab order: the selected one, else the first (ARIA tabs pattern). */
    tabStop(i) {
      return i === this.selectedTab;
    },
    selectTab(category) {
      this.core.selectTab(category);
    },
    toggleArchive() {
      this.core.showArchive(!this.view.archived);
    },
    enablePush() {
      this.core.enablePush();
    },
    announce(text) {
      this.announcement = "";
      this.$nextTick(() => {
        this.announcement = text;
      });
    },
    arrived(notification) {
      this.$emit("new-notification", notification);
      // Also as a DOM event, like <tidings-bell>, for host code outside Vue.
      this.$el.dispatchEvent(
        new CustomEvent("new-notification", { detail: notification, bubbles: true }),
      );
    },
    onFocusout(event) {
      // Tab past the last control closes the panel instead of leaving it over the page.
      const to = event.relatedTarget;
      if (this.view.open && to && !this.$el.contains(to)) this.core.close();
    },
    onKeydown(event) {
      const core = this.core;
      if (!core) return;
      const list = this.$refs.list;
      const openRow =
        core.menuFor !== null && list ? list.querySelector(`li[data-id="${core.menuFor}"]`) : null;
      bellKeydown(event, {
        open: this.view.open,
        active: document.activeElement,
        bell: this.$refs.button,
        rows: list ? Array.from(list.querySelectorAll("li.notification-item")) : [],
        tabs: this.$refs.tabs ? Array.from(this.$refs.tabs.children) : [],
        menu: openRow
          ? {
              button: openRow.querySelector(".tb-menu-button"),
              items: Array.from(openRow.querySelectorAll('[role="menuitem"]')),
            }
          : null,
        close: () => this.close(),
        closeMenu: () => core.closeMenu(),
        openMenu: (button, focus) => core.openMenu(Number(button.closest("li").dataset.id), focus),
        selectTab: (category) => this.selectTab(category),
        activate: (id) => core.activate(id),
      });
    },
    /** The ARIA menu pattern: the focus leaving the open menu (and its button) closes it. */
    onFocusin(event) {
      const core = this.core;
      if (!core || core.menuFor === null) return;
      const at = event.target;
      const row = at.closest && at.closest("li.notification-item");
      const inMenu = at.closest(".tb-menu") || at.classList.contains("tb-menu-button");
      if (!row || Number(row.dataset.id) !== core.menuFor || !inMenu) core.closeMenu();
    },
    onPanelClick(event) {
      // A click elsewhere in the panel closes an open row menu.
      if (this.core && this.core.menuFor !== null) {
        if (!event.target.closest(".tb-menu, .tb-menu-button")) this.core.closeMenu();
      }
    },
    toggleMenu(row) {
      if (this.core.menuFor === row.id) this.core.closeMenu();
      else this.core.openMenu(row.id, "first");
    },
    focusMenu(focus) {
      const list = this.$refs.list;
      const row = list && list.querySelector(`li[data-id="${this.core.menuFor}"]`);
      const items = row ? Array.from(row.querySelectorAll('[role="menuitem"]')) : [];
      const item = focus === "last" ? items.at(-1) : items[0];
      if (item) item.focus();
    },
    /** A menu item: the focus stays in the bell (the neighbour when the row leaves). */
    runMenu(row, item, event) {
      const li = event.currentTarget.closest("li.notification-item");
      const fromKeyboard = li && li.contains(document.activeElement);
      const next = this.core.neighbourOf(row.id);
      const leaving = this.core.runMenu(row.id, item.action);
      if (!fromKeyboard) return;
      if (leaving) this.focusAfter(next);
      else this.$nextTick(() => li.querySelector(".tb-menu-button").focus());
    },
    /** Focus row `id` once drawn (the bell button when null). */
    focusAfter(id) {
      this.$nextTick(() => {
        const target =
          id !== null && this.$refs.list
            ? this.$refs.list.querySelector(`li[data-id="${id}"]`)
            : null;
        (target || this.$refs.button).focus();
      });
    },
    toggleFull(row) {
      this.core.toggleFull(row.id);
    },
    toggleSnoozed() {
      this.core.showSnoozed(!isSnoozedView(this.core.state.filter));
    },
    holdToasts(hold) {
      this.core && this.core.holdToasts(hold);
    },
    dismissToast(toast) {
      const hadFocus = this.$el.querySelector(".tb-toasts")?.contains(document.activeElement);
      this.core.dismissToast(toast.key);
      if (hadFocus) this.$nextTick(() => this.$refs.button && this.$refs.button.focus());
    },
    openToast(toast) {
      this.core.holdToasts(false);
      this.core.open();
      this.focusAfter(toast.id);
    },
    teardown() {
      if (!this.tidingsClient) return;
      document.removeEventListener("click", this.onDocumentClick);
      document.removeEventListener("focusin", this.onDocumentClick);
      this.core.destroy();
      this.core = null;
      this.tidingsClient.close();
      this.tidingsClient = null;
    },
  },
};

export default NotificationBell;
