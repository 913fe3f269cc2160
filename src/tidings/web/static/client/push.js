// Web Push: desktop notifications while no tab is open (the service-worker side is
// tidings-sw.js). The client's pushState/enablePush/disablePush are these.

import { TidingsError } from "./errors.js";

/** @typedef {import("./http.js").Http} Http */

/** @param {any} g */
function pushSupported(g) {
  return Boolean(g.Notification && g.navigator?.serviceWorker && g.PushManager);
}

/** The bytes of base64url text (the server's VAPID key), for `applicationServerKey`. */
export function base64urlBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function sameBytes(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * See the client's pushState().
 * @param {ServiceWorkerRegistration} [registration]
 * @returns {Promise<"unsupported" | "default" | "denied" | "on" | "off">}
 */
export async function pushState(registration) {
  const g = globalThis;
  if (!pushSupported(g)) return "unsupported";
  if (g.Notification.permission === "denied") return "denied";
  const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
  const subscription = reg ? await reg.pushManager.getSubscription() : null;
  if (subscription && g.Notification.permission === "granted") return "on";
  return g.Notification.permission === "default" ? "default" : "off";
}

/**
 * See the client's enablePush(); throws what the client reports.
 * @param {Http} http
 * @param {number} timeout ms the browser's push subscribe may take
 * @param {ServiceWorkerRegistration} [registration]
 * @returns {Promise<"on">}
 */
export async function enablePush(http, timeout, registration) {
  const action = "enablePush";
  const g = globalThis;
  if (!pushSupported(g)) {
    throw new TidingsError("this browser cannot show push notifications", {
      code: "push_unsupported",
      action,
    });
  }
  const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
  if (!reg) {
    throw new TidingsError("no service worker: register one that imports tidings-sw.js", {
      code: "push_no_worker",
      action,
    });
  }
  const permission = await g.Notification.requestPermission();
  if (permission !== "granted") {
    throw new TidingsError("notifications are not allowed for this site", {
      code: "push_denied",
      action,
    });
  }
  const { data } = await http.call(action, "GET", "/notifications/push/key");
  const key = base64urlBytes(String(data?.public_key ?? ""));
  let subscription = await reg.pushManager.getSubscription();
  const current = subscription?.options?.applicationServerKey;
  if (subscription && !(current && sameBytes(new Uint8Array(current), key))) {
    // Made with another server key (the key was rotated): the push service would refuse it.
    await subscription.unsubscribe();
    subscription = null;
  }
  try {
    // The browser asks its push service (FCM, autopush …). One it cannot reach may leave
    // subscribe() pending for good (Chromium with no network to FCM does): `timeout` bounds
    // it, so the user hears back.
    let timer;
    const late = new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout);
    });
    try {
      subscription ??= await Promise.race([
        reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key }),
        late,
      ]);
    } finally {
      clearTimeout(timer);
    }
  } catch (error) {
    throw new TidingsError(`the browser's push service refused: ${error?.message ?? error}`, {
      code: "push_failed",
      action,
    });
  }
  await http.call(action, "POST", "/notifications/push-subscriptions", subscription.toJSON());
  return "on";
}

/**
 * See the client's disablePush(); throws what the client reports.
 * @param {Http} http
 * @param {ServiceWorkerRegistration} [registration]
 * @returns {Promise<"off">}
 */
export async function disablePush(http, registration) {
  const action = "disablePush";
  const g = globalThis;
  if (!pushSupported(g)) return "off";
  const reg = registration ?? (await g.navigator.serviceWorker.getRegistration());
  const subscription = reg ? await reg.pushManager.getSubscription() : null;
  if (!subscription) return "off";
  try {
    const body = { endpoint: subscription.endpoint };
    await http.call(action, "DELETE", "/notifications/push-subscriptions", body);
  } catch (error) {
    // Already gone on the server (its push service answered 410): unsubscribe all the same.
    if (!(error instanceof TidingsError && error.code === "not_found")) throw error;
  }
  await subscription.unsubscribe();
  return "off";
}
