// Files both ways (docs/protocol.md, "Files"): a file streams from the
// browser in chunks under the end-to-end window; a file to this page streams
// into memory and, once its CRC-32 checks, becomes a one-time Save link.
// Each transfer has a row with its bar, size, percentage, speed and time left.

import { $, state } from "./state.js";
import { CHUNK, FRAME, crc32, decoder, encoder, frame, u32, withId } from "./frames.js";

const STATE = { GO: 0, DONE: 1, REFUSED: 2, ABORTED: 3 };
const WINDOW = 16 * CHUNK;
const FINISHED_ROW_MS = 10000;

let nextRef = 1;

// A connection's transfers: each connection numbers its own.
export function newTransfers() {
  return {
    outgoing: new Map(), // ref -> entry
    bySendId: new Map(), // server id -> outgoing entry
    incoming: new Map(), // server id -> entry
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

function transferRow(conn, text, size) {
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
  item.append(label, bar, figures);
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
  const note = document.createElement("span");
  note.className = "outcome";
  note.textContent = text;
  row.append(note);
  setTimeout(() => row.remove(), FINISHED_ROW_MS);
}

let pickingFor = "";
let pickingIn = null; // the connection the picked file goes by

export function pickFile(target) {
  pickingFor = target;
  pickingIn = state.active;
  $("file").value = "";
  $("file").click();
}

export function offerFile(conn, target, file) {
  const ref = nextRef++;
  const entry = {
    conn, ref, file, target, size: file.size, id: 0, sent: 0, acked: 0, crc: 0,
    reading: false, ended: false, started: 0,
  };
  entry.row = transferRow(conn, `${file.name} → ${target}`, file.size);
  conn.files.outgoing.set(ref, entry);
  const offer = { ref, target, path: file.name, name: file.name, size: file.size, readable: true };
  conn.send(frame(FRAME.SEND_OFFER, encoder.encode(JSON.stringify(offer))));
}

export function sendState(conn, payload) {
  const { outgoing, bySendId } = conn.files;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const ref = view.getUint32(0);
  const outcome = payload[4];
  const entry = outgoing.get(ref);
  if (!entry) return;
  const body = payload.subarray(5);
  if (outcome === STATE.GO) {
    entry.id = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
    entry.started = performance.now();
    bySendId.set(entry.id, entry);
    pump(entry);
    return;
  }
  outgoing.delete(ref);
  bySendId.delete(entry.id);
  if (outcome === STATE.DONE) finishRow(entry.row, "delivered");
  else finishRow(entry.row, `not delivered${body.length ? `: ${decoder.decode(body)}` : ""}`);
}

export function fileAck(conn, payload) {
  const { bySendId } = conn.files;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const entry = bySendId.get(view.getUint32(0));
  if (!entry) return;
  entry.acked = Number(view.getBigUint64(4));
  progressed(entry, entry.acked);
  pump(entry);
}

// Streams the file in chunks, never more than WINDOW bytes unacknowledged.
async function pump(entry) {
  if (entry.reading) return;
  const { conn } = entry;
  const { bySendId } = conn.files;
  const send = (bytes) => conn.send(bytes);
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

export function fileIncoming(conn, offer) {
  const entry = { ...offer, chunks: [], got: 0, crc: 0, started: 0 };
  entry.row = transferRow(conn, `${offer.name} from ${offer.sender}`, offer.size);
  conn.files.incoming.set(offer.id, entry);
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
  const { incoming } = conn.files;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const id = view.getUint32(0);
  const entry = incoming.get(id);
  if (!entry) return;
  incoming.delete(id);
  const good = payload.length === 8 && view.getUint32(4) === entry.crc && entry.got === entry.size;
  const detail = good ? "" : "the file arrived damaged (checksum or size differs)";
  conn.send(withId(FRAME.FILE_RESULT, id, new Uint8Array([good ? 1 : 0, ...encoder.encode(detail)])));
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
  entry.row.append(link);
}

export function fileAbort(conn, payload) {
  const { incoming } = conn.files;
  const id = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
  const entry = incoming.get(id);
  if (!entry) return;
  incoming.delete(id);
  finishRow(entry.row, `not received: ${decoder.decode(payload.subarray(4))}`);
}

// The connection is gone: what was on its way is not.
export function dropTransfers(conn) {
  const { outgoing, bySendId, incoming } = conn.files;
  for (const entry of outgoing.values()) finishRow(entry.row, "not delivered: disconnected");
  outgoing.clear();
  bySendId.clear();
  incoming.clear();
}

export function setUpFiles() {
  $("file").addEventListener("change", () => {
    for (const file of $("file").files) if (pickingIn) offerFile(pickingIn, pickingFor, file);
  });
}
