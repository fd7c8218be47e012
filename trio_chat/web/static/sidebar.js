// The two side panes: every configured channel (with its members/capacity
// and queue from /channels, the one the page is in marked) and the members
// of that channel. At phone width both are drawers (style.css).

import { $, send, state } from "./state.js";
import { FRAME, encoder, frame } from "./frames.js";
import { colourOf } from "./render.js";

const COUNTS_EVERY_MS = 5000;

export async function fetchCounts() {
  try {
    const response = await fetch("/channels", { cache: "no-store" });
    const channels = await response.json();
    for (const c of channels) {
      state.counts.set(c.name, { members: c.members, capacity: c.capacity, queue: c.queue });
    }
    return channels;
  } catch (error) {
    return null; // the server went away: the next poll tries again
  }
}

// A listing (a /list typed in) carries the same figures.
export function countsFromListing(rows) {
  for (const c of rows) {
    state.counts.set(c.name, { members: c.members, capacity: c.capacity, queue: c.queued });
  }
  drawChannels();
}

export function setChannels(names) {
  state.channels = names;
  drawChannels();
}

export function drawChannels() {
  $("channels").replaceChildren(...state.channels.map((name) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "chan";
    button.dataset.channel = name;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    button.append(label);
    const counts = state.counts.get(name);
    if (counts) {
      const figures = document.createElement("span");
      figures.className = "count";
      figures.textContent = `${counts.members}/${counts.capacity}`;
      figures.title = `${counts.members} of ${counts.capacity} places taken`;
      button.append(figures);
      if (counts.queue) {
        const queue = document.createElement("span");
        queue.className = "queue";
        queue.textContent = `+${counts.queue}`;
        queue.title = `${counts.queue} waiting`;
        button.append(queue);
      }
    }
    if (name === state.channel) {
      button.setAttribute("aria-current", "true");
      button.title = `You are in ${name}`;
    } else {
      button.title = `Switch to ${name}`;
      button.addEventListener("click", () => {
        send(frame(FRAME.INPUT, encoder.encode(`/switch ${name}`)));
        closeDrawers();
      });
    }
    item.append(button);
    return item;
  }));
}

export function startCounts() {
  const poll = async () => {
    if (state.joined && (await fetchCounts())) drawChannels();
  };
  setInterval(poll, COUNTS_EVERY_MS);
  poll();
}

// ----- members -----

let pickFile = () => {};
let offerFile = () => {};

// files.js gives the member list its two ways to send a file.
export function fileActions(pick, offer) {
  pickFile = pick;
  offerFile = offer;
}

export function setMembers(names) {
  state.members.clear();
  for (const name of names) state.members.add(name);
  drawMembers();
}

export function drawMembers() {
  $("member-count").textContent = String(state.members.size);
  // The channel list's figure for this channel follows the member list at once.
  const counts = state.counts.get(state.channel);
  if (counts && state.joined && counts.members !== state.members.size) {
    counts.members = state.members.size;
    drawChannels();
  }
  $("members").replaceChildren(...[...state.members].sort().map((name) => {
    const item = document.createElement("li");
    const who = document.createElement("button");
    who.type = "button";
    who.className = `who ${colourOf(name)}`;
    who.textContent = name;
    who.title = `Whisper to ${name}`;
    who.addEventListener("click", () => {
      $("message").value = `/whisper ${name} `;
      closeDrawers();
      $("message").focus();
    });
    if (name === state.me) {
      who.textContent = `${name} (you)`;
      who.disabled = true;
      item.append(who);
      return item;
    }
    const file = document.createElement("button");
    file.type = "button";
    file.className = "file";
    file.textContent = "File…";
    file.setAttribute("aria-label", `Send a file to ${name}`);
    file.addEventListener("click", () => pickFile(name));
    // Only files: a dragged text is no file to send.
    const files = (event) => Array.from(event.dataTransfer?.types ?? []).includes("Files");
    item.addEventListener("dragover", (event) => {
      if (!files(event)) return;
      event.preventDefault();
      item.classList.add("drop");
    });
    item.addEventListener("dragleave", () => item.classList.remove("drop"));
    item.addEventListener("drop", (event) => {
      item.classList.remove("drop");
      if (!files(event)) return;
      event.preventDefault();
      for (const dropped of event.dataTransfer.files) offerFile(name, dropped);
    });
    item.append(who, file);
    return item;
  }));
}

// ----- the panes' buttons -----

function toggle(button, pane) {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  $("chat").classList.toggle(`${pane}-open`, open);
  $("chat").classList.toggle(`${pane}-closed`, !open);
  // A drawer that opens over the log takes the focus; Escape or × gives it back.
  if (open && phone.matches) $(`${pane}-pane`).querySelector("button")?.focus();
}

const phone = window.matchMedia("(max-width: 48rem)");

export function closeDrawers() {
  if (!phone.matches) return;
  for (const [id, pane] of [["show-channels", "channels"], ["show-members", "members"]]) {
    if (!$("chat").classList.contains(`${pane}-open`)) continue;
    $(id).setAttribute("aria-expanded", "false");
    $("chat").classList.remove(`${pane}-open`);
    if ($(`${pane}-pane`).contains(document.activeElement)) $(id).focus();
  }
}

// On a wide screen both panes start open; at phone width, closed.
function fitPanes() {
  for (const [id, pane] of [["show-channels", "channels"], ["show-members", "members"]]) {
    $(id).setAttribute("aria-expanded", String(!phone.matches));
    $("chat").classList.remove(`${pane}-open`, `${pane}-closed`);
  }
}

export function setUpPanes() {
  $("show-channels").addEventListener("click", () => toggle($("show-channels"), "channels"));
  $("show-members").addEventListener("click", () => toggle($("show-members"), "members"));
  for (const close of document.querySelectorAll(".close-pane")) {
    close.addEventListener("click", () => {
      closeDrawers();
      $(close.dataset.for).focus();
    });
  }
  $("log-pane").addEventListener("click", closeDrawers);
  phone.addEventListener("change", fitPanes);
  fitPanes();
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDrawers();
  });
}
