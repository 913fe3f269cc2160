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
import { BellCore, listKeyTarget, panelShift, tabKeyTarget } from "./bell-core.js";
import { STRINGS, pickLocale } from "./bell-strings.js";
import { tokenFromUrl } from "./token-url.js";

export { STRINGS };

const STYLE_ID = "tidings-vue-bell-style";
const STYLE = `
.tidings-vue { --_accent: var(--tidings-accent, #2563eb); --_bg: var(--tidings-bg, #fff);
  --_fg: var(--tidings-fg, #1f2937); --_muted: var(--tidings-muted, #636b78);
  --_border: var(--tidings-border, #e5e7eb); --_unread-bg: var(--tidings-unread-bg, #eff6ff);
  --_warn-bg: var(--tidings-warn-bg, #fef3c7); --_warn-fg: var(--tidings-warn-fg, #92400e);
  position: relative; display: inline-block;
  font: var(--tidings-font, 14px/1.4 system-ui, sans-serif); }
@media (prefers-color-scheme: dark) {
  .tidings-vue { --_accent: var(--tidings-accent, #60a5fa); --_bg: var(--tidings-bg, #1f2937);
    --_fg: var(--tidings-fg, #f3f4f6); --_muted: var(--tidings-muted, #9ca3af);
    --_border: var(--tidings-border, #374151); --_unread-bg: var(--tidings-unread-bg, #1e3a5f);
    --_warn-bg: var(--tidings-warn-bg, #451a03); --_warn-fg: var(--tidings-warn-fg, #fde68a); }
}
.tidings-vue button { font: inherit; cursor: pointer; }
.tidings-vue .bell-button { position: relative; background: none; border: none; padding: .4rem;
  color: var(--tidings-bell-color, currentColor); border-radius: 50%; }
.tidings-vue .bell-button svg { width: 1.5rem; height: 1.5rem; display: block; }
.tidings-vue .notification-badge { position: absolute; top: -2px; right: -4px; min-width: 1.25rem;
  box-sizing: border-box; background: var(--tidings-badge-bg, #dc2626);
  color: var(--tidings-badge-fg, #fff);
  border-radius: .625rem; padding: 0 .3rem; font-size: .72rem; font-weight: 700;
  line-height: 1.25rem; }
.tidings-vue .notification-dropdown {
  position: absolute; right: 0; top: 100%; width: var(--tidings-width, 22rem);
  max-width: calc(100vw - 1rem); background: var(--_bg); color: var(--_fg);
  border: 1px solid var(--_border);
  border-radius: var(--tidings-radius, 10px); box-shadow: 0 10px 30px rgba(0,0,0,.15);
  z-index: var(--tidings-z, 1000);
  overflow: hidden; }
.tidings-vue .dropdown-header {
  display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; padding: .6rem .75rem;
  border-bottom: 1px solid var(--_border); }
.tidings-vue .dropdown-title { flex: 1; font-weight: 700; }
.tidings-vue .dropdown-header button,
.tidings-vue .notification-meta button,
.tidings-vue .dropdown-footer button {
  background: none; border: 0; color: var(--_accent); font-size: .85rem; padding: .15rem .3rem;
  white-space: nowrap; }
.tidings-vue button:disabled { color: var(--_muted); cursor: default; }
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
.tidings-vue li.unread .notification-meta { color: var(--tidings-unread-muted, #4b5563); }
@media (prefers-color-scheme: dark) {
  .tidings-vue li.unread .notification-meta { color: var(--tidings-unread-muted, #cbd5e1); }
}
.tidings-vue .notification-item { display: flex; gap: .5rem; }
.tidings-vue .notification-item.member { padding-left: 2rem; }
.tidings-vue .notification-body { flex: 1; min-width: 0; }
.tidings-vue .notification-avatar { flex: none; display: inline-grid; place-items: center;
  width: 2rem; height: 2rem; border-radius: 50%; overflow: hidden; font-size: .75rem;
  font-weight: 700; background: var(--tidings-avatar-bg, #dbeafe);
  color: var(--tidings-avatar-fg, #1e3a8a); }
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
.tidings-vue .notification-tabs button { border: 1px solid var(--_border); background: var(--_bg);
  color: var(--_fg); border-radius: 999px; padding: .1rem .6rem; font-size: .8rem; }
.tidings-vue .notification-tabs button[aria-selected="true"] { border-color: var(--_accent);
  font-weight: 600; }
.tidings-vue li.unread .notification-message { font-weight: 600; }
.tidings-vue li:focus { outline: 2px solid var(--_accent); outline-offset: -2px; }
.tidings-vue .notification-message { display: block; color: inherit; overflow-wrap: anywhere; }
/* WCAG 2.2 target size (2.5.8): every control and link at least 24 px tall. */
.tidings-vue button, .tidings-vue a.notification-message { min-height: 24px; }
.tidings-vue .notification-meta {
  display: flex; flex-wrap: wrap; gap: .25rem; align-items: center; color: var(--_muted);
  font-size: .78rem;
}
.tidings-vue .notification-meta time { flex: 1 0 auto; white-space: nowrap; }
.tidings-vue .no-notifications,
.tidings-vue .notification-loading,
.tidings-vue .notification-error {
  color: var(--_muted); text-align: center;
}
.tidings-vue .dropdown-footer { padding: .4rem .75rem; border-top: 1px solid var(--_border); }
.tidings-vue .tidings-sr {
  position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden; clip: rect(0 0 0 0);
  white-space: nowrap;
}
`;

const TEMPLATE = `
<div class="notification-container tidings-vue" :data-unread="view.unread"
     :data-unseen="view.unseen" :data-connection="view.connection" :data-status="view.status"
     :data-locale="view.locale" :data-view="view.archived ? 'archive' : 'inbox'"
     @keydown="onKeydown" @focusout="onFocusout">
  <button ref="button" type="button" class="bell-button" aria-haspopup="true"
          :aria-expanded="view.open ? 'true' : 'false'" :aria-controls="panelId"
          :aria-label="view.bellLabel"
          @click="toggleDropdown">
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
         stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.73 21a2 2 0 0 1-3.46 0"/>
    </svg>
    <span v-if="view.badge" class="notification-badge">{{ view.badge }}</span>
  </button>
  <div v-if="view.open" :id="panelId" class="notification-dropdown" role="region"
       :aria-label="view.title">
    <div class="dropdown-header">
      <span class="dropdown-title">{{ view.title }}</span>
      <button type="button" class="refresh-button"
              @click.prevent="refreshNotifications">{{ t('refresh') }}</button>
      <button v-if="!view.archived" type="button" class="mark-all-button"
              :disabled="view.markAllDisabled" @click="markAllRead">{{ t('markAllRead') }}</button>
    </div>
    <div v-if="view.tabs.length" ref="tabs" class="notification-tabs" role="tablist"
         :aria-label="t('tabs')">
      <button v-for="(tab, i) in view.tabs" :key="tab.key" :id="panelId + '-tab-' + i"
              type="button" class="tab-button" role="tab" :data-category="tab.key"
              :aria-selected="tab.selected ? 'true' : 'false'" :aria-controls="panelId + '-view'"
              :tabindex="tabStop(i) ? 0 : -1" @click="selectTab(tab.category)">
        <!-- The space keeps the name "billing 2 unread", not "billing2 unread" (Vue 3 drops a
             space-only text at an element's end, so it is part of the expression). -->
        <span class="label">{{ tab.label + ' ' }}</span><template v-if="tab.count > 0"><span
          class="count">{{ tab.count }}</span><span class="tidings-sr"> {{ tab.unreadText
          }}</span></template>
      </button>
    </div>
    <p v-if="view.banner" class="notification-banner">{{ view.banner }}</p>
    <div :id="panelId + '-view'" :role="view.tabs.length ? 'tabpanel' : null"
         :aria-labelledby="view.tabs.length ? panelId + '-tab-' + selectedTab : null">
    <ul ref="list">
      <li v-if="view.note" :class="noteClass">{{ view.noteText }}</li>
      <li v-for="row in view.rows" :key="row.key" :data-id="row.id" tabindex="-1"
          :class="['notification-item', row.kind === 'item' ? '' : row.kind,
                   { unread: row.unread }]"
          @click="onRowClick(row, $event)">
        <span v-if="row.actor" class="notification-avatar"
              :aria-hidden="row.actor.avatar ? null : 'true'">
          <img v-if="row.actor.avatar" :src="row.actor.avatar" :alt="row.actor.name"
               loading="lazy"><template v-else>{{ row.actor.initials }}</template>
        </span>
        <div class="notification-body">
          <span class="tidings-sr">{{ row.state }}: </span>
          <span v-if="row.group" class="notification-summary">{{ row.group.summary }}</span>
          <span v-if="row.actor" class="notification-actor">{{ row.actor.name }}</span>
          <a v-if="row.href" class="notification-message" :href="row.href">{{ row.message }}</a>
          <span v-else class="notification-message">{{ row.message }}</span>
          <div v-if="row.actions.length" class="notification-actions">
            <button v-for="action in row.actions" :key="action.href + action.label" type="button"
                    class="action-button"
                    @click.stop="runAction(row, action)">{{ action.label }}</button>
          </div>
          <span class="notification-meta">
            <time :datetime="row.datetime">{{ row.time }}</time>
            <button v-if="row.group" type="button" class="group-toggle"
                    :aria-expanded="row.group.expanded ? 'true' : 'false'"
                    @click.stop="toggleGroup(row)">{{ row.group.toggle }}</button>
            <button v-if="row.archived" type="button" class="unarchive-button"
                    :aria-label="t('unarchive') + ': ' + row.message"
                    @click.stop="leave(row, 'unarchive', $event)">{{ t('unarchive') }}</button>
            <button v-if="!row.archived && row.unread" type="button" class="mark-read-button"
                    :aria-label="t('markRead') + ': ' + row.message"
                    @click.stop="markRead(row, $event)">{{ t('markRead') }}</button>
            <button v-if="!row.archived" type="button" class="archive-button"
                    :aria-label="t('archive') + ': ' + row.message"
                    @click.stop="leave(row, 'archive', $event)">{{ t('archive') }}</button>
            <button type="button" class="delete-button"
                    :aria-label="t('delete') + ': ' + row.message"
                    @click.stop="leave(row, 'remove', $event)">{{ t('delete') }}</button>
          </span>
        </div>
      </li>
    </ul>
    </div>
    <div class="dropdown-footer">
      <button v-if="view.more" type="button" class="load-more-button"
              :disabled="view.loadingMore" @click="loadMore">{{ t('loadMore') }}</button>
      <button ref="archiveView" type="button" class="archive-view-button"
              @click="toggleArchive">{{
                t(view.archived ? 'showInbox' : 'showArchive') }}</button>
      <button v-if="view.push" ref="push" type="button" class="push-button"
              @click="enablePush">{{ view.push }}</button>
    </div>
  </div>
  <div class="tidings-sr" role="status" aria-live="polite"
       aria-atomic="true">{{ announcement }}</div>
</div>`;

let counter = 0;

function injectStyle() {
  if (typeof document === "undefined" || document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = STYLE;
  document.head.append(style);
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
 * bell-strings.js), `maxItems` (rows before "Load more", 50).
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
  },
  emits: ["new-notification"],
  template: TEMPLATE,
  data() {
    return {
      view: { ...CLOSED_VIEW },
      announcement: "",
      panelId: `tidings-vue-panel-${++counter}`,
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
  },
  mounted() {
    injectStyle();
    this.tidingsClient = createTidings({
      token: this.token || undefined,
      baseUrl: this.baseUrl || undefined,
      pageSize: this.pageSize,
      heartbeat: this.heartbeat,
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
      onUpdate: () => {
        if (!this.core) return;
        const pushButton = this.$refs.push;
        const hadFocus = pushButton && pushButton === document.activeElement;
        this.view = this.core.view();
        // The push control just activated goes (notifications blocked): the keyboard keeps
        // its place on the next control, not on the page.
        if (hadFocus && !this.view.push) {
          this.$nextTick(() => this.$refs.archiveView && this.$refs.archiveView.focus());
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
    markRead(row, event) {
      const li = event && event.currentTarget && event.currentTarget.closest("li");
      this.core.markRead(row.id);
      // The button goes away with the unread mark: keep the focus on its row.
      if (li) this.$nextTick(() => li.focus());
    },
    markAllRead() {
      this.core.markAllRead();
    },
    /** Delete, archive or unarchive: from the keyboard the focus goes to the neighbour. */
    leave(row, action, event) {
      const li = event && event.currentTarget && event.currentTarget.closest("li");
      const hadFocus = li && li.contains(document.activeElement);
      const next = this.core.neighbourOf(row.id);
      this.core[action](row.id);
      if (!hadFocus) return;
      this.$nextTick(() => {
        const target =
          next !== null && this.$refs.list
            ? this.$refs.list.querySelector(`li[data-id="${next}"]`)
            : null;
        (target || this.$refs.button).focus();
      });
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
      if (event.target.closest("button")) return;
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
      if (event.key === "Escape" && this.view.open) {
        event.preventDefault();
        this.close();
        return;
      }
      if (!this.view.open || !this.$refs.list) return;
      const rows = Array.from(this.$refs.list.querySelectorAll("li.notification-item"));
      const active = document.activeElement;
      if (this.$refs.tabs && active && active.getAttribute("role") === "tab") {
        const tabs = Array.from(this.$refs.tabs.children);
        const next = tabKeyTarget(event.key, tabs.length, tabs.indexOf(active));
        if (next !== null) {
          // Automatic activation: the tab that gets the focus is selected.
          event.preventDefault();
          tabs[next].focus();
          this.selectTab(tabs[next].dataset.category || null);
          return;
        }
      }
      const at = rows.findIndex((row) => row.contains(active));
      if (event.key === "Enter" && active && active.classList.contains("notification-item")) {
        const link = active.querySelector("a.notification-message");
        if (link) link.click();
        else this.core.activate(Number(active.dataset.id));
        event.preventDefault();
        return;
      }
      const target = listKeyTarget(event.key, rows.length, at);
      if (target === null) return;
      event.preventDefault();
      (target === "bell" ? this.$refs.button : rows[target]).focus();
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
