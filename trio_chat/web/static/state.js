// What the page knows, shared by the modules, and the one way to send a
// frame to the channel in view.

import { newTransfers } from "./files.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  me: "", // the name this page joins every channel with
  rooms: new Map(), // channel -> its Room (connection.js): one member each
  active: null, // the Room in view
  channels: [], // the configured channels' names (a CHANNELS frame)
  counts: new Map(), // channel -> {members, capacity, queue} (/channels, a listing)
};

// To the channel in view (a line typed, a whisper, a file offered there).
export function send(bytes) {
  state.active?.send(bytes);
}

// The connection as files.js sees it: how to send on it, its transfers, the
// list their rows go in, and whom a file can go to.
export const conn = {
  send,
  files: newTransfers(),
  transfersList: $("transfers"),
  members: () => [...state.members].filter((name) => name !== state.me).sort(),
};
