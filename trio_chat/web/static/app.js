// The trio-chat browser client. It speaks the terminal client's frames
// (docs/protocol.md) inside WebSocket binary messages, except that what
// happens in the channel arrives as EVENT frames of JSON, which this page
// renders itself. Every text from the server is inserted with textContent,
// never as HTML.
"use strict";

const FRAME = {
  HELLO: 1, INPUT: 2, SEND_OFFER: 3, LINE: 16, NOTICE: 17, BYE: 18,
  FILE_INCOMING: 19, SEND_STATE: 20, CHANNELS: 21, ROSTER: 22, EVENT: 23,
  FILE_DATA: 32, FILE_END: 33, FILE_ABORT: 34, FILE_ACK: 35, FILE_RESULT: 36,
};
const PROTOCOL = "trio-chat/3";
const STATE = { GO: 0, DONE: 1, REFUSED: 2, ABORTED: 3 };
const CHUNK = 256 * 1024;
const WINDOW = 16 * CHUNK;
const MAX_PAYLOAD = CHUNK + 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const $ = (id) => document.getElementById(id);

// ----- frames -----

function frame(type, payload) {
  const bytes = new Uint8Array(5 + payload.length);
  new DataView(bytes.buffer).setUint32(0, payload.length);
  bytes[4] = type;
  bytes.set(payload, 5);
  return bytes;
}

function withId(type, id, body) {
  const payload = new Uint8Array(4 + body.length);
  new DataView(payload.buffer).setUint32(0, id);
  payload.set(body, 4);
  return frame(type, payload);
}

class FrameReader {
  constructor() { this.buffer = new Uint8Array(0); }
  feed(chunk) {
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer);
    joined.set(chunk, this.buffer.length);
    const frames = [];
    let at = 0;
    while (joined.length - at >= 5) {
      const view = new DataView(joined.buffer, joined.byteOffset + at);
      const length = view.getUint32(0);
      if (length > MAX_PAYLOAD) throw new Error("frame too large");
      if (joined.length - at < 5 + length) break;
      frames.push([joined[at + 4], joined.subarray(at + 5, at + 5 + length)]);
      at += 5 + length;
    }
    this.buffer = joined.slice(at);
    return frames;
  }
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(crc, bytes) {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function u32(value) {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

function humanSize(size) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = size, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${size} bytes`;
}

// ----- state -----

let socket = null;
let me = "";
let channel = "";
let joined = false;
let refusal = null;
let nextRef = 1;
const outgoing = new Map(); // ref -> {file, target, row, id}
const bySendId = new Map(); // server id -> outgoing entry
const incoming = new Map(); // server id -> {name, sender, size, chunks, got, crc, row}
const members = new Set();
// The ids (history.msgid) of the lines this page has shown, per channel: a
// history sent again on a reconnect or a /switch back shows only the rest.
// Bounded: a channel's oldest ids go first, long after its history has.
const SHOWN_LIMIT = 5000;
const shownIds = new Map(); // channel -> Set of ids, oldest first
let historyShown = 0; // entries shown of the history arriving now

// ----- the join form -----

// The join form's channel list, refreshed while the form is shown.
async function refreshChannels() {
  if ($("join").hidden) return;
  try {
    const response = await fetch("/channels", { cache: "no-store" });
    const channels = await response.json();
    const select = $("channel");
    const chosen = select.value;
    select.replaceChildren(...channels.map((c) => {
      const option = document.createElement("option");
      option.value = c.name;
      option.textContent = `${c.name} (${c.members}/${c.capacity}, ${c.queue} waiting)`;
      return option;
    }));
    if (chosen) select.value = chosen;
  } catch (error) { /* the server went away: the next poll tries again */ }
}

function joinProblem(name) {
  if (!name) return "Enter a name.";
  if (encoder.encode(name).length > 32) return "A name is at most 32 characters.";
  if (/[\s:]/u.test(name)) return "A name has no spaces and no ':'.";
  return "";
}

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value;
  const problem = joinProblem(name);
  $("join-error").textContent = problem;
  if (!problem) connect(name, $("channel").value);
});

// ----- the connection -----

function connect(name, channelName) {
  me = name;
  channel = channelName;
  joined = false;
  refusal = null;
  historyShown = 0;
  members.clear();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(channelName)}`);
  socket.binaryType = "arraybuffer";
  const reader = new FrameReader();
  const mine = socket;
  socket.onopen = () => send(frame(FRAME.HELLO, encoder.encode(`${PROTOCOL} ${name}`)));
  socket.onmessage = (event) => {
    if (mine !== socket) return;
    try {
      for (const [type, payload] of reader.feed(new Uint8Array(event.data))) handle(type, payload);
    } catch (error) {
      ended(`the server sent something this page cannot read (${error.message})`);
      socket.close();
    }
  };
  socket.onclose = () => {
    if (mine !== socket) return;
    if (!joined && !$("chat").hidden) {
      ended(refusal || "Cannot reach the server."); // a reconnect that was refused
    } else if (!joined) {
      $("join-error").textContent = refusal || "Cannot reach the server.";
    } else if (!$("status").classList.contains("ended")) {
      ended("The connection to the server was lost.");
    }
    for (const entry of outgoing.values()) finishRow(entry.row, "not delivered: disconnected");
    outgoing.clear();
    bySendId.clear();
    incoming.clear();
  };
}

function send(bytes) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(bytes);
}

function handle(type, payload) {
  switch (type) {
    case FRAME.EVENT: return showEvent(JSON.parse(decoder.decode(payload)));
    case FRAME.NOTICE: return showNotice(decoder.decode(payload));
    case FRAME.BYE: return bye(payload[0], decoder.decode(payload.subarray(1)));
    case FRAME.CHANNELS: return showChannels(JSON.parse(decoder.decode(payload)).channels);
    case FRAME.ROSTER: return setMembers(JSON.parse(decoder.decode(payload)).names);
    case FRAME.SEND_STATE: return sendState(payload);
    case FRAME.FILE_ACK: return fileAck(payload);
    case FRAME.FILE_INCOMING: return fileIncoming(JSON.parse(decoder.decode(payload)));
    case FRAME.FILE_DATA: return fileData(payload);
    case FRAME.FILE_END: return fileEnd(payload);
    case FRAME.FILE_ABORT: return fileAbort(payload);
    default: return undefined;
  }
}

// ----- what happened (EVENT frames: render/browser.py; docs/web.md) -----

const serverSays = (stamp, body) => `[Server message (${stamp})] ${body}`;
// An IRC user's /me (action: true) reads "* nick waves", as on a terminal.
const styled = (e) => (e.action ? `* ${e.sender} ${e.message}` : e.message);

// How each event reads, in the words of the terminal (docs/behaviour.md).
const SHOW = {
  welcome: (e) => ["server", serverSays(e.stamp, `Welcome to the ${e.channel} channel, ${e.user}.`)],
  cannot_connect: (e) => ["server", serverSays(e.stamp, `Cannot connect to the ${e.channel} channel.`)],
  queued: (e) => ["server", serverSays(e.stamp,
    `You are in the waiting queue and there are ${e.ahead} user(s) ahead of you.`)],
  joined: (e) => ["server", serverSays(e.stamp, `${e.user} has joined the channel.`)],
  left: (e) => ["server", serverSays(e.stamp,
    e.why === "afk" ? `${e.user} went AFK.` : `${e.user} has left the channel.`)],
  chat: (e) => ["chat", `[${e.sender} (${e.stamp})] ${styled(e)}`],
  whisper: (e) => ["whisper", `[${e.sender} whispers to you: (${e.stamp})] ${styled(e)}`],
  not_here: (e) => ["server", serverSays(e.stamp, `${e.user} is not here.`)],
  not_found: (e) => ["server", serverSays(e.stamp, `${e.thing} does not exist.`)],
  cannot_switch: (e) => ["server", serverSays(e.stamp, `Cannot switch to the ${e.channel} channel.`)],
  still_muted: (e) => ["server", serverSays(e.stamp, `You are still muted for ${e.seconds} seconds.`)],
  muted: (e) => ["server", serverSays(e.stamp, e.user === me
    ? `You have been muted for ${e.seconds} seconds.`
    : `${e.user} has been muted for ${e.seconds} seconds.`)],
  sent: (e) => ["server", serverSays(e.stamp, `You sent ${e.path} to ${e.to}.`)],
};

function showEvent(event) {
  if (event.event === "history") return showHistory(event);
  if (event.event === "cannot_connect" && !joined) {
    refusal = SHOW.cannot_connect(event)[1];
    return;
  }
  if (event.event === "welcome" && !joined) enterChat();
  if (event.event === "listing") {
    for (const c of event.channels) showItem("listing", `[Channel] ${c.name} ${c.members}/${c.capacity}/${c.queued}.`);
  } else {
    const show = SHOW[event.event];
    if (!show) return; // an event newer than this page: nothing to show
    const [kind, text] = show(event);
    const item = showItem(kind, text);
    if (event.event === "chat" && event.sender === me) item.classList.add("own");
    if (KEPT.has(event.event) && isText(event.id)) remember(channel, event.id);
  }
  follow(event);
}

// ----- history (render/browser.py; docs/web.md, "History") -----

const HISTORY_DIVIDER = "— earlier messages —"; // as at a terminal (text.HISTORY_DIVIDER)
const KEPT = new Set(["chat", "joined", "left"]); // the live events a history may hold again
const isText = (value) => typeof value === "string";

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
    const [kind, text] = SHOW[live.event](live);
    const item = showItem(kind, text);
    item.classList.add("history");
    if (live.event === "chat" && live.sender === me) item.classList.add("own");
    item.title = `Earlier: ${new Date(entry.at * 1000).toLocaleString()}`;
    remember(event.channel, entry.id);
    historyShown++;
  }
  if (event.last === true) {
    if (historyShown) showItem("divider", HISTORY_DIVIDER);
    historyShown = 0;
  }
}

function showItem(kind, text) {
  const item = document.createElement("li");
  item.className = kind;
  item.textContent = text;
  const lines = $("lines");
  const atBottom = lines.scrollHeight - lines.scrollTop - lines.clientHeight < 40;
  lines.append(item);
  if (atBottom) lines.scrollTop = lines.scrollHeight;
  return item;
}

function follow(event) {
  switch (event.event) {
    case "welcome":
      channel = event.channel;
      $("where").textContent = `${channel} as ${me}`;
      $("switch").value = channel;
      setMembers([]);
      break;
    case "queued":
      status(`Waiting for a place in ${channel}: ${event.ahead} ahead of you.`);
      break;
    case "joined":
      members.add(event.user);
      if (event.user === me) status(`In ${channel}.`);
      drawMembers();
      break;
    case "left":
      members.delete(event.user);
      drawMembers();
      break;
    case "muted":
      if (event.user === me) status(`You are muted for ${event.seconds} seconds.`);
      break;
    default:
      break;
  }
}

function enterChat() {
  joined = true;
  $("join").hidden = true;
  $("chat").hidden = false;
  $("reconnect").hidden = true;
  $("status").classList.remove("ended");
  $("message").disabled = false;
  $("message").focus();
}

function showNotice(text) {
  const item = document.createElement("li");
  item.className = "notice";
  item.textContent = text;
  $("lines").append(item);
}

function status(text) { $("status").textContent = text; }

function ended(text) {
  status(text);
  $("status").classList.add("ended");
  $("reconnect").hidden = false;
  $("message").disabled = true;
  $("reconnect").focus();
}

function bye(exitStatus, reason) {
  // The server is done with this connection: hang up, as the terminal client does.
  if (!joined) {
    refusal = refusal ? `${refusal} (${reason})` : reason;
  } else {
    ended(`Disconnected: ${reason}.`);
  }
  socket.close();
}

function showChannels(names) {
  $("switch").replaceChildren(...names.map((name) => {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    return option;
  }));
  $("switch").value = channel;
}

$("switch").addEventListener("change", () => {
  const target = $("switch").value;
  if (target && target !== channel) send(frame(FRAME.INPUT, encoder.encode(`/switch ${target}`)));
});

function setMembers(names) {
  members.clear();
  for (const name of names) members.add(name);
  drawMembers();
}

function drawMembers() {
  $("members").replaceChildren(...[...members].sort().map((name) => {
    const item = document.createElement("li");
    const who = document.createElement("button");
    who.type = "button";
    who.className = "who";
    who.textContent = name;
    who.title = `Whisper to ${name}`;
    who.addEventListener("click", () => {
      $("message").value = `/whisper ${name} `;
      $("message").focus();
    });
    if (name === me) {
      who.textContent = `${name} (you)`;
      who.disabled = true;
      item.append(who);
      return item;
    }
    const file = document.createElement("button");
    file.type = "button";
    file.textContent = "File…";
    file.setAttribute("aria-label", `Send a file to ${name}`);
    file.addEventListener("click", () => pickFile(name));
    item.addEventListener("dragover", (event) => { event.preventDefault(); item.classList.add("drop"); });
    item.addEventListener("dragleave", () => item.classList.remove("drop"));
    item.addEventListener("drop", (event) => {
      event.preventDefault();
      item.classList.remove("drop");
      for (const dropped of event.dataTransfer.files) offerFile(name, dropped);
    });
    item.append(who, file);
    return item;
  }));
}

// ----- typing -----

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const line = $("message").value;
  $("message").value = "";
  const words = line.trim().split(/\s+/u);
  if (words[0] === "/send") {
    // A page cannot open a path it was given: /send USER opens the file picker.
    if (words.length >= 2) pickFile(words[1]);
    else showNotice("usage: /send USER (then choose the file)");
    return;
  }
  if (line.trim() === "") return;
  send(frame(FRAME.INPUT, encoder.encode(line)));
});

// The log stays: the history the server sends again shows only what this
// page has not shown (showHistory).
$("reconnect").addEventListener("click", () => {
  $("status").classList.remove("ended");
  $("reconnect").hidden = true;
  status("Connecting…");
  connect(me, channel);
});

// ----- sending files -----

let pickingFor = "";

function pickFile(target) {
  pickingFor = target;
  $("file").value = "";
  $("file").click();
}

$("file").addEventListener("change", () => {
  for (const file of $("file").files) offerFile(pickingFor, file);
});

function transferRow(text, size) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.textContent = text;
  const bar = document.createElement("progress");
  bar.max = Math.max(size, 1);
  bar.value = 0;
  item.append(label, " ", bar);
  $("transfers").append(item);
  return item;
}

function finishRow(row, text) {
  row.querySelector("progress")?.remove();
  const note = document.createElement("span");
  note.textContent = ` ${text}`;
  row.append(note);
  setTimeout(() => row.remove(), 10000);
}

function offerFile(target, file) {
  const ref = nextRef++;
  const entry = { ref, file, target, id: 0, sent: 0, acked: 0, crc: 0, reading: false, ended: false };
  entry.row = transferRow(`${file.name} → ${target}`, file.size);
  outgoing.set(ref, entry);
  const offer = { ref, target, path: file.name, name: file.name, size: file.size, readable: true };
  send(frame(FRAME.SEND_OFFER, encoder.encode(JSON.stringify(offer))));
}

function sendState(payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const ref = view.getUint32(0);
  const state = payload[4];
  const entry = outgoing.get(ref);
  if (!entry) return;
  const body = payload.subarray(5);
  if (state === STATE.GO) {
    entry.id = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
    bySendId.set(entry.id, entry);
    pump(entry);
    return;
  }
  outgoing.delete(ref);
  bySendId.delete(entry.id);
  if (state === STATE.DONE) finishRow(entry.row, "delivered");
  else finishRow(entry.row, `not delivered${body.length ? `: ${decoder.decode(body)}` : ""}`);
}

function fileAck(payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const entry = bySendId.get(view.getUint32(0));
  if (!entry) return;
  entry.acked = Number(view.getBigUint64(4));
  entry.row.querySelector("progress")?.setAttribute("value", String(entry.acked));
  pump(entry);
}

// Streams the file in chunks, never more than WINDOW bytes unacknowledged.
async function pump(entry) {
  if (entry.reading) return;
  entry.reading = true;
  try {
    while (!entry.ended && entry.sent < entry.file.size && entry.sent - entry.acked < WINDOW) {
      const end = Math.min(entry.sent + CHUNK, entry.file.size);
      const chunk = new Uint8Array(await entry.file.slice(entry.sent, end).arrayBuffer());
      if (!bySendId.has(entry.id)) return;
      entry.crc = crc32(entry.crc, chunk);
      entry.sent = end;
      send(withId(FRAME.FILE_DATA, entry.id, chunk));
    }
    if (!entry.ended && entry.sent === entry.file.size) {
      entry.ended = true;
      send(withId(FRAME.FILE_END, entry.id, u32(entry.crc)));
    }
  } catch (error) {
    entry.ended = true;
    send(withId(FRAME.FILE_ABORT, entry.id, encoder.encode(`the browser could not read the file: ${error.message}`)));
    finishRow(entry.row, "not delivered: the file could not be read");
  } finally {
    entry.reading = false;
  }
}

// ----- receiving files -----

function fileIncoming(offer) {
  const entry = { ...offer, chunks: [], got: 0, crc: 0 };
  entry.row = transferRow(`${offer.name} from ${offer.sender} (${humanSize(offer.size)})`, offer.size);
  incoming.set(offer.id, entry);
}

function fileData(payload) {
  const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  const entry = incoming.get(id);
  if (!entry) return;
  const chunk = payload.slice(4);
  entry.chunks.push(chunk);
  entry.got += chunk.length;
  entry.crc = crc32(entry.crc, chunk);
  entry.row.querySelector("progress")?.setAttribute("value", String(entry.got));
  const ack = new Uint8Array(12);
  const view = new DataView(ack.buffer);
  view.setUint32(0, id);
  view.setBigUint64(4, BigInt(entry.got));
  send(frame(FRAME.FILE_ACK, ack));
}

function fileEnd(payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const id = view.getUint32(0);
  const entry = incoming.get(id);
  if (!entry) return;
  incoming.delete(id);
  const good = payload.length === 8 && view.getUint32(4) === entry.crc && entry.got === entry.size;
  const detail = good ? "" : "the file arrived damaged (checksum or size differs)";
  send(withId(FRAME.FILE_RESULT, id, new Uint8Array([good ? 1 : 0, ...encoder.encode(detail)])));
  if (!good) { finishRow(entry.row, `not saved: ${detail}`); return; }
  entry.row.querySelector("progress")?.remove();
  const link = document.createElement("a");
  const url = URL.createObjectURL(new Blob(entry.chunks));
  link.href = url;
  link.download = entry.name;
  link.textContent = `Save ${entry.name}`;
  // One download, for this page only: then the browser forgets the file.
  link.addEventListener("click", () => {
    setTimeout(() => { URL.revokeObjectURL(url); link.replaceWith("saved"); }, 1000);
  });
  entry.row.append(" ", link);
}

function fileAbort(payload) {
  const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  const entry = incoming.get(id);
  if (!entry) return;
  incoming.delete(id);
  finishRow(entry.row, `not received: ${decoder.decode(payload.subarray(4))}`);
}

refreshChannels();
setInterval(refreshChannels, 2000);
