import { defineConfig } from "vite";

// --8<-- [start:config]
export default defineConfig({
  resolve: {
    // The bell is a template string: Vue's build with the template compiler.
    alias: [{ find: /^vue$/, replacement: "vue/dist/vue.esm-bundler.js" }],
  },
});
// --8<-- [end:config]
