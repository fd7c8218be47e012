// Files both ways (docs/protocol.md, "Sending a file"): a file streams from
// the browser in chunks under the end-to-end window; a file to this page
// streams into memory and, once its CRC-32 checks, is kept in the "Received
// files" list until forgotten. Each transfer has a row with its bar, size,
// percentage, speed and time left, and while it runs a Cancel button.
//
// Everything here that sends or keeps transfer state takes the connection
// first, so that each connection of the page has transfers of its own:
// conn.send(bytes) sends a frame on it, conn.files is its state
// (newTransfers()), conn.transfersList the <ul> its rows go in, and
// conn.recipients() the names a file can go to (its channel's members but you).

import { CHUNK, FRAME, crc32, decoder, encoder, frame, u32, withId } from "./frames.js";

const STATE = { GO: 0, DONE: 1, REFUSED: 2, ABORTED: 3 };
const WINDOW = 16 * CHUNK;
const FINISHED_ROW_MS = 10000;
// The reasons the other side is given (a terminal prints them).
const SENDER_CANCELLED = "cancelled by the sender";
const RECEIVER_CANCELLED = "cancelled by the receiver";
// The first bytes of the image formats a received file may be shown as.
const IMAGES = [
  ["image/png", [[0, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]]]],
  ["image/jpeg", [[0, [0xff, 0xd8, 0xff]]]],
  ["image/gif", [[0, [...encoder.encode("GIF87a")]]]],
  ["image/gif", [[0, [...encoder.encode("GIF89a")]]]],
  ["image/webp", [[0, [...encoder.encode("RIFF")]], [8, [...encoder.encode("WEBP")]]]],
];
const MAGIC_BYTES = 12;

const byId = (id) => document.getElementById(id);

export function newTransfers() {
  return {
    nextRef: 1,
    outgoing: new Map(), // ref -> entry, from the offer until it is over
    bySendId: new Map(), // server id -> outgoing entry, once the server said go
    incoming: new Map(), // server id -> entry, until the whole file came
  };
}

export function humanSize(size) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = size, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return unit ? `${value.toFixed(1)} ${units[unit]}` : `${size} bytes`;
}

function humanTime(seconds) {
  if (seconds < 60) return `${Math.ceil(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.ceil(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

// "1.5 MiB of 5.0 MiB · 30% · 2.1 MiB/s · 3 s left"
export function progressText(done, size, elapsedMs) {
  const percent = size ? Math.floor((done * 100) / size) : 100;
  const parts = [`${humanSize(done)} of ${humanSize(size)}`, `${percent}%`];
  if (elapsedMs > 0 && done > 0) {
    const speed = done / (elapsedMs / 1000);
    parts.push(`${humanSize(Math.round(speed))}/s`);
    if (done < size) parts.push(`${humanTime((size - done) / speed)} left`);
  }
  return parts.join(" · ");
}

function button(text, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  if (label) element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

function transferRow(conn, text, name, size, onCancel) {
  const item = document.createElement("li");
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = text;
  const bar = document.createElement("progress");
  bar.max = Math.max(size, 1);
  bar.value = 0;
  const figures = document.createElement("span");
  figures.className = "progress";
  figures.textContent = progressText(0, size, 0);
  const cancel = button("Cancel", `Cancel ${name}`, onCancel);
  cancel.className = "cancel";
  item.append(label, bar, figures, cancel);
  conn.transfersList.append(item);
  return item;
}

function progressed(entry, done) {
  if (!entry.started) entry.started = performance.now();
  entry.row.querySelector("progress")?.setAttribute("value", String(done));
  entry.row.querySelector(".progress").textContent =
    progressText(done, entry.size, performance.now() - entry.started);
}

function finishRow(row, text) {
  row.querySelector("progress")?.remove();
  row.querySelector(".cancel")?.remove();
  const note = document.createElement("span");
  note.className = "outcome";
  note.textContent = text;
  row.append(note);
  setTimeout(() => row.remove(), FINISHED_ROW_MS);
}

// ----- sending -----

// The page has one file picker: what it picks goes where it was opened for.
let picking = null; // {conn, target}

export function pickFile(conn, target) {
  picking = { conn, target };
  byId("file").value = "";
  byId("file").click();
}

export function offerFile(conn, target, file) {
  const ref = conn.files.nextRef++;
  const entry = {
    ref, file, target, size: file.size, id: 0, sent: 0, acked: 0, crc: 0,
    reading: false, ended: false, cancelled: false, started: 0,
  };
  entry.row = transferRow(conn, `${file.name} → ${target}`, file.name, file.size,
    () => cancelOutgoing(conn, entry));
  conn.files.outgoing.set(ref, entry);
  const offer = { ref, target, path: file.name, name: file.name, size: file.size, readable: true };
  conn.send(frame(FRAME.SEND_OFFER, encoder.encode(JSON.stringify(offer))));
}

// The protocol has no way to call off an offer the server has not answered
// (FILE_ABORT needs its id): such an offer is aborted as soon as the id comes.
function cancelOutgoing(conn, entry) {
  if (entry.cancelled) return;
  entry.cancelled = true;
  entry.ended = true;
  if (entry.id) {
    conn.files.outgoing.delete(entry.ref);
    conn.files.bySendId.delete(entry.id);
    conn.send(withId(FRAME.FILE_ABORT, entry.id, encoder.encode(SENDER_CANCELLED)));
  }
  finishRow(entry.row, "cancelled");
}

export function sendState(conn, payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const ref = view.getUint32(0);
  const outcome = payload[4];
  const { outgoing, bySendId } = conn.files;
  const entry = outgoing.get(ref);
  if (!entry) return;
  const body = payload.subarray(5);
  if (outcome === STATE.GO) {
    entry.id = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
    if (entry.cancelled) {
      outgoing.delete(ref);
      conn.send(withId(FRAME.FILE_ABORT, entry.id, encoder.encode(SENDER_CANCELLED)));
      return;
    }
    entry.started = performance.now();
    bySendId.set(entry.id, entry);
    pump(conn, entry);
    return;
  }
  outgoing.delete(ref);
  bySendId.delete(entry.id);
  if (entry.cancelled) return; // its row already says so
  if (outcome === STATE.DONE) finishRow(entry.row, "delivered");
  else finishRow(entry.row, `not delivered${body.length ? `: ${decoder.decode(body)}` : ""}`);
}

export function fileAck(conn, payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const entry = conn.files.bySendId.get(view.getUint32(0));
  if (!entry) return;
  entry.acked = Number(view.getBigUint64(4));
  progressed(entry, entry.acked);
  pump(conn, entry);
}

// Streams the file in chunks, never more than WINDOW bytes unacknowledged.
async function pump(conn, entry) {
  if (entry.reading) return;
  entry.reading = true;
  const live = () => !entry.ended && conn.files.bySendId.get(entry.id) === entry;
  try {
    while (live() && entry.sent < entry.file.size && entry.sent - entry.acked < WINDOW) {
      const end = Math.min(entry.sent + CHUNK, entry.file.size);
      const chunk = new Uint8Array(await entry.file.slice(entry.sent, end).arrayBuffer());
      if (!live()) return; // cancelled or over while the chunk was read
      entry.crc = crc32(entry.crc, chunk);
      entry.sent = end;
      conn.send(withId(FRAME.FILE_DATA, entry.id, chunk));
    }
    if (live() && entry.sent === entry.file.size) {
      entry.ended = true;
      conn.send(withId(FRAME.FILE_END, entry.id, u32(entry.crc)));
    }
  } catch (error) {
    entry.ended = true;
    conn.files.outgoing.delete(entry.ref);
    conn.files.bySendId.delete(entry.id);
    conn.send(withId(FRAME.FILE_ABORT, entry.id, encoder.encode(`the browser could not read the file: ${error.message}`)));
    finishRow(entry.row, "not delivered: the file could not be read");
  } finally {
    entry.reading = false;
  }
}

// ----- dropped files -----

// "/whisper bob …" or "/send bob" in the message field: a file dropped
// on the log goes to bob at once.
function addressee(text) {
  const named = /^\/(whisper|send)\s+(\S+)/u.exec(text.trimStart());
  return named ? { command: named[1], name: named[2] } : null;
}

// Files dropped where no one is named: each gets a chooser of whom to send it to.
export function offerDropped(conn, files) {
  const message = byId("message");
  const named = addressee(message?.value ?? "");
  if (named?.command === "send") message.value = ""; // the /send is done with
  let first = null;
  for (const file of files) {
    if (named) offerFile(conn, named.name, file);
    else first ??= chooser(conn, file);
  }
  first?.focus();
}

function chooser(conn, file) {
  const item = document.createElement("li");
  item.className = "chooser";
  const form = document.createElement("form");
  const label = document.createElement("label");
  label.textContent = `Send ${file.name} (${humanSize(file.size)}) to: `;
  const select = document.createElement("select");
  const names = conn.recipients();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    select.append(option);
  }
  const go = document.createElement("button");
  go.type = "submit";
  go.className = "primary";
  go.textContent = "Send";
  if (!names.length) {
    const option = document.createElement("option");
    option.textContent = "no one else is here";
    select.append(option);
    select.disabled = true;
    go.disabled = true;
  }
  label.append(select);
  const close = () => {
    const focused = item.contains(document.activeElement);
    item.remove();
    if (focused) byId("message")?.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!select.value || select.disabled) return;
    offerFile(conn, select.value, file);
    close();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.stopPropagation(); close(); }
  });
  const cancel = button("Cancel", `Do not send ${file.name}`, close);
  form.append(label, go, cancel);
  item.append(form);
  conn.transfersList.append(item);
  return select.disabled ? cancel : select;
}

// ----- receiving -----

export function fileIncoming(conn, offer) {
  const entry = { ...offer, chunks: [], got: 0, crc: 0, started: 0 };
  entry.row = transferRow(conn, `${offer.name} from ${offer.sender}`, offer.name, offer.size,
    () => cancelIncoming(conn, entry));
  conn.files.incoming.set(offer.id, entry);
}

function result(id, saved, detail) {
  return withId(FRAME.FILE_RESULT, id, new Uint8Array([saved ? 1 : 0, ...encoder.encode(detail)]));
}

// A receiver gives up with a failed FILE_RESULT (FILE_ABORT is the sender's).
function cancelIncoming(conn, entry) {
  if (conn.files.incoming.get(entry.id) !== entry) return;
  conn.files.incoming.delete(entry.id);
  entry.chunks = [];
  conn.send(result(entry.id, false, RECEIVER_CANCELLED));
  finishRow(entry.row, "cancelled");
}

export function fileData(conn, payload) {
  const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  const entry = conn.files.incoming.get(id);
  if (!entry) return;
  const chunk = payload.slice(4);
  entry.chunks.push(chunk);
  entry.got += chunk.length;
  entry.crc = crc32(entry.crc, chunk);
  progressed(entry, entry.got);
  const ack = new Uint8Array(12);
  const view = new DataView(ack.buffer);
  view.setUint32(0, id);
  view.setBigUint64(4, BigInt(entry.got));
  conn.send(frame(FRAME.FILE_ACK, ack));
}

export function fileEnd(conn, payload) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const id = view.getUint32(0);
  const entry = conn.files.incoming.get(id);
  if (!entry) return;
  conn.files.incoming.delete(id);
  const good = payload.length === 8 && view.getUint32(4) === entry.crc && entry.got === entry.size;
  const detail = good ? "" : "the file arrived damaged (checksum or size differs)";
  conn.send(result(id, good, detail));
  if (!good) {
    entry.chunks = [];
    finishRow(entry.row, `not saved: ${detail}`);
    return;
  }
  finishRow(entry.row, "received");
  keepReceived(conn, entry);
}

export function fileAbort(conn, payload) {
  const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  const entry = conn.files.incoming.get(id);
  if (!entry) return;
  conn.files.incoming.delete(id);
  entry.chunks = [];
  finishRow(entry.row, `not received: ${decoder.decode(payload.subarray(4))}`);
}

// What the file's first bytes say it is, of the IMAGES; "" if none.
function imageType(chunks) {
  const head = new Uint8Array(MAGIC_BYTES);
  let at = 0;
  for (const chunk of chunks) {
    if (at === MAGIC_BYTES) break;
    const part = chunk.subarray(0, MAGIC_BYTES - at);
    head.set(part, at);
    at += part.length;
  }
  const has = ([offset, bytes]) =>
    offset + bytes.length <= at && bytes.every((byte, i) => head[offset + i] === byte);
  return IMAGES.find(([, signs]) => signs.every(has))?.[0] ?? "";
}

// One "Received files" list under each transfers list, whichever of the
// page's connections (channels) a file came by.
const receivedLists = new WeakMap(); // transfers <ul> -> its received <ul>

function receivedList(conn) {
  if (!receivedLists.has(conn.transfersList)) {
    const section = document.createElement("section");
    section.className = "received";
    const heading = document.createElement("h2");
    heading.textContent = "Received files";
    const list = document.createElement("ul");
    list.setAttribute("aria-label", "Received files");
    section.append(heading, list);
    conn.transfersList.after(section);
    receivedLists.set(conn.transfersList, list);
  }
  return receivedLists.get(conn.transfersList);
}

// The file stays in the page's memory, saveable again and again, until
// Forget (or the page closes): only then is its blob let go.
function keepReceived(conn, entry) {
  const kind = imageType(entry.chunks);
  const url = URL.createObjectURL(new Blob(entry.chunks, { type: kind || "application/octet-stream" }));
  entry.chunks = [];
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "label";
  name.textContent = entry.name;
  const about = document.createElement("span");
  about.className = "progress";
  about.textContent = `${humanSize(entry.size)} from ${entry.sender}`;
  const save = document.createElement("a");
  save.href = url;
  save.download = entry.name;
  save.textContent = "Save";
  save.setAttribute("aria-label", `Save ${entry.name}`);
  save.addEventListener("click", () => {
    // Only a file whose bytes say image, and only from its own blob.
    if (!kind || item.querySelector(".thumb")) return;
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    const image = document.createElement("img");
    image.src = url;
    image.alt = entry.name;
    thumb.append(image);
    item.append(thumb);
  });
  const forget = button("Forget", `Forget ${entry.name}`, () => {
    URL.revokeObjectURL(url);
    const list = receivedList(conn);
    item.remove();
    if (!list.children.length) {
      list.parentElement.remove();
      receivedLists.delete(conn.transfersList);
    }
  });
  item.append(name, about, save, forget);
  receivedList(conn).append(item);
}

// The connection is gone: what was on its way is not (what was received stays).
export function dropTransfers(conn) {
  const { outgoing, bySendId, incoming } = conn.files;
  for (const entry of outgoing.values()) {
    if (!entry.cancelled && !entry.row.querySelector(".outcome")) {
      finishRow(entry.row, "not delivered: disconnected");
    }
  }
  for (const entry of incoming.values()) finishRow(entry.row, "not received: disconnected");
  outgoing.clear();
  bySendId.clear();
  incoming.clear();
  for (const item of conn.transfersList.querySelectorAll(".chooser")) item.remove();
}

// ----- the page's picker and its log as a drop target -----

function carriesFiles(event) {
  return Array.from(event.dataTransfer?.types ?? []).includes("Files");
}

// connInView() is the connection whose log the page shows: a file dropped
// on the log is offered there.
export function setUpFiles(connInView) {
  byId("file").addEventListener("change", () => {
    if (!picking) return;
    for (const file of byId("file").files) offerFile(picking.conn, picking.target, file);
  });
  const pane = byId("log-pane");
  let depth = 0; // dragenter/dragleave pairs of the pane and its children
  pane.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    depth++;
    pane.classList.add("drop-target");
  });
  pane.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (!depth) pane.classList.remove("drop-target");
  });
  pane.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return; // text: the message field takes it as usual
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    pane.classList.add("drop-target");
  });
  pane.addEventListener("drop", (event) => {
    depth = 0;
    pane.classList.remove("drop-target");
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.stopPropagation();
    offerDropped(connInView(), Array.from(event.dataTransfer.files));
  });
  // A file dropped anywhere else must not make the browser leave the chat to open it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (!carriesFiles(event) || event.defaultPrevented) return;
      event.preventDefault();
      if (type === "dragover") event.dataTransfer.dropEffect = "none";
    });
  }
}
