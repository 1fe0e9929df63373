// useNotifications(options): the headless client in a React component. Returns the connection's
// state, the unread count (null until loaded) and the latest live events, newest first.
// `options` are NotificationsClient's, plus `unreadUrl`; the client lives as long as the component.
import { useEffect, useState } from "react";
import { NotificationsClient } from "/static/notifications/client.js";

const KEEP = 50; // live events kept

export function useNotifications({ unreadUrl = "/notifications/api/unread-count/", ...options }) {
  const [client] = useState(() => new NotificationsClient(options));
  const [state, setState] = useState(client.state);
  const [unread, setUnread] = useState(null);
  const [events, setEvents] = useState([]);

  useEffect(() => {
    let countedThrough = 0; // the newest event a "read" frame's count covered
    const loadUnread = async () => {
      const response = await fetch(unreadUrl, { credentials: "same-origin" });
      if (response.ok) setUnread((await response.json()).unread_count);
    };
    const stop = [
      client.on("state", ({ state: now }) => {
        setState(now);
        if (now === "connected") loadUnread(); // read state is not replayed: reload it
      }),
      client.on("resync", loadUnread),
      client.on("event", ({ event, topic }) => {
        setEvents((list) => [{ event, topic }, ...list].slice(0, KEEP));
        if (event.id > countedThrough) setUnread((count) => (count ?? 0) + 1);
      }),
      client.on("read", ({ unread_count: count, latest }) => {
        countedThrough = Math.max(countedThrough, latest ?? 0);
        setUnread(count);
      }),
      client.on("unread", ({ unread_count: count }) => setUnread(count)),
    ];
    client.connect();
    return () => {
      stop.forEach((off) => off());
      client.disconnect();
    };
  }, [client, unreadUrl]);

  return { state, unread, events, client };
}
