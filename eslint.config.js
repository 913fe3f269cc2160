// ESLint for the browser side (src/tidings/web/static) and its node tests (tests/js).
// Formatting is Prettier's job (.prettierrc.json); these rules catch mistakes, not style.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    // Third-party builds (Vue), installed packages and the Python side's caches.
    ignores: [
      "src/tidings/web/static/vendor/**",
      "**/node_modules/**",
      ".venv/**",
      "bench/**",
      "packages/client/dist/**",
      "tests/packages/*/dist/**",
    ],
  },
  js.configs.recommended,
  {
    // Prettier wraps code at 100 columns but leaves comments and template strings (the bells'
    // CSS and HTML) alone: this keeps those within the same limit as the Python side.
    rules: { "max-len": ["error", { code: 100, ignoreUrls: true }] },
  },
  {
    files: [
      "src/tidings/web/static/**/*.js",
      "packages/client/src/*.js",
      "tests/packages/*/src/*.js",
    ],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.browser },
    rules: {
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      "no-console": "error",
    },
  },
  {
    // The service-worker side of Web Push: a classic script the host app's worker imports
    // with importScripts(), so no module syntax, and the worker's globals (clients, registration).
    files: ["src/tidings/web/static/tidings-sw.js"],
    languageOptions: { sourceType: "script", globals: globals.serviceworker },
  },
  {
    files: [
      "tests/js/**/*.mjs",
      "eslint.config.js",
      "packages/client/build.mjs",
      "tests/packages/*/vite.config.js",
    ],
    languageOptions: { ecmaVersion: 2022, sourceType: "module", globals: globals.node },
  },
];
