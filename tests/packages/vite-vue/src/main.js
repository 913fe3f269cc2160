// The test page hands the tidings URL and a user token in its query string; an app renders them
// into the page or fetches them (getToken) from its backend.
const query = new URLSearchParams(location.search);
window.tidingsUrl = query.get("tidings");
window.tidingsToken = query.get("token");

// --8<-- [start:app]
import { createApp } from "vue";
import NotificationBell from "@tidings/client/vue";

async function fetchToken() {
  const r = await fetch("/tidings/token", { headers: { Accept: "application/json" } });
  return r.ok ? (await r.json()).token : null;
}

createApp({
  components: { NotificationBell },
  data: () => ({ tidingsUrl: window.tidingsUrl, tidingsToken: window.tidingsToken, last: "" }),
  methods: { fetchToken },
  template: `
    <notification-bell :base-url="tidingsUrl" :token="tidingsToken" :get-token="fetchToken"
                       @new-notification="(n) => (last = n.message)" />
    <p id="last">{{ last }}</p>`,
}).mount("#app");
// --8<-- [end:app]
