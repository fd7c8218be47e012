// What the page knows of its connection, shared by the modules, and the
// one way to send a frame.

import { newTransfers } from "./files.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  socket: null,
  me: "",
  channel: "",
  joined: false,
  refusal: null,
  channels: [], // the configured channels' names (a CHANNELS frame)
  counts: new Map(), // channel -> {members, capacity, queue} (/channels, a listing)
  members: new Set(),
};

export function send(bytes) {
  const { socket } = state;
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(bytes);
}

// The connection as files.js sees it: how to send on it, its transfers, the
// list their rows go in, and whom a file can go to.
export const conn = {
  send,
  files: newTransfers(),
  transfersList: $("transfers"),
  members: () => [...state.members].filter((name) => name !== state.me).sort(),
};
