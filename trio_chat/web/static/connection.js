// The connections: one WebSocket per channel the page is in (each one member
// of its channel, as the rules see it, like one channel of an IRC
// connection), the frames that arrive on it, how the page follows its
// channel from the events (render/browser.py; docs/web.md), and coming back
// by itself when a connection is lost.

import { $, state } from "./state.js";
import { FRAME, FrameReader, PROTOCOL, decoder, encoder, frame } from "./frames.js";
import { named, newLog, says, showChat, showDivider, showLive, showNotice, showServer } from "./render.js";
import { countsFromListing, drawChannels, fetchCounts, setChannels } from "./sidebar.js";
import {
  dropTransfers, fileAbort, fileAck, fileData, fileEnd, fileIncoming, newTransfers, sendState,
} from "./files.js";
import { changed, enterChat, forget, joinError, show } from "./view.js";

// A lost connection is tried again after 1 s, then 2, 4… up to 30 s apart.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
// Coming back, the name may still be held by the connection that was lost
// (the server has not noticed yet; at most until its AFK timeout, 100 s):
// that refusal is tried again this many times (about two minutes) before
// the page believes someone else has the name.
const NAME_TAKEN_TRIES = 8;

// The ids (history.msgid) of the lines this page has shown, per channel: a
// history sent again on a reconnect or a /switch back shows only the rest.
// Bounded: a channel's oldest ids go first, long after its history has.
const SHOWN_LIMIT = 5000;
const shownIds = new Map(); // channel -> Set of ids, oldest first
const KEPT = new Set(["chat", "joined", "left"]); // the live events a history may hold again
const isText = (value) => typeof value === "string";

export class Room {
  constructor(channel) {
    this.channel = channel;
    this.socket = null;
    this.live = false; // welcomed on the connection it has now
    this.welcomed = false; // welcomed once: the page has been in this channel
    this.status = "Connecting…";
    this.ended = ""; // why the server is done with it: it waits for Reconnect
    this.retrying = false; // lost, and coming back by itself
    this.attempts = 0; // since it was last in
    this.timer = 0; // the next attempt's
    this.refusal = ""; // why its hello was refused
    this.nameTaken = 0; // refusals of the name while coming back
    this.leaving = false; // left from the page: forgotten once closed
    this.ahead = -1; // its place in the queue (-1: not waiting)
    this.members = new Set();
    this.unread = 0;
    this.historyShown = 0; // entries shown of the history arriving now
    this.log = newLog(channel);
    this.files = newTransfers();
    this.transfersList = $("transfers");
  }

  send(bytes) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  line(text) { this.send(frame(FRAME.INPUT, encoder.encode(text))); }

  // Whom a file can go to (files.js): the channel's members but this page.
  recipients() { return [...this.members].filter((name) => name !== state.me).sort(); }
}

// Into ``channel`` too, or back to it if the page is in it already.
export function openRoom(channel) {
  const known = state.rooms.get(channel);
  if (known) {
    show(known);
    return known;
  }
  const room = new Room(channel);
  state.rooms.set(channel, room);
  connect(room);
  if (!$("chat").hidden) show(room); // the first one shows once it is in
  return room;
}

function connect(room) {
  clearTimeout(room.timer);
  room.timer = 0;
  room.live = false;
  room.refusal = "";
  room.historyShown = 0;
  room.status = room.retrying ? "Reconnecting…" : "Connecting…";
  changed(room);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(room.channel)}`);
  room.socket = socket;
  socket.binaryType = "arraybuffer";
  const reader = new FrameReader();
  socket.onopen = () => socket.send(frame(FRAME.HELLO, encoder.encode(`${PROTOCOL} ${state.me}`)));
  socket.onmessage = (event) => {
    if (socket !== room.socket) return;
    try {
      for (const [type, payload] of reader.feed(new Uint8Array(event.data))) handle(room, type, payload);
    } catch (error) {
      room.ended = `The server sent something this page cannot read (${error.message}).`;
      socket.close();
    }
  };
  socket.onclose = () => {
    if (socket === room.socket) closed(room);
  };
}

function handle(room, type, payload) {
  switch (type) {
    case FRAME.EVENT: return showEvent(room, JSON.parse(decoder.decode(payload)));
    case FRAME.NOTICE: return showNotice(room, decoder.decode(payload));
    case FRAME.BYE: return bye(room, decoder.decode(payload.subarray(1)));
    case FRAME.CHANNELS: return setChannels(JSON.parse(decoder.decode(payload)).channels);
    case FRAME.ROSTER: return setRoster(room, JSON.parse(decoder.decode(payload)).names);
    case FRAME.SEND_STATE: return sendState(room, payload);
    case FRAME.FILE_ACK: return fileAck(room, payload);
    case FRAME.FILE_INCOMING: return fileIncoming(room, JSON.parse(decoder.decode(payload)));
    case FRAME.FILE_DATA: return fileData(room, payload);
    case FRAME.FILE_END: return fileEnd(room, payload);
    case FRAME.FILE_ABORT: return fileAbort(room, payload);
    default: return undefined;
  }
}

function setRoster(room, names) {
  room.members = new Set(names);
  changed(room);
}

function showEvent(room, event) {
  if (event.event === "history") return showHistory(room, event);
  if (event.event === "cannot_connect" && !room.live) {
    room.refusal = `[Server message (${event.stamp})] ${says(event)}`;
    if (room.retrying) room.nameTaken++;
    return;
  }
  if (event.event === "welcome") welcomed(room, String(event.channel));
  if (event.event === "listing" && Array.isArray(event.channels)) countsFromListing(event.channels);
  const item = showLive(room, event);
  if (item && KEPT.has(event.event) && isText(event.id)) remember(room.channel, event.id);
  follow(room, event);
}

function welcomed(room, channel) {
  const first = !room.welcomed;
  room.live = true;
  room.welcomed = true;
  room.retrying = false;
  room.ended = "";
  room.attempts = 0;
  room.nameTaken = 0;
  room.ahead = -1;
  room.members.clear();
  if (channel !== room.channel) moved(room, channel);
  enterChat();
  if (first && (!state.active || !state.active.welcomed)) show(room);
  fetchCounts().then((got) => got && drawChannels());
}

// A /switch took this member to ``channel``: the room goes with it.
function moved(room, channel) {
  if (state.rooms.get(room.channel) === room) state.rooms.delete(room.channel);
  room.channel = channel;
  state.rooms.set(channel, room);
  named(room.log, channel);
}

// ----- history (render/browser.py; docs/web.md, "History") -----

function shownIn(name) {
  let ids = shownIds.get(name);
  if (!ids) {
    ids = new Set();
    shownIds.set(name, ids);
  }
  return ids;
}

function remember(name, id) {
  const ids = shownIn(name);
  ids.add(id);
  if (ids.size > SHOWN_LIMIT) ids.delete(ids.values().next().value);
}

// A history entry as the live event it was, or null if it is malformed
// (then it is skipped: one bad entry costs nothing of the rest).
function entryEvent(entry) {
  if (entry === null || typeof entry !== "object") return null;
  const { id, at, stamp, kind, user } = entry;
  if (!isText(id) || !id || !isText(stamp) || !isText(user) || !Number.isFinite(at)) return null;
  if (kind === "said") {
    if (!isText(entry.message)) return null;
    if (entry.action !== undefined && typeof entry.action !== "boolean") return null;
    return { event: "chat", stamp, sender: user, message: entry.message, action: entry.action };
  }
  if (kind === "joined") return { event: "joined", stamp, user };
  if (kind === "left" && isText(entry.why)) return { event: "left", stamp, user, why: entry.why };
  return null;
}

// What was said in a channel before this page came to it, oldest first, in
// one or more events: each line with its own stamp and sender, dimmed, and
// below the last the divider, if anything was new to this page.
function showHistory(room, event) {
  if (!isText(event.channel) || !Array.isArray(event.entries)) return;
  const ids = shownIn(event.channel);
  for (const entry of event.entries) {
    const live = entryEvent(entry);
    if (!live || ids.has(entry.id)) continue;
    const when = new Date(entry.at * 1000);
    const item = live.event === "chat"
      ? showChat(room, live, when)
      : showServer(room, live.stamp, says(live), when, live.event);
    item.classList.add("history");
    item.title = `Earlier: ${when.toLocaleString()}`;
    remember(event.channel, entry.id);
    room.historyShown++;
  }
  if (event.last === true) {
    if (room.historyShown) showDivider(room);
    room.historyShown = 0;
  }
}

// ----- following the channel -----

function follow(room, event) {
  switch (event.event) {
    case "welcome":
      room.status = `In ${room.channel}.`;
      break;
    case "queued":
      room.ahead = Number(event.ahead);
      room.status = `Waiting for a place in ${room.channel}: ${event.ahead} ahead of you.`;
      break;
    case "joined":
      room.members.add(event.user);
      if (event.user === state.me) {
        room.ahead = -1;
        room.status = `In ${room.channel}.`;
      }
      break;
    case "left":
      room.members.delete(event.user);
      break;
    case "muted":
      if (event.user === state.me) room.status = `You are muted for ${event.seconds} seconds.`;
      break;
    default:
      return;
  }
  changed(room);
}

// ----- the end of a connection -----

function bye(room, reason) {
  // The server is done with this connection: hang up, as the terminal client does.
  if (room.live) room.ended = `Disconnected: ${reason}.`;
  else room.refusal = room.refusal ? `${room.refusal} (${reason})` : reason;
  room.socket.close();
}

function closed(room) {
  room.socket = null;
  room.live = false;
  room.members.clear(); // (who was there is not known any more; back in, the roster says)
  room.ahead = -1;
  dropTransfers(room);
  if (room.leaving) {
    forget(room);
  } else if (room.ended) {
    end(room, room.ended); // kicked, AFK, emptied, shut down, banned: it says so and waits
  } else if (room.retrying && room.nameTaken && room.nameTaken < NAME_TAKEN_TRIES) {
    retryLater(room);
  } else if (room.refusal && room.welcomed) {
    end(room, room.refusal); // refused coming back (a ban, say)
  } else if (room.welcomed) {
    retryLater(room); // lost: the server restarted, the network went, the laptop slept
  } else if ($("chat").hidden) {
    joinError(room.refusal || "Cannot reach the server.");
    forget(room);
  } else {
    end(room, room.refusal || "Cannot reach the server.");
  }
}

function end(room, text) {
  room.ended = text;
  room.status = text;
  room.retrying = false;
  changed(room);
  if (room === state.active) $("reconnect").focus();
}

function retryLater(room) {
  room.retrying = true;
  const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** room.attempts);
  room.attempts++;
  room.status = `The connection to the server was lost. Reconnecting in ${Math.round(delay / 1000)} s…`;
  room.timer = setTimeout(() => connect(room), delay);
  changed(room);
}

// The Reconnect button: at once, after an end or during the backoff. The
// log stays: the history sent again shows only what it has not shown.
export function reconnect(room) {
  if (room.socket) return; // on its way already
  room.ended = "";
  room.retrying = true;
  connect(room);
}

// The network is back: the rooms waiting to come back try now.
window.addEventListener("online", () => {
  for (const room of state.rooms.values()) if (room.timer) connect(room);
});

// Out of the channel, from the page: announced (/quit), and forgotten.
export function leave(room) {
  room.leaving = true;
  clearTimeout(room.timer);
  if (room.live) room.line("/quit");
  else if (room.socket) room.socket.close();
  else forget(room);
}
