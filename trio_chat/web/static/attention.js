// What calls for attention: the unread lines of each channel (a count in
// the title and the channel list, a "new" marker above the first of them)
// and, if the person allowed it, a desktop notification for a whisper or a
// line that names them while the page is hidden or not focused.

import { $, state } from "./state.js";

let focused = document.hasFocus();
let redraw = () => {}; // the channel list's unread counts (sidebar.js)

export function away() { return document.hidden || !focused; }

export function totalUnread() {
  let total = 0;
  for (const room of state.rooms.values()) total += room.unread;
  return total;
}

export function drawTitle() {
  const room = state.active;
  const base = room?.welcomed ? `${room.channel} — trio-chat` : "trio-chat";
  const unread = totalUnread();
  document.title = unread ? `(${unread}) ${base}` : base;
}

// The channel in view has been seen: its count goes (its marker stays
// until the next line that comes unseen).
export function seen() {
  const room = state.active;
  if (!room || away() || !room.unread) return;
  room.unread = 0;
  drawTitle();
  redraw();
}

// A line from someone else came into ``room``'s log (called before it is
// drawn). It counts if nobody is looking at it; the first of a run gets the
// marker. ``alert``: the notification's title, for a whisper or a mention.
export function arrived(room, alert, body) {
  const unseen = room !== state.active || away();
  if (unseen) {
    if (room.unread === 0) {
      room.log.querySelector(":scope > li.marker")?.remove();
      const marker = document.createElement("li");
      marker.className = "marker";
      marker.dataset.kind = "marker";
      marker.textContent = "new";
      room.log.append(marker);
    }
    room.unread++;
    drawTitle();
    redraw();
  }
  if (alert && away()) notify(room, alert, body);
}

// ----- desktop notifications: asked for on a click, never on load -----

const NOTIFY_LENGTH = 200;
let show = () => {}; // brings a channel into view (view.js)

function notify(room, title, body) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const text = body.length > NOTIFY_LENGTH ? `${body.slice(0, NOTIFY_LENGTH)}…` : body;
  // A tag per channel: a burst of lines replaces one notification, not a pile.
  const note = new Notification(title, { body: text, tag: `trio-chat ${room.channel}` });
  note.addEventListener("click", () => {
    window.focus();
    if (state.rooms.get(room.channel) === room) show(room);
    note.close();
  });
}

function drawNotifyButton() {
  const button = $("notify");
  button.hidden = !("Notification" in window) || Notification.permission !== "default";
}

export function setUpAttention(redrawChannels, showRoom) {
  redraw = redrawChannels;
  show = showRoom;
  window.addEventListener("focus", () => { focused = true; seen(); });
  window.addEventListener("blur", () => { focused = false; });
  document.addEventListener("visibilitychange", seen);
  $("notify").addEventListener("click", async () => {
    await Notification.requestPermission();
    drawNotifyButton();
  });
  drawNotifyButton();
}
