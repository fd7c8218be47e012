// The trio-chat browser client. It speaks the terminal client's frames
// (docs/protocol.md) inside WebSocket binary messages, one connection per
// channel it is in, except that what happens in a channel arrives as EVENT
// frames of JSON, which this page renders itself (render.js). Every text
// from the server is inserted with textContent, never as HTML. The modules,
// by job: frames.js (the wire), state.js (what is shared), connection.js
// (the connections and their events), view.js (what is on screen),
// render.js (the logs), attention.js (unread lines, notifications),
// sidebar.js (channels and members), files.js (transfers), input.js (the
// message field's keys), and this one (the join form, what is typed).

import { $, state } from "./state.js";
import { encoder } from "./frames.js";
import { leave, openRoom, reconnect } from "./connection.js";
import { showNotice } from "./render.js";
import { setUpAttention } from "./attention.js";
import { drawChannels, fetchCounts, setUpPanes, sidebarActions, startCounts } from "./sidebar.js";
import { offerFile, pickFile, setUpFiles } from "./files.js";
import { setUpQuiet, show } from "./view.js";
import { remember, setUpInput } from "./input.js";

const JOIN_FORM_EVERY_MS = 2000;

// The join form's channel list, refreshed while the form is shown.
async function refreshChannels() {
  if ($("join").hidden) return;
  const channels = await fetchCounts();
  if (!channels) return;
  const select = $("channel");
  const chosen = select.value;
  select.replaceChildren(...channels.map((c) => {
    const option = document.createElement("option");
    option.value = c.name;
    option.textContent = `${c.name} (${c.members}/${c.capacity}, ${c.queue} waiting)`;
    return option;
  }));
  if (chosen) select.value = chosen;
}

function joinProblem(name) {
  if (!name) return "Enter a name.";
  if (encoder.encode(name).length > 32) return "A name is at most 32 characters.";
  if (/[\s:]/u.test(name)) return "A name has no spaces and no ':'.";
  return "";
}

$("join-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("name").value;
  const problem = joinProblem(name);
  $("join-error").textContent = problem;
  if (problem) return;
  // Joined before the channel list came (a quick Enter): wait for it.
  if (!$("channel").value) await refreshChannels();
  if (!$("channel").value) {
    $("join-error").textContent = "Cannot reach the server.";
    return;
  }
  if (name !== state.me) {
    // Another name: the channels still open under the old one are left.
    for (const room of [...state.rooms.values()]) leave(room);
  }
  state.me = name;
  openRoom($("channel").value);
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = state.active;
  const line = $("message").value;
  if (!room) return;
  $("message").value = "";
  remember(line);
  const words = line.trim().split(/\s+/u);
  if (words[0] === "/send") {
    // A page cannot open a path it was given: /send USER opens the file picker.
    if (words.length >= 2) pickFile(room, words[1]);
    else showNotice(room, "usage: /send USER (then choose the file)");
    return;
  }
  if (line.trim() === "") return;
  // /quit leaves this channel, as anywhere; the page forgets it then.
  if (line.trim() === "/quit") room.leaving = true;
  room.line(line);
});

$("reconnect").addEventListener("click", () => state.active && reconnect(state.active));

sidebarActions({
  open: openRoom,
  leave,
  pickFile: (target) => state.active && pickFile(state.active, target),
  offerFile: (target, file) => state.active && offerFile(state.active, target, file),
});
setUpAttention(drawChannels, show);
setUpQuiet();
setUpFiles(() => state.active);
setUpInput($("message"), $("completions"), {
  names: () => [...(state.active?.members ?? [])],
  channels: () => state.channels,
  current: () => state.active?.channel ?? "",
  me: () => state.me,
});
setUpPanes();
startCounts();
refreshChannels();
setInterval(refreshChannels, JOIN_FORM_EVERY_MS);
