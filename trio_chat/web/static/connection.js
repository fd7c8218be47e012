// The connection: the WebSocket, the frames that arrive on it, and how the
// page follows its channel from the events (render/browser.py; docs/web.md).

import { $, conn, send, state } from "./state.js";
import { FRAME, FrameReader, PROTOCOL, decoder, encoder, frame } from "./frames.js";
import {
  drawTitle, says, showChat, showDivider, showLive, showNotice, showServer,
} from "./render.js";
import { countsFromListing, drawChannels, drawMembers, fetchCounts, setChannels, setMembers } from "./sidebar.js";
import { dropTransfers, fileAbort, fileAck, fileData, fileEnd, fileIncoming, sendState } from "./files.js";

// The ids (history.msgid) of the lines this page has shown, per channel: a
// history sent again on a reconnect or a /switch back shows only the rest.
// Bounded: a channel's oldest ids go first, long after its history has.
const SHOWN_LIMIT = 5000;
const shownIds = new Map(); // channel -> Set of ids, oldest first
let historyShown = 0; // entries shown of the history arriving now
const KEPT = new Set(["chat", "joined", "left"]); // the live events a history may hold again
const isText = (value) => typeof value === "string";

export function connect(name, channelName) {
  state.me = name;
  state.channel = channelName;
  state.joined = false;
  state.refusal = null;
  historyShown = 0;
  state.members.clear();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(channelName)}`);
  state.socket = socket;
  socket.binaryType = "arraybuffer";
  const reader = new FrameReader();
  socket.onopen = () => send(frame(FRAME.HELLO, encoder.encode(`${PROTOCOL} ${name}`)));
  socket.onmessage = (event) => {
    if (socket !== state.socket) return;
    try {
      for (const [type, payload] of reader.feed(new Uint8Array(event.data))) handle(type, payload);
    } catch (error) {
      ended(`the server sent something this page cannot read (${error.message})`);
      socket.close();
    }
  };
  socket.onclose = () => {
    if (socket !== state.socket) return;
    if (!state.joined && !$("chat").hidden) {
      ended(state.refusal || "Cannot reach the server."); // a reconnect that was refused
    } else if (!state.joined) {
      $("join-error").textContent = state.refusal || "Cannot reach the server.";
    } else if (!$("status").classList.contains("ended")) {
      ended("The connection to the server was lost.");
    }
    dropTransfers(conn);
  };
}

function handle(type, payload) {
  switch (type) {
    case FRAME.EVENT: return showEvent(JSON.parse(decoder.decode(payload)));
    case FRAME.NOTICE: return showNotice(decoder.decode(payload));
    case FRAME.BYE: return bye(decoder.decode(payload.subarray(1)));
    case FRAME.CHANNELS: return setChannels(JSON.parse(decoder.decode(payload)).channels);
    case FRAME.ROSTER: return setMembers(JSON.parse(decoder.decode(payload)).names);
    case FRAME.SEND_STATE: return sendState(conn, payload);
    case FRAME.FILE_ACK: return fileAck(conn, payload);
    case FRAME.FILE_INCOMING: return fileIncoming(conn, JSON.parse(decoder.decode(payload)));
    case FRAME.FILE_DATA: return fileData(conn, payload);
    case FRAME.FILE_END: return fileEnd(conn, payload);
    case FRAME.FILE_ABORT: return fileAbort(conn, payload);
    default: return undefined;
  }
}

function showEvent(event) {
  if (event.event === "history") return showHistory(event);
  if (event.event === "cannot_connect" && !state.joined) {
    state.refusal = `[Server message (${event.stamp})] ${says(event)}`;
    return;
  }
  if (event.event === "welcome" && !state.joined) enterChat();
  if (event.event === "listing" && Array.isArray(event.channels)) countsFromListing(event.channels);
  const item = showLive(event);
  if (item && KEPT.has(event.event) && isText(event.id)) remember(state.channel, event.id);
  follow(event);
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
function showHistory(event) {
  if (!isText(event.channel) || !Array.isArray(event.entries)) return;
  const ids = shownIn(event.channel);
  for (const entry of event.entries) {
    const live = entryEvent(entry);
    if (!live || ids.has(entry.id)) continue;
    const when = new Date(entry.at * 1000);
    const item = live.event === "chat" ? showChat(live, when) : showServer(live.stamp, says(live), when);
    item.classList.add("history");
    item.title = `Earlier: ${when.toLocaleString()}`;
    remember(event.channel, entry.id);
    historyShown++;
  }
  if (event.last === true) {
    if (historyShown) showDivider();
    historyShown = 0;
  }
}

// ----- following the channel -----

function follow(event) {
  switch (event.event) {
    case "welcome":
      state.channel = event.channel;
      $("where").textContent = state.channel;
      $("whoami").textContent = `as ${state.me}`;
      drawTitle();
      drawChannels();
      setMembers([]);
      fetchCounts().then((got) => got && drawChannels());
      break;
    case "queued":
      status(`Waiting for a place in ${state.channel}: ${event.ahead} ahead of you.`);
      break;
    case "joined":
      state.members.add(event.user);
      if (event.user === state.me) status(`In ${state.channel}.`);
      drawMembers();
      break;
    case "left":
      state.members.delete(event.user);
      drawMembers();
      break;
    case "muted":
      if (event.user === state.me) status(`You are muted for ${event.seconds} seconds.`);
      break;
    default:
      break;
  }
}

function enterChat() {
  state.joined = true;
  $("join").hidden = true;
  $("chat").hidden = false;
  $("reconnect").hidden = true;
  $("status").classList.remove("ended");
  $("message").disabled = false;
  $("message").focus();
}

export function status(text) { $("status").textContent = text; }

function ended(text) {
  status(text);
  $("status").classList.add("ended");
  $("reconnect").hidden = false;
  $("message").disabled = true;
  $("reconnect").focus();
}

function bye(reason) {
  // The server is done with this connection: hang up, as the terminal client does.
  if (!state.joined) {
    state.refusal = state.refusal ? `${state.refusal} (${reason})` : reason;
  } else {
    ended(`Disconnected: ${reason}.`);
  }
  state.socket.close();
}

// The log stays: the history the server sends again shows only what this
// page has not shown (showHistory).
export function reconnect() {
  $("status").classList.remove("ended");
  $("reconnect").hidden = true;
  status("Connecting…");
  connect(state.me, state.channel);
}
