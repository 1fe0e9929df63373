// The demo page's live feed: fetch a ticket, open the relay socket, list every event as text.
const script = document.currentScript || document.querySelector("script[data-ticket-url]");
const ticketUrl = script.dataset.ticketUrl;
const state = document.getElementById("state");
const list = document.getElementById("events");

function setState(name) {
  state.dataset.state = name;
  state.textContent = name;
}

function show(topic, event) {
  const item = document.createElement("li");
  const title = document.createElement("strong");
  title.textContent = event.title;  // text, never HTML
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.textContent = `${event.kind} · ${topic} · ${new Date(event.created_at).toLocaleTimeString()}`;
  item.append(title, meta);
  if (event.body) {
    const body = document.createElement("div");
    body.textContent = event.body;
    item.append(body);
  }
  list.prepend(item);
}

let failures = 0;

function retry() {
  // Exponential backoff with full jitter, capped at 30 s.
  setState("offline");
  failures += 1;
  setTimeout(connect, Math.random() * Math.min(30000, 1000 * 2 ** failures));
}

async function connect() {
  setState("connecting");
  let ticket, url;
  try {
    const response = await fetch(ticketUrl, { credentials: "same-origin" });
    if (response.status === 401) { setState("offline"); return; }  // logged out: nothing to retry
    if (!response.ok) throw new Error(`ticket: HTTP ${response.status}`);
    ({ ticket, url } = await response.json());
  } catch {
    retry();
    return;
  }
  const socket = new WebSocket(url);
  // The cookie may already have authenticated us; then the relay ignores this with an error.
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: ticket }));
  socket.onmessage = ({ data }) => {
    const message = JSON.parse(data);
    if (message.type === "welcome") {
      failures = 0;
      setState("live");
      socket.send(JSON.stringify({ type: "subscribe", topics: ["model:*"], ref: 1 }));
    } else if (message.type === "event") {
      show(message.topic, message.event);
    }
  };
  socket.onclose = retry;
}

// Send the form without leaving the page, so the open socket shows the notification arrive.
document.getElementById("notify-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const form = submit.target;
  const response = await fetch(form.action || location.href, {
    method: "POST", body: new FormData(form), headers: { Accept: "application/json" }, credentials: "same-origin",
  });
  if (response.ok) form.reset();
});

connect();
