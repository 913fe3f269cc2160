import { defineConfig } from "vite";

// REACT=18 builds the same app with React 18 (the packages react18 and react-dom18).
const react18 =
  process.env.REACT === "18"
    ? [
        { find: /^react-dom(\/.*)?$/, replacement: "react-dom18$1" },
        { find: /^react(\/.*)?$/, replacement: "react18$1" },
      ]
    : [];

// --8<-- [start:config]
export default defineConfig({
  // JSX by esbuild, which Vite has anyway: no @vitejs/plugin-react needed for a build.
  esbuild: { jsx: "automatic" },
  // --8<-- [end:config]
  resolve: { alias: react18 },
  // --8<-- [start:config-end]
});
// --8<-- [end:config-end]
