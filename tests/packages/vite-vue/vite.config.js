import { defineConfig } from "vite";

// VUE=2 builds vue2.html with Vue 2.7 (the package vue2), as a Laravel + Vue 2 app would; a Vue 2
// app of its own aliases vue to "vue/dist/vue.esm.js" in the same way.
const vue2 = {
  resolve: { alias: [{ find: /^vue$/, replacement: "vue2/dist/vue.esm.js" }] },
  build: { rollupOptions: { input: "vue2.html" } },
};

export default defineConfig(
  process.env.VUE === "2"
    ? vue2
    : {
        // --8<-- [start:config]
        // The bell is a template string: Vue's build with the template compiler.
        resolve: { alias: [{ find: /^vue$/, replacement: "vue/dist/vue.esm-bundler.js" }] },
        // --8<-- [end:config]
      },
);
