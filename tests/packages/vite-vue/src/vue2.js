// The test page hands the tidings URL and a user token in its query string; a Laravel app puts
// them into its Blade layout (docs/laravel.md).
const query = new URLSearchParams(location.search);
window.tidingsUrl = query.get("tidings");
window.tidingsToken = query.get("token");

// --8<-- [start:app]
import Vue from "vue";
import NotificationBell from "@tidings/client/vue";

async function fetchToken() {
  const r = await fetch("/tidings/token", { headers: { Accept: "application/json" } });
  return r.ok ? (await r.json()).token : null;
}

new Vue({
  el: "#app",
  components: { NotificationBell },
  data: { tidingsUrl: window.tidingsUrl, tidingsToken: window.tidingsToken, last: "" },
  methods: { fetchToken },
  template: `
    <div id="app">
      <notification-bell :base-url="tidingsUrl" :token="tidingsToken" :get-token="fetchToken"
                         @new-notification="(n) => (last = n.message)" />
      <p id="last">{{ last }}</p>
    </div>`,
});
// --8<-- [end:app]
document.body.dataset.vue = Vue.version;
