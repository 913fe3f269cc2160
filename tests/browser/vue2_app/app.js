// resources/js/app.js of a Laravel + Vue 2 app (docs/laravel.md, "Inside a Vue 2 root"), served
// as it is by tests/browser/test_vue2_root.py (an import map stands in for the bundler's "vue").
// --8<-- [start:app]
import Vue from "vue";
import NotificationBell from "./tidings/notification-bell.js";

// <x-tidings-bell /> renders a custom element: Vue 2 leaves it to the browser.
Vue.config.ignoredElements = ["tidings-bell"];
Vue.component("notification-bell", NotificationBell);

new Vue({ el: "#app" });
// --8<-- [end:app]
