// The message logs, one per channel the page is in: each EVENT
// (render/browser.py; docs/web.md) drawn from its fields as DOM nodes. Peer
// text only ever goes in as textContent; a link is an <a> made here, for
// http(s) URLs alone.

import { $, state } from "./state.js";
import { arrived } from "./attention.js";

export const HISTORY_DIVIDER = "— earlier messages —"; // as at a terminal (text.HISTORY_DIVIDER)
const GROUP_SECONDS = 5 * 60; // a sender's lines this close together share one name
const COLOURS = 10; // style.css: .c0 … .c9, each readable on both schemes (WCAG AA)
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/giu;
const TRAILING = /[.,;:!?'")\]}]+$/u; // punctuation after a URL, not of it

// A name's colour, the same on every page and every visit.
export function colourOf(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `c${hash % COLOURS}`;
}

// ----- text -----

// ``text`` as nodes: http(s) URLs as links that open apart from this page.
export function linked(text) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const url = match[0].replace(TRAILING, "");
    let parsed = null;
    try { parsed = new URL(url); } catch (error) { parsed = null; }
    if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) continue;
    if (match.index > at) nodes.push(document.createTextNode(text.slice(at, match.index)));
    const link = document.createElement("a");
    link.href = parsed.href;
    link.textContent = url;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    nodes.push(link);
    at = match.index + url.length;
  }
  if (at < text.length) nodes.push(document.createTextNode(text.slice(at)));
  return nodes;
}

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/gu, "\\$&");

function mentions(text) {
  if (!state.me) return false;
  return new RegExp(`(^|[^\\p{L}\\p{N}_])${escapeRegExp(state.me)}($|[^\\p{L}\\p{N}_])`, "iu").test(text);
}

function span(className, text) {
  const node = document.createElement("span");
  node.className = className;
  node.textContent = text;
  return node;
}

const seconds = (stamp) => {
  const [h, m, s] = stamp.split(":").map(Number);
  return h * 3600 + m * 60 + s;
};

function timeNode(stamp, when) {
  const node = document.createElement("time");
  node.className = "time";
  node.textContent = stamp;
  node.title = when ? when.toLocaleString() : `${new Date().toLocaleDateString()} ${stamp}`;
  if (when) node.dateTime = when.toISOString();
  return node;
}

// ----- rows -----

// A channel's log: a list in an ARIA live region of its own (role=log,
// which a list may not carry itself), shown while it is in view.
export function newLog(channel) {
  const region = document.createElement("div");
  region.className = "log";
  region.setAttribute("role", "log");
  region.setAttribute("aria-live", "polite"); // (implied by the role; said for older readers)
  region.hidden = true;
  const log = document.createElement("ol");
  log.className = "lines";
  region.append(log);
  named(log, channel);
  $("logs").append(region);
  return log;
}

// (Again after a /switch took the room elsewhere.)
export function named(log, channel) {
  log.dataset.channel = channel;
  log.parentElement.setAttribute("aria-label", `Chat in ${channel}`);
  log.setAttribute("aria-label", `Lines in ${channel}`);
}

// Kept at the bottom if it was there (a hidden log is: it has no height).
function append(room, item) {
  const lines = room.log;
  const atBottom = lines.parentElement.hidden || lines.scrollHeight - lines.scrollTop - lines.clientHeight < 40;
  lines.append(item);
  if (atBottom) lines.scrollTop = lines.scrollHeight;
  return item;
}

function row(kind, stamp, when) {
  const item = document.createElement("li");
  item.className = kind;
  item.dataset.kind = kind;
  item.append(timeNode(stamp, when));
  return item;
}

// A server event (joins, leaves, mutes…): one compact muted row.
// ``event``: what it is (joined, left, muted…), so that the comings and
// goings can be hidden (view.js).
export function showServer(room, stamp, text, when = null, event = "") {
  const item = row("server", stamp, when);
  if (event) item.dataset.event = event;
  item.append(span("who", "•"), span("text", text));
  return append(room, item);
}

// A chat line; under the line before it from the same sender (soon after)
// the name is kept for screen readers and copying, but not shown.
export function showChat(room, event, when = null) {
  const { sender, message } = event;
  const named = sender !== state.me && mentions(message);
  if (!when && sender !== state.me) arrived(room, named ? `${sender} in ${room.channel}` : "", message);
  const item = row("msg", event.stamp, when);
  item.dataset.sender = sender;
  const last = room.log.lastElementChild;
  const prior = last && last.dataset.kind === "msg" && last.dataset.sender === sender
    && !last.classList.contains("action") && !event.action
    && last.classList.contains("history") === Boolean(when);
  const gap = prior ? (seconds(event.stamp) - seconds(last.querySelector("time").textContent) + 86400) % 86400 : 0;
  if (prior && gap <= GROUP_SECONDS) item.classList.add("cont");
  if (sender === state.me) item.classList.add("own");
  else if (named) item.classList.add("mention");
  const who = span(`who ${colourOf(sender)}`, event.action ? "*" : sender);
  const text = span("text", "");
  if (event.action) {
    item.classList.add("action");
    text.append(span(colourOf(sender), sender), " ", ...linked(message));
  } else {
    text.append(...linked(message));
  }
  item.append(who, text);
  return append(room, item);
}

// A whisper, received (``to`` empty) or sent by this page (``to``: whom to).
export function showWhisper(room, event, to = "") {
  if (!to) arrived(room, `${event.sender} whispers`, event.message);
  const item = row("whisper", event.stamp, null);
  const sender = to ? state.me : event.sender;
  item.dataset.sender = sender;
  if (to) item.dataset.to = to;
  const who = span("who", "");
  who.append(span(colourOf(sender), to ? "you" : sender), " → ", span(to ? colourOf(to) : "", to || "you"));
  const text = span("text", "");
  text.append(span("tag", "whisper"), " ");
  if (event.action) text.append(span(colourOf(sender), sender), " ");
  text.append(...linked(event.message));
  if (event.action) item.classList.add("action");
  item.append(who, text);
  return append(room, item);
}

export function showListing(room, stamp, c) {
  const item = row("listing", stamp, null);
  item.append(span("who", "#"), span("text", `${c.name}: ${c.members}/${c.capacity} members, ${c.queued} waiting`));
  item.dataset.channel = c.name;
  return append(room, item);
}

export function showDivider(room) {
  const item = document.createElement("li");
  item.className = "divider";
  item.dataset.kind = "divider";
  item.textContent = HISTORY_DIVIDER;
  return append(room, item);
}

export function showNotice(room, text) {
  const item = document.createElement("li");
  item.className = "notice";
  item.dataset.kind = "notice";
  item.textContent = text;
  return append(room, item);
}

// How each server event reads, in the words of the terminal (docs/behaviour.md).
const SAYS = {
  welcome: (e) => `Welcome to the ${e.channel} channel, ${e.user}.`,
  cannot_connect: (e) => `Cannot connect to the ${e.channel} channel.`,
  queued: (e) => `You are in the waiting queue and there are ${e.ahead} user(s) ahead of you.`,
  joined: (e) => `${e.user} has joined the channel.`,
  left: (e) => {
    if (e.why === "afk") return `${e.user} went AFK.`;
    if (e.why === "kicked") return `${e.user} was kicked.`;
    return `${e.user} has left the channel.`;
  },
  not_here: (e) => `${e.user} is not here.`,
  not_found: (e) => `${e.thing} does not exist.`,
  cannot_switch: (e) => `Cannot switch to the ${e.channel} channel.`,
  still_muted: (e) => `You are still muted for ${e.seconds} seconds.`,
  muted: (e) => (e.user === state.me
    ? `You have been muted for ${e.seconds} seconds.`
    : `${e.user} has been muted for ${e.seconds} seconds.`),
  sent: (e) => `You sent ${e.path} to ${e.to}.`,
};

export const says = (event) => SAYS[event.event]?.(event);

// One live event as a row (null: an event newer than this page, not shown).
export function showLive(room, event) {
  switch (event.event) {
    case "chat": return showChat(room, event);
    case "whisper": return showWhisper(room, event);
    case "whispered": return showWhisper(room, event, String(event.to));
    case "listing": return event.channels.map((c) => showListing(room, event.stamp, c)).at(-1) ?? null;
    default: {
      const text = says(event);
      return text === undefined ? null : showServer(room, event.stamp, text, null, event.event);
    }
  }
}
