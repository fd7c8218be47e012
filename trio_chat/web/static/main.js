// The trio-chat browser client. It speaks the terminal client's frames
// (docs/protocol.md) inside WebSocket binary messages, except that what
// happens in the channel arrives as EVENT frames of JSON, which this page
// renders itself (render.js). Every text from the server is inserted with
// textContent, never as HTML. The modules, by job: frames.js (the wire),
// state.js (what is shared), connection.js (the socket and the events),
// render.js (the log), sidebar.js (channels and members), files.js
// (transfers), and this one (the join form and the message field).

import { $, conn, send } from "./state.js";
import { FRAME, encoder, frame } from "./frames.js";
import { connect, reconnect } from "./connection.js";
import { showNotice } from "./render.js";
import { fetchCounts, fileActions, setUpPanes, startCounts } from "./sidebar.js";
import { offerFile, pickFile, setUpFiles } from "./files.js";

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
  if ($("channel").value) connect(name, $("channel").value);
  else $("join-error").textContent = "Cannot reach the server.";
});

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const line = $("message").value;
  $("message").value = "";
  const words = line.trim().split(/\s+/u);
  if (words[0] === "/send") {
    // A page cannot open a path it was given: /send USER opens the file picker.
    if (words.length >= 2) pickFile(conn, words[1]);
    else showNotice("usage: /send USER (then choose the file)");
    return;
  }
  if (line.trim() === "") return;
  send(frame(FRAME.INPUT, encoder.encode(line)));
});

$("reconnect").addEventListener("click", reconnect);

fileActions((name) => pickFile(conn, name), (name, file) => offerFile(conn, name, file));
setUpFiles(() => conn);
setUpPanes();
startCounts();
refreshChannels();
setInterval(refreshChannels, JOIN_FORM_EVERY_MS);
