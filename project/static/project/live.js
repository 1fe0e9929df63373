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

async function connect() {
  setState("connecting");
  const response = await fetch(ticketUrl, { credentials: "same-origin" });
  if (!response.ok) { setState("offline"); return; }
  const { ticket, url } = await response.json();
  const socket = new WebSocket(url);
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: ticket }));
  socket.onmessage = ({ data }) => {
    const message = JSON.parse(data);
    if (message.type === "welcome") {
      setState("live");
      socket.send(JSON.stringify({ type: "subscribe", topics: ["model:*"], ref: 1 }));
    } else if (message.type === "event") {
      show(message.topic, message.event);
    }
  };
  socket.onclose = () => { setState("offline"); setTimeout(connect, 2000 + Math.random() * 2000); };
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
