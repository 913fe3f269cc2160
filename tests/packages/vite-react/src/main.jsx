// --8<-- [start:app]
import { version } from "react";
import { createRoot } from "react-dom/client";
import { TidingsBell, useTidings } from "@tidings/client/react";

// --8<-- [end:app]
// The test page hands the tidings URL and a user token in its query string; an app renders them
// into the page or fetches them (getToken) from its backend.
const query = new URLSearchParams(location.search);
const tidingsUrl = query.get("tidings");
const tidingsToken = query.get("token");

// --8<-- [start:components]
async function fetchToken() {
  const r = await fetch("/tidings/token", { headers: { Accept: "application/json" } });
  return r.ok ? (await r.json()).token : null;
}

function Unseen() {
  // A client of your own for a UI of your own (here: the count in the title).
  const { state } = useTidings({ baseUrl: tidingsUrl, getToken: fetchToken });
  return <output id="unseen">{state ? state.unseen : "…"}</output>;
}

function App() {
  return (
    <header data-react={version}>
      <TidingsBell
        baseUrl={tidingsUrl}
        token={tidingsToken}
        getToken={fetchToken}
        onNotification={(n) => console.log("tidings:", n.message)}
      />
      <Unseen />
    </header>
  );
}

createRoot(document.getElementById("root")).render(<App />);
// --8<-- [end:components]
