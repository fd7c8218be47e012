// What the page knows of its connection, shared by the modules, and the
// one way to send a frame.

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
