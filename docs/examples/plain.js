// A page of your own, without the widget: the connection's state, the unread count and the live
// events, from the headless client. The page has <span id="state">, <span id="unread"> and
// <ul id="events">.
import { NotificationsClient } from "/static/notifications/client.js";

const client = new NotificationsClient({
  ticketUrl: "/notifications/ws-ticket/",
  listUrl: "/notifications/api/notifications/", // polled while WebSockets are blocked
  topics: ["model:*"], // besides the inbox: every model the user may view
});

const state = document.getElementById("state");
const unread = document.getElementById("unread");
const list = document.getElementById("events");
let countedThrough = 0; // the newest event a "read" frame's count covered

async function loadUnread() {
  const response = await fetch("/notifications/api/unread-count/", { credentials: "same-origin" });
  if (response.ok) unread.textContent = String((await response.json()).unread_count);
}

client.on("state", ({ state: now }) => {
  state.textContent = now;
  // Read state is not replayed: reload the count after every (re)connection.
  if (now === "connected") loadUnread();
});
client.on("resync", loadUnread);
client.on("event", ({ event, topic }) => {
  const item = document.createElement("li");
  item.textContent = `${event.title} (${topic})`; // text, never HTML
  list.prepend(item);
  if (event.id > countedThrough) unread.textContent = String(Number(unread.textContent) + 1);
});
client.on("read", ({ unread_count: count, latest }) => {
  countedThrough = Math.max(countedThrough, latest ?? 0);
  unread.textContent = String(count);
});
client.on("unread", ({ unread_count: count }) => {
  unread.textContent = String(count); // while polling
});

client.connect();
window.notifications = client; // for the console
