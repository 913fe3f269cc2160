// NotificationBell: the tidings bell as a Vue component, for Vue 2.7 and Vue 3 from this one file.
//
// A drop-in for the original NotificationBell.vue: same name, same class names, the same
// `new-notification` event; underneath, tidings.js (one shared stream per browser, resume,
// backoff, read state). Options API with a template string, so it needs a Vue build that
// includes the template compiler (Vue 2: vue/dist/vue.esm.js; Vue 3: vue/dist/vue.esm-bundler.js
// or vue.esm-browser.js). Both teardown hooks are present (beforeDestroy for Vue 2, beforeUnmount
// for Vue 3); the teardown runs once.
//
//   import NotificationBell from "https://tidings.example.com/static/notification-bell.js";
//   components: { NotificationBell }
//   <notification-bell base-url="https://tidings.example.com" :get-token="fetchToken" />
//
// Vue 3 stores the compiled template on the component object; a page that runs Vue 2 and Vue 3
// side by side gives one of them a copy: `{ ...NotificationBell }`.

import { createTidings, safeLink } from "./tidings.js";

export const STRINGS = {
  bell: "Notifications",
  bellUnread: "Notifications, {n} unread",
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
  announce: "New notification: {message}",
};

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
  display: flex; gap: .5rem; align-items: center; padding: .6rem .75rem;
  border-bottom: 1px solid var(--_border); }
.tidings-vue .dropdown-title { flex: 1; font-weight: 700; }
.tidings-vue .dropdown-header button,
.tidings-vue .notification-meta button,
.tidings-vue .dropdown-footer button {
  background: none; border: 0; color: var(--_accent); font-size: .85rem; padding: .15rem .3rem; }
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
.tidings-vue li.unread .notification-message { font-weight: 600; }
.tidings-vue li:focus { outline: 2px solid var(--_accent); outline-offset: -2px; }
.tidings-vue .notification-message { display: block; color: inherit; overflow-wrap: anywhere; }
.tidings-vue .notification-meta {
  display: flex; gap: .25rem; align-items: center; color: var(--_muted); font-size: .78rem;
}
.tidings-vue .notification-meta time { flex: 1; }
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
<div class="notification-container tidings-vue" :data-unread="notificationCount"
     :data-connection="state.connection" :data-status="state.status" @keydown="onKeydown">
  <button ref="button" type="button" class="bell-button" aria-haspopup="true"
          :aria-expanded="isOpen ? 'true' : 'false'" :aria-controls="panelId"
          :aria-label="bellLabel"
          @click="toggleDropdown">
    <svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"
         stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">
      <path d="M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9"/><path d="M13.73 21a2 2 0 0 1-3.46 0"/>
    </svg>
    <span v-if="notificationCount > 0" class="notification-badge">{{ badgeText }}</span>
  </button>
  <div v-if="isOpen" :id="panelId" class="notification-dropdown" role="region"
       :aria-label="t('title')">
    <div class="dropdown-header">
      <span class="dropdown-title">{{ t('title') }}</span>
      <button type="button" class="refresh-button"
              @click.prevent="refreshNotifications">{{ t('refresh') }}</button>
      <button type="button" class="mark-all-button" :disabled="notificationCount === 0"
              @click="markAllRead">{{ t('markAllRead') }}</button>
    </div>
    <p v-if="banner" class="notification-banner">{{ banner }}</p>
    <ul ref="list">
      <li v-if="state.status === 'loading' && notifications.length === 0"
          class="notification-loading">{{ t('loading') }}</li>
      <li v-else-if="state.status === 'error' && notifications.length === 0"
          class="notification-error">{{ t('error') }}</li>
      <li v-else-if="notifications.length === 0" class="no-notifications">{{ t('empty') }}</li>
      <li v-for="notification in notifications" :key="notification.id" :data-id="notification.id"
          tabindex="-1"
          :class="['notification-item', { unread: !notification.read_at }]">
        <a v-if="linkOf(notification)" class="notification-message" :href="linkOf(notification)"
           @click="markRead(notification)">{{ notification.message }}</a>
        <span v-else class="notification-message">{{ notification.message }}</span>
        <span class="notification-meta">
          <time :datetime="notification.created_at">{{ timeLabel(notification.created_at) }}</time>
          <button v-if="!notification.read_at" type="button" class="mark-read-button"
                  :aria-label="t('markRead') + ': ' + notification.message"
                  @click="markRead(notification, $event)">{{ t('markRead') }}</button>
          <button type="button" class="delete-button"
                  :aria-label="t('delete') + ': ' + notification.message"
                  @click="remove(notification)">{{ t('delete') }}</button>
        </span>
      </li>
    </ul>
    <div v-if="state.hasMore" class="dropdown-footer">
      <button type="button" class="load-more-button" :disabled="state.loadingMore"
              @click="loadMore">{{ t('loadMore') }}</button>
    </div>
  </div>
  <div class="tidings-sr" role="status" aria-live="polite"
       aria-atomic="true">{{ announcement }}</div>
</div>`;

let counter = 0;

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

function injectStyle() {
  if (typeof document === "undefined" || document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = STYLE;
  document.head.append(style);
}

/**
 * The bell as a Vue component (Options API).
 * Props: `baseUrl` (string), `token` (string), `pageSize` (number, 10), `heartbeat` (number, 15:
 * seconds, until the server's pings announce it), `getToken` (() => token | Promise<token>,
 * called on 401 and before a token's exp), `strings` (object, any keys of STRINGS).
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
    strings: { type: Object, default: null },
  },
  emits: ["new-notification"],
  template: TEMPLATE,
  data() {
    return {
      isOpen: false,
      state: { items: [], unread: 0, status: "loading", connection: "connecting", hasMore: false },
      announcement: "",
      actionError: false,
      panelId: `tidings-vue-panel-${++counter}`,
    };
  },
  computed: {
    notifications() {
      return this.state.items;
    },
    // Unread, as the server counts it (the original counted the loaded items).
    notificationCount() {
      return this.state.unread;
    },
    badgeText() {
      return this.notificationCount > 99 ? "99+" : String(this.notificationCount);
    },
    bellLabel() {
      return this.notificationCount > 0
        ? this.t("bellUnread", { n: this.notificationCount })
        : this.t("bell");
    },
    banner() {
      const s = this.state;
      if (this.actionError) return this.t("actionError");
      if (s.connection === "offline") return this.t("offline");
      if (s.connection === "unauthorized") return this.t("unauthorized");
      if (s.status === "error" && s.items.length) return this.t("error");
      if (s.connection === "reconnecting") return this.t("reconnecting");
      return "";
    },
  },
  mounted() {
    injectStyle();
    this.tidingsClient = createTidings({
      token: this.token || undefined,
      baseUrl: this.baseUrl || undefined,
      pageSize: this.pageSize,
      heartbeat: this.heartbeat,
      getToken: () => (this.getToken ? this.getToken() : null),
    });
    this.tidingsUnsubscribe = this.tidingsClient.subscribe((state, change) => {
      this.state = state;
      if (
        change.type === "error" &&
        (change.action === "markRead" ||
          change.action === "markAllRead" ||
          change.action === "delete")
      ) {
        this.actionError = true;
      }
      if (change.type === "notification") this.announce(change.notification);
    });
    this.onDocumentClick = (event) => {
      // The path, not contains(): the clicked button may be gone already (re-rendered).
      if (this.isOpen && !event.composedPath().includes(this.$el)) this.isOpen = false;
    };
    document.addEventListener("click", this.onDocumentClick);
  },
  beforeDestroy() {
    this.teardown();
  },
  beforeUnmount() {
    this.teardown();
  },
  methods: {
    t(key, values) {
      const template = (this.strings && this.strings[key]) || STRINGS[key];
      return String(template).replace(/\{(\w+)\}/g, (_, name) =>
        values && name in values ? values[name] : "",
      );
    },
    linkOf(notification) {
      return safeLink(
        notification.link,
        typeof location === "undefined" ? undefined : location.href,
      );
    },
    timeLabel,
    toggleDropdown() {
      this.isOpen = !this.isOpen;
      this.actionError = false;
    },
    close() {
      this.isOpen = false;
      this.$nextTick(() => this.$refs.button && this.$refs.button.focus());
    },
    // A failed call is shown from the client's `error` change (tidings.js rejects and emits),
    // so its rejection is handled here.
    act(method, ...args) {
      return this.tidingsClient[method](...args).catch(() => {});
    },
    refreshNotifications() {
      this.actionError = false;
      return this.act("refresh");
    },
    markRead(notification, event) {
      const button = event && event.currentTarget;
      const row = button && button.closest("li");
      this.act("markRead", [notification.id]);
      // The button goes away with the unread mark: keep the focus on its row.
      if (row) this.$nextTick(() => row.focus());
    },
    markAllRead() {
      this.actionError = false;
      this.act("markAllRead");
    },
    remove(notification) {
      this.act("delete", notification.id);
      this.$nextTick(() => {
        if (this.isOpen && !this.$el.contains(document.activeElement)) this.$refs.button.focus();
      });
    },
    loadMore() {
      this.act("loadMore");
    },
    announce(notification) {
      this.announcement = "";
      this.$nextTick(() => {
        this.announcement = this.t("announce", { message: notification.message });
      });
      this.$emit("new-notification", notification);
      // Also as a DOM event, like <tidings-bell>, for host code outside Vue.
      this.$el.dispatchEvent(
        new CustomEvent("new-notification", { detail: notification, bubbles: true }),
      );
    },
    onKeydown(event) {
      if (event.key === "Escape" && this.isOpen) {
        event.preventDefault();
        this.close();
        return;
      }
      if (!this.isOpen || !this.$refs.list) return;
      const rows = Array.from(this.$refs.list.querySelectorAll("li.notification-item"));
      if (!rows.length) return;
      const at = rows.findIndex((row) => row.contains(document.activeElement));
      let target = null;
      if (event.key === "ArrowDown") target = rows[at < 0 ? 0 : Math.min(rows.length - 1, at + 1)];
      else if (event.key === "ArrowUp")
        target = at === 0 ? this.$refs.button : rows[at < 0 ? rows.length - 1 : at - 1];
      else if (event.key === "Home" && at >= 0) target = rows[0];
      else if (event.key === "End" && at >= 0) target = rows[rows.length - 1];
      if (target) {
        event.preventDefault();
        target.focus();
      }
    },
    teardown() {
      if (!this.tidingsClient) return;
      document.removeEventListener("click", this.onDocumentClick);
      this.tidingsUnsubscribe();
      this.tidingsClient.close();
      this.tidingsClient = null;
    },
  },
};

export default NotificationBell;
