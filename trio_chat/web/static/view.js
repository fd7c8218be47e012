// What is on screen: the join form or the chat, and of the chat the channel
// in view (its log, its members, its status in the top bar).

import { $, state } from "./state.js";
import { drawTitle, seen } from "./attention.js";
import { closeDrawers, drawChannels, drawMembers } from "./sidebar.js";

// The first channel let this page in: from now on it shows the chat.
export function enterChat() {
  if (!$("chat").hidden) return;
  $("join").hidden = true;
  $("chat").hidden = false;
  $("message").focus();
}

// Every channel left: back to the join form, the name kept.
function leaveChat() {
  $("chat").hidden = true;
  $("join").hidden = false;
  $("name").value = state.me;
  drawTitle();
  $("name").focus();
}

// "Hide joins": the rows of who joins, leaves (AFK, kicked) and is muted go
// from every log (style.css), remembered by this browser.
const QUIET_KEY = "trio-chat.quiet";

function beQuiet(quiet) {
  $("chat").classList.toggle("quiet", quiet);
  $("quiet").setAttribute("aria-pressed", String(quiet));
  try {
    localStorage.setItem(QUIET_KEY, quiet ? "1" : "");
  } catch (error) {
    // (storage refused: the choice lasts as long as the page)
  }
}

export function setUpQuiet() {
  let stored = "";
  try {
    stored = localStorage.getItem(QUIET_KEY) ?? "";
  } catch (error) {
    stored = "";
  }
  beQuiet(stored === "1");
  $("quiet").addEventListener("click", () => beQuiet(!$("chat").classList.contains("quiet")));
}

export function joinError(text) {
  $("join-error").textContent = text;
}

export function show(room) {
  state.active = room;
  for (const region of $("logs").children) region.hidden = region !== room.log.parentElement;
  room.log.scrollTop = room.log.scrollHeight;
  closeDrawers();
  drawView();
  seen();
}

// The top bar, the field and the panes for the channel in view.
export function drawView() {
  const room = state.active;
  if (!room) return;
  $("where").textContent = room.channel;
  $("whoami").textContent = `as ${state.me}`;
  $("status").textContent = room.status;
  $("status").classList.toggle("ended", Boolean(room.ended));
  $("status").classList.toggle("reconnecting", Boolean(room.retrying));
  $("reconnect").hidden = !room.ended && !room.retrying;
  $("message").disabled = !room.live;
  drawTitle();
  drawChannels();
  drawMembers();
}

// A channel's state changed: redraw it wherever it shows.
export function changed(room) {
  if (room === state.active) drawView();
  else drawChannels();
}

// ``room`` is gone from the page (left, or refused before it was in).
export function forget(room) {
  if (state.rooms.get(room.channel) === room) state.rooms.delete(room.channel);
  room.log.parentElement.remove();
  if (state.active !== room) {
    drawChannels();
    drawTitle();
    return;
  }
  state.active = null;
  const next = state.rooms.values().next().value;
  if (next) show(next);
  else leaveChat();
}
