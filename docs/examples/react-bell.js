// A React component on useNotifications, written with createElement so that it runs as it is (with
// JSX and a bundler: <p>State: <span id="state">{state}</span> ...</p>).
import { createElement as h } from "react";
import { createRoot } from "react-dom/client";
import { useNotifications } from "./use-notifications.js";

function Notifications() {
  const { state, unread, events } = useNotifications({
    ticketUrl: "/notifications/ws-ticket/",
    listUrl: "/notifications/api/notifications/",
  });
  return h(
    "section",
    null,
    h("p", null, "State: ", h("span", { id: "state" }, state), " · Unread: ", h("span", { id: "unread" }, unread ?? "…")),
    h("ul", { id: "events" }, events.map(({ event, topic }) => h("li", { key: `${event.id} ${topic}` }, event.title))),
  );
}

createRoot(document.getElementById("app")).render(h(Notifications));
