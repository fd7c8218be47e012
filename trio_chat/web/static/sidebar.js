// The two side panes: every configured channel (with its members/capacity
// and queue from /channels; the ones the page is in marked) and the members
// of the one in view. At phone width both are drawers (style.css).

import { $, state } from "./state.js";
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

// What the page does when a channel or a name is pressed (main.js).
const actions = {
  open: () => {}, // join a channel too, or bring it into view
  leave: () => {}, // leave a channel the page is in
  pickFile: () => {}, // choose a file for a member
  offerFile: () => {}, // offer a dropped file to a member
};

export function sidebarActions(given) {
  Object.assign(actions, given);
}

function badge(className, text, title) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  if (title) node.title = title;
  return node;
}

// Each configured channel: its figures; the ones the page is in marked,
// with their unread count, queue place or trouble, and a button to leave.
export function drawChannels() {
  // The list is drawn anew: a focus in it goes back to the same button.
  const focused = $("channels").contains(document.activeElement) ? document.activeElement : null;
  const refocus = focused && [focused.dataset.channel, focused.dataset.leave];
  $("channels").replaceChildren(...state.channels.map((name) => {
    const room = state.rooms.get(name);
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
    const about = [];
    if (room) {
      item.className = "in";
      if (room.ended) {
        button.append(badge("trouble", "ended", room.ended));
        about.push("disconnected");
      } else if (room.retrying) {
        button.append(badge("trouble", "reconnecting…", room.status));
        about.push("reconnecting");
      } else if (room.ahead >= 0) {
        button.append(badge("waiting", `${room.ahead} ahead`, room.status));
        about.push(`waiting, ${room.ahead} ahead of you`);
      }
      if (room.unread) {
        button.append(badge("unread", String(room.unread)));
        about.push(`${room.unread} unread`);
      }
    }
    if (counts) {
      button.append(badge("count", `${counts.members}/${counts.capacity}`,
        `${counts.members} of ${counts.capacity} places taken`));
      if (counts.queue) button.append(badge("queue", `+${counts.queue}`, `${counts.queue} waiting`));
    }
    if (room === state.active && room) button.setAttribute("aria-current", "true");
    const what = room ? `Show ${name}` : `Join ${name}`;
    button.setAttribute("aria-label", [what, ...about].join(", "));
    button.addEventListener("click", () => {
      actions.open(name);
      closeDrawers();
    });
    item.append(button);
    if (room) {
      const leave = document.createElement("button");
      leave.type = "button";
      leave.className = "leave";
      leave.textContent = "×";
      leave.title = `Leave ${name}`;
      leave.setAttribute("aria-label", `Leave ${name}`);
      leave.dataset.leave = name;
      leave.addEventListener("click", () => actions.leave(room));
      item.append(leave);
    }
    return item;
  }));
  if (!refocus) return;
  const [channel, leaving] = refocus;
  const again = leaving
    ? $("channels").querySelector(`button.leave[data-leave="${CSS.escape(leaving)}"]`)
    : $("channels").querySelector(`button.chan[data-channel="${CSS.escape(channel)}"]`);
  (again ?? $("message")).focus();
}

export function startCounts() {
  const poll = async () => {
    if (state.rooms.size && (await fetchCounts())) drawChannels();
  };
  setInterval(poll, COUNTS_EVERY_MS);
  poll();
}

// ----- members of the channel in view -----

export function drawMembers() {
  const room = state.active;
  const members = room ? room.members : new Set();
  $("member-count").textContent = String(members.size);
  // The channel list's figure for this channel follows the member list at once.
  const counts = room && state.counts.get(room.channel);
  if (counts && room.live && counts.members !== members.size) {
    counts.members = members.size;
    drawChannels();
  }
  $("members").replaceChildren(...[...members].sort().map((name) => {
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
    file.addEventListener("click", () => actions.pickFile(name));
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
      for (const dropped of event.dataTransfer.files) actions.offerFile(name, dropped);
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
