// The demo home page: send the form without leaving the page, and list the live events the
// notification widget receives (it dispatches a "notifications:event" DOM event for each).
const list = document.getElementById("events");
const form = document.getElementById("notify-form");

document.addEventListener("notifications:event", ({ detail: { event, topic } }) => {
  const item = document.createElement("li");
  const title = document.createElement("strong");
  title.textContent = event.title; // text, never HTML
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = ` ${event.kind} · ${topic} · ${new Date(event.created_at).toLocaleTimeString()}`;
  item.append(title, meta);
  if (event.body) {
    const body = document.createElement("span");
    body.className = "body";
    body.textContent = event.body;
    item.append(body);
  }
  list.prepend(item);
});

form.addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const response = await fetch(form.action || location.href, {
    method: "POST", body: new FormData(form), headers: { Accept: "application/json" }, credentials: "same-origin",
  });
  if (response.ok) form.reset();
});
