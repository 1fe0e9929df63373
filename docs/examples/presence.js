// Who else has an object open, on a page of your own: the page names the object's topic in
// <body data-topic="object:shop.order:5">, has <p id="others"> and the object's <form>.
import { NotificationsClient } from "/static/notifications/client.js";

const topic = document.body.dataset.topic;
const others = document.getElementById("others");
const client = new NotificationsClient({ ticketUrl: "/notifications/ws-ticket/", topics: [topic] });

client.on("presence", ({ topic: where, users }) => {
  if (where !== topic) return;
  // The user's own tabs and devices are listed too: leave them out.
  const names = users.filter((user) => user.id !== client.user?.id).map((user) => `${user.username} (${user.state})`);
  others.textContent = names.length ? `Also here: ${names.join(", ")}` : "Nobody else is here.";
});

client.announce(topic, "viewing"); // a topic the client follows (`topics`, or subscribe())
document.querySelector("form").addEventListener("input", () => client.announce(topic, "editing"), { once: true });
window.addEventListener("pagehide", () => client.announce(topic, null));
window.addEventListener("pageshow", (event) => event.persisted && client.announce(topic, "viewing")); // back from the cache
client.connect();
