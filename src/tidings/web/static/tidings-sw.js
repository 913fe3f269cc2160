/*
 * tidings-sw.js: the service-worker side of tidings' Web Push. Not a worker of its own: the host
 * app's own service worker (served from the app's origin, so its scope is the app) imports it:
 *
 *     importScripts("https://tidings.example/static/tidings-sw.js");
 *
 * On a push it shows the notification (the actor as title when there is one, the message, the
 * actor's avatar as icon, up to two action buttons), unless a tab of the app is visible: that
 * tab's bell shows it already. The notification's tag is the payload's `tag`: the group's for a
 * notification of a group (one desktop notification per conversation, "Carol and 4 others"),
 * else the notification's own, so a repeated push of the same one (see docs/away.md, "Exactly
 * once") replaces it instead of adding a second. The payload also carries WebKit's declarative
 * form (`web_push`, `notification`), which Safari shows without this worker; its title and body
 * are the ones shown here too.
 * A click focuses a tab already on the link, or opens it; an action button opens its own url.
 */
(() => {
  const sw = self;

  /** The push payload, or null when it is not one of tidings'. */
  function payloadOf(event) {
    try {
      const data = event.data ? event.data.json() : null;
      return data && typeof data.message === "string" && Number.isInteger(data.id) ? data : null;
    } catch {
      return null;
    }
  }

  /** A URL a click may open: http(s) only, relative ones against the app's scope. */
  function openable(url) {
    if (typeof url !== "string" || !url) return null;
    try {
      const resolved = new URL(url, sw.registration.scope);
      return resolved.protocol === "https:" || resolved.protocol === "http:" ? resolved.href : null;
    } catch {
      return null;
    }
  }

  async function show(data) {
    const windows = await clients.matchAll({ type: "window", includeUncontrolled: true });
    const inView = windows.filter((w) => w.visibilityState === "visible");
    if (inView.length) {
      // A tab in view shows it in its bell. It is told the push came (and was not shown), for
      // an app that wants to know; the tests wait for this message.
      for (const w of inView) w.postMessage({ tidings: "push-in-view", id: data.id });
      return;
    }
    const actions = Array.isArray(data.actions) ? data.actions.slice(0, 2) : [];
    const actor = data.actor && typeof data.actor.name === "string" ? data.actor : null;
    // The declarative part, when there is one, says how it reads (a group's count included).
    const declared =
      data.notification && typeof data.notification.title === "string" ? data.notification : null;
    const title = declared ? declared.title : actor ? actor.name : data.message;
    const tag = typeof data.tag === "string" && data.tag ? data.tag : `tidings-${data.id}`;
    const options = {
      body: declared ? (declared.body ?? "") : actor ? data.message : "",
      tag,
      data: { tidings: true, id: data.id, link: data.link, actions },
      actions: actions.map((a, i) => ({ action: String(i), title: String(a.label) })),
    };
    if (actor && actor.avatar_url) options.icon = actor.avatar_url;
    const created = Date.parse(data.created_at);
    if (!Number.isNaN(created)) options.timestamp = created;
    await sw.registration.showNotification(title, options);
  }

  async function focusOrOpen(url) {
    const windows = await clients.matchAll({ type: "window", includeUncontrolled: true });
    const open = windows.find((w) => w.url === url);
    if (open) return open.focus();
    return clients.openWindow(url);
  }

  sw.addEventListener("push", (event) => {
    const data = payloadOf(event);
    if (data) event.waitUntil(show(data));
  });

  sw.addEventListener("notificationclick", (event) => {
    const data = event.notification.data;
    if (!data || !data.tidings) return;
    event.notification.close();
    const action = event.action ? data.actions[Number(event.action)] : null;
    const url = openable(action ? action.url : data.link) ?? openable(sw.registration.scope);
    if (url) event.waitUntil(focusOrOpen(url));
  });
})();
