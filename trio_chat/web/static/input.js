// The message field's keys: Up and Down walk the lines sent, Tab completes
// as the terminal client does (client/completion.py), Shift+Enter is refused.
// It sees the page's state only through the `sources` it is given, so the
// connection may keep its members and channels however it likes.

export const COMMANDS = ["/whisper", "/send", "/switch", "/list", "/quit"];
const KEPT_LINES = 100;
const ONE_LINE = "One line per message: press Enter to send.";

// ----- history -----

const sent = [];
let place = 0; // sent.length while not walking the history
let draft = "";
let shown = null; // the hint element, once set up
// One Tab's matches, walked by the next Tabs until the field changes otherwise.
let walk = null; // {head, tail, matches, index, value, caret}

// A line sent: the send handler calls this. The walk starts again from the
// newest line with an empty draft, and the hint of the line sent goes.
export function remember(line) {
  place = sent.length;
  draft = "";
  walk = null;
  if (shown) clearHint(shown);
  if (line.trim() === "" || line === sent[sent.length - 1]) return;
  sent.push(line);
  if (sent.length > KEPT_LINES) sent.shift();
  place = sent.length;
}

function recall(field, step) {
  const to = place + step;
  if (to < 0 || to > sent.length || place === to) return false;
  if (place === sent.length) draft = field.value;
  place = to;
  field.value = place === sent.length ? draft : sent[place];
  field.setSelectionRange(field.value.length, field.value.length);
  return true;
}

// ----- completion -----

const sameLetter = (a, b) => a === b || a.toLowerCase() === b.toLowerCase();

function startsWithIgnoringCase(choice, word) {
  const head = Array.from(choice);
  const typed = Array.from(word);
  return typed.length <= head.length && typed.every((c, i) => sameLetter(c, head[i]));
}

// The longest start all matches share, in any case, spelt as the first one.
function commonStart(matches) {
  const [first, ...rest] = matches.map((m) => Array.from(m));
  let length = first.length;
  for (const other of rest) {
    let i = 0;
    while (i < length && i < other.length && sameLetter(first[i], other[i])) i += 1;
    length = i;
  }
  return first.slice(0, length).join("");
}

// What the word before the caret may become, by the terminal client's rules:
// the first word a command; after /switch a channel but the current one;
// after /whisper and /send a member but oneself. Beyond the terminal's
// rules, a word of a chat line (or of a whisper's text) completes a member.
function choicesFor(before, sources) {
  const words = before.split(/\s+/u).filter((w) => w !== "");
  if (words.length === 0 || /\s$/u.test(before)) words.push("");
  const word = words[words.length - 1];
  const me = sources.me();
  const others = () => [...new Set(sources.names())].filter((n) => n !== me).sort();
  let choices = [];
  const command = words[0];
  if (words.length === 1) {
    choices = word === "" || word.startsWith("/") ? COMMANDS : others();
  } else if (command === "/switch") {
    const here = sources.current();
    if (words.length === 2) choices = sources.channels().filter((c) => c !== here);
  } else if (command === "/whisper" || command === "/send") {
    if (words.length === 2 || command === "/whisper") choices = others();
  } else if (!command.startsWith("/")) {
    choices = others();
  }
  return { word, matches: choices.filter((c) => startsWithIgnoringCase(c, word)) };
}

function put(field, head, text, tail) {
  field.value = head + text + tail;
  const caret = head.length + text.length;
  field.setSelectionRange(caret, caret);
  return caret;
}

// A word completed ends with a space, so typing goes on (one already there
// after the caret is stepped over instead).
function putWord(field, head, word, tail) {
  const spaced = /^\s/u.test(tail) ? `${word}${tail[0]}` : `${word} `;
  return put(field, head, spaced, /^\s/u.test(tail) ? tail.slice(1) : tail);
}

function showMatches(hint, matches, index) {
  hint.dataset.kind = "completions";
  const items = matches.map((m, i) => {
    const item = document.createElement("span");
    item.textContent = m;
    if (i === index) item.className = "chosen";
    return item;
  });
  hint.replaceChildren(...items.flatMap((item, i) => (i ? [" ", item] : [item])));
}

function choose(hint, index) {
  hint.querySelectorAll("span").forEach((item, i) => {
    item.classList.toggle("chosen", i === index);
  });
}

function endWalk(hint) {
  walk = null;
  if (hint.dataset.kind === "completions") clearHint(hint);
}

function clearHint(hint) {
  delete hint.dataset.kind;
  hint.replaceChildren();
}

// Tab (Shift+Tab with `backward`): false if there was nothing to complete.
function complete(field, hint, sources, backward) {
  const caret = field.selectionStart ?? field.value.length;
  if (walk && walk.value === field.value && walk.caret === caret) {
    const n = walk.matches.length;
    // From what they share (index -1), back goes to the last one.
    walk.index = backward ? (Math.max(walk.index, 0) - 1 + n) % n : (walk.index + 1) % n;
    walk.caret = putWord(field, walk.head, walk.matches[walk.index], walk.tail);
    walk.value = field.value;
    choose(hint, walk.index);
    return true;
  }
  endWalk(hint);
  const before = field.value.slice(0, caret);
  const { word, matches } = choicesFor(before, sources);
  if (matches.length === 0) return false;
  const head = before.slice(0, before.length - word.length);
  const tail = field.value.slice(caret);
  if (matches.length === 1) {
    putWord(field, head, matches[0], tail);
    return true;
  }
  const index = backward ? matches.length - 1 : -1;
  let at;
  if (backward) {
    at = putWord(field, head, matches[index], tail);
  } else {
    const common = commonStart(matches);
    at = put(field, head, Array.from(common).length > Array.from(word).length ? common : word, tail);
  }
  walk = { head, tail, matches, index, value: field.value, caret: at };
  showMatches(hint, matches, index);
  return true;
}

// ----- the keys -----

export function setUpInput(field, hint, sources) {
  shown = hint;
  field.addEventListener("keydown", (event) => {
    if (event.isComposing || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Tab") {
      // An empty field lets Tab leave it, so the keyboard alone gets out.
      if (field.value === "") return;
      event.preventDefault();
      complete(field, hint, sources, event.shiftKey);
      return;
    }
    if (event.key === "Shift") return;
    if (event.key === "Enter" && event.shiftKey) {
      event.preventDefault();
      walk = null;
      hint.dataset.kind = "one-line";
      hint.textContent = ONE_LINE;
      return;
    }
    const completing = walk !== null;
    endWalk(hint);
    if (completing || event.shiftKey) return;
    if (event.key === "ArrowUp" && recall(field, -1)) event.preventDefault();
    else if (event.key === "ArrowDown" && recall(field, 1)) event.preventDefault();
  });
  field.addEventListener("input", () => {
    walk = null;
    place = sent.length; // an edited line is the draft now
    clearHint(hint);
  });
  field.addEventListener("blur", () => endWalk(hint));
  field.addEventListener("pointerdown", () => endWalk(hint));
}
