// Keyboard exploration logic for the Yume camera-control widget: keys -> actions, the action
// script (same grammar as unity_core/explore/qcm.py) and the action queue. No ComfyUI imports,
// so `node --test web/tests/` runs it.
//
// Script grammar (one entry per segment, separated by whitespace):
//   entry := body ["*" COUNT] ; body := NONE | move | rot | move [SEP] rot | NONE [SEP] rot | move [SEP] NONE
//   move  := MKEY | MKEY "+" MKEY (one of W/S with one of A/D) ; rot := RKEY | RKEY RKEY (one of ↑/↓ with one of ←/→)
//   SEP   := "+" | "," ; NONE := "·" | "." ; MKEY := W A S D (any case) ; RKEY := ← → ↑ ↓ (or < > ^ v)
// Canonical spelling: "·", "W+A", "←", "W+A↑→".

export const NONE = "·";
export const MOVE_KEYS = ["W", "A", "S", "D"];
export const ROT_KEYS = ["←", "→", "↑", "↓"];
// Same help as unity_core/explore/qcm.py's _HELP, so both parsers explain a bad key alike.
const HELP = "use W/A/S/D (pairs like W+A), the arrows ← → ↑ ↓ (or < > ^ v), '·' for none, e.g. 'W+A→'";
const OPPOSITE = [["W", "S"], ["A", "D"], ["←", "→"], ["↑", "↓"]];
const ASCII = { "<": "←", ">": "→", "^": "↑", v: "↓", V: "↓", ".": NONE };
const KEY_NAMES = {
  arrowleft: "←", arrowright: "→", arrowup: "↑", arrowdown: "↓", left: "←", right: "→", up: "↑", down: "↓",
  w: "W", a: "A", s: "S", d: "D", keyw: "W", keya: "A", keys: "S", keyd: "D",
};

/** A browser key name or KeyboardEvent (its .key, else .code) -> "W"/"A"/"S"/"D"/arrow, or null. */
export function keySymbol(keyOrEvent) {
  if (keyOrEvent && typeof keyOrEvent === "object") {
    return keySymbol(keyOrEvent.key) ?? keySymbol(keyOrEvent.code);
  }
  if (typeof keyOrEvent !== "string" || keyOrEvent === "") return null;
  const named = KEY_NAMES[keyOrEvent.toLowerCase()];
  if (named) return named;
  if (ASCII[keyOrEvent] && ASCII[keyOrEvent] !== NONE) return ASCII[keyOrEvent];
  if (MOVE_KEYS.includes(keyOrEvent) || ROT_KEYS.includes(keyOrEvent)) return keyOrEvent;
  return null;
}

function checkOpposites(keys) {
  for (const [a, b] of OPPOSITE) {
    if (keys.includes(a) && keys.includes(b)) {
      throw new Error(`opposite keys ${a} and ${b} cannot be combined; keep one of them`);
    }
  }
}

function movementKey(keys) {
  const fwd = ["W", "S"].filter((k) => keys.includes(k));
  const side = ["A", "D"].filter((k) => keys.includes(k));
  return [...fwd, ...side].join("+") || NONE;
}

function rotationKey(keys) {
  return [...["↑", "↓"].filter((k) => keys.includes(k)), ...["→", "←"].filter((k) => keys.includes(k))].join("") || NONE;
}

/** Keys held together -> {movement, rotation}. Throws on unknown or opposite keys. */
export function actionFromKeys(keys) {
  const held = [];
  for (const key of keys) {
    const sym = keySymbol(key);
    if (!sym) throw new Error(`unknown key ${JSON.stringify(key)}; use W/A/S/D and the arrow keys`);
    if (!held.includes(sym)) held.push(sym);
  }
  checkOpposites(held);
  return { movement: movementKey(held.filter((k) => MOVE_KEYS.includes(k))), rotation: rotationKey(held.filter((k) => ROT_KEYS.includes(k))) };
}

function parseBody(text) {
  const chars = [...text].map((c) => ASCII[c] ?? ("wasd".includes(c) ? c.toUpperCase() : c));
  const n = chars.length;
  if (n === 0) throw new Error("empty entry");
  let i = 0;
  const moves = [];
  let moveGiven = false;
  if (chars[0] === NONE) { moveGiven = true; i = 1; }
  else if (MOVE_KEYS.includes(chars[0])) {
    moves.push(chars[0]); moveGiven = true; i = 1;
    if (i + 1 < n && chars[i] === "+" && MOVE_KEYS.includes(chars[i + 1])) { moves.push(chars[i + 1]); i += 2; }
  }
  if (moveGiven && i < n && (chars[i] === "+" || chars[i] === ",")) {
    i += 1;
    if (i === n) throw new Error("a separator must be followed by a rotation");
  }
  const rots = [];
  if (moveGiven && i < n && chars[i] === NONE) i += 1;
  else while (i < n && ROT_KEYS.includes(chars[i]) && rots.length < 2) { rots.push(chars[i]); i += 1; }
  if (i !== n) {
    const bad = chars[i];
    if (MOVE_KEYS.includes(bad)) throw new Error(`movement key ${bad} out of place: write pairs as 'W+A', movement before rotation`);
    if (ROT_KEYS.includes(bad)) throw new Error("at most two rotation keys (one of ↑/↓ with one of ←/→)");
    throw new Error(`unknown key '${[...text][i]}'; ${HELP}`);
  }
  if (new Set(moves).size !== moves.length || new Set(rots).size !== rots.length) throw new Error("a key is repeated inside one entry");
  checkOpposites([...moves, ...rots]);
  return { movement: movementKey(moves), rotation: rotationKey(rots) };
}

/** One entry without repeat count -> action; throws "bad action '<entry>': <reason>". */
export function parseEntry(entry) {
  try { return parseBody(String(entry).trim()); }
  catch (err) { throw new Error(`bad action '${entry}': ${err.message}`); }
}

/** Script -> list of actions; throws "entry N: ..." for the first bad entry, or on an empty script. */
export function parseScript(script) {
  const entries = String(script ?? "").split(/\s+/).filter(Boolean);
  if (entries.length === 0) throw new Error("the action script is empty; write e.g. 'W W W+A ←'");
  const out = [];
  entries.forEach((e, idx) => {
    let body = e;
    let count = 1;
    const star = e.lastIndexOf("*");
    if (star >= 0) {
      body = e.slice(0, star);
      const times = e.slice(star + 1);
      if (!/^\d+$/.test(times) || Number(times) < 1) throw new Error(`entry ${idx + 1}: bad action '${e}': the repeat count after '*' must be a whole number >= 1`);
      count = Number(times);
    }
    let action;
    try { action = parseEntry(body); } catch (err) { throw new Error(`entry ${idx + 1}: ${err.message}`); }
    for (let k = 0; k < count; k += 1) out.push({ ...action });
  });
  return out;
}

/** Canonical spelling of one action. */
export function formatEntry(action) {
  const m = action.movement ?? NONE;
  const r = action.rotation ?? NONE;
  if (m === NONE && r === NONE) return NONE;
  return (m === NONE ? "" : m) + (r === NONE ? "" : r);
}

/** Inverse of parseScript. */
export function formatScript(actions) {
  return actions.map(formatEntry).join(" ");
}

/**
 * Chords: keys pressed together make one action. `down(key)` returns true when the key is one of
 * ours (so the widget can preventDefault); `up(key)` returns the chord's action once every key of
 * the chord is released (else null). Opposite keys in one chord throw on release.
 */
export class ChordTracker {
  constructor() { this.held = new Set(); this.chord = new Set(); }
  down(key) {
    const sym = keySymbol(key);
    if (!sym) return false;
    this.held.add(sym);
    this.chord.add(sym);
    return true;
  }
  up(key) {
    const sym = keySymbol(key);
    if (!sym) return null;
    this.held.delete(sym);
    if (this.held.size > 0 || this.chord.size === 0) return null;
    const chord = [...this.chord];
    this.chord.clear();
    return actionFromKeys(chord);
  }
  reset() { this.held.clear(); this.chord.clear(); }
}

/**
 * The queue behind the widget: `pending` actions not generated yet and `done` ones already walked.
 * `commit()` hands over the pending script for the next run ("continue") and moves it to done.
 */
export class ActionQueue {
  constructor(script = "") {
    this.pending = script && script.trim() ? parseScript(script) : [];
    this.done = [];
  }
  get length() { return this.pending.length; }
  push(action) {
    // validate through the grammar so a bad object cannot enter the queue
    const checked = parseEntry(formatEntry(action));
    this.pending.push(checked);
    return checked;
  }
  pushKeys(keys) { return this.push(actionFromKeys(keys)); }
  pushScript(script) { const acts = parseScript(script); acts.forEach((a) => this.pending.push(a)); return acts; }
  /** Replace the pending actions by a script written elsewhere (the node's text input); a bad script throws and leaves the queue as it was. */
  setScript(script) { this.pending = String(script ?? "").trim() ? parseScript(script) : []; return this.pending; }
  undo() { return this.pending.pop() ?? null; }
  clear() { this.pending = []; }
  reset() { this.pending = []; this.done = []; }
  toScript() { return formatScript(this.pending); }
  doneScript() { return formatScript(this.done); }
  commit() {
    if (this.pending.length === 0) throw new Error("no actions queued: press W/A/S/D or the arrows first");
    const script = this.toScript();
    this.done.push(...this.pending);
    this.pending = [];
    return script;
  }
}

/**
 * A walk as the widget shows it while it renders: the segments' frames as they land
 * (`unityvideo.explore.segment` messages from the node: {node, segment, segments, images}), and
 * whether a run is going. Keys pressed during a run go to the queue's pending actions, which the
 * next continue walks; a continue pressed during a run is remembered and fires when the run ends.
 */
export class LiveWalk {
  constructor() { this.segments = []; this.running = false; this.runTotal = 0; this.runDone = 0; this.continueAfter = false; }
  /** A run starts (the prompt is queued) with `total` segments. */
  start(total) { this.running = true; this.runTotal = total; this.runDone = 0; this.continueAfter = false; }
  /** A segment landed: its images (ComfyUI /view descriptors) are appended in order; returns the walk's segment count. */
  add(message) {
    const images = Array.isArray(message?.images) ? message.images : [];
    this.segments.push({ index: this.segments.length, run: Number(message?.segment ?? this.runDone), images });
    this.runDone += 1;
    if (Number.isFinite(message?.segments)) this.runTotal = Number(message.segments);
    return this.segments.length;
  }
  /** The run ended (executed, error or interrupt); true when a continue pressed meanwhile should fire now. */
  finish() {
    const fire = this.running && this.continueAfter;
    this.running = false;
    this.continueAfter = false;
    return fire;
  }
  /** A new walk starts: forget the frames shown. */
  reset() { this.segments = []; this.running = false; this.runTotal = 0; this.runDone = 0; this.continueAfter = false; }
  status() {
    if (this.running) return `rendering segment ${Math.min(this.runDone + 1, this.runTotal || 1)}/${this.runTotal || "?"} · keys queue for the next continue`;
    return this.segments.length ? `${this.segments.length} segment(s) on screen` : "";
  }
}

/** The URL of an image ComfyUI serves from its output / temp folders (`/view`). */
export function viewUrl(image, base = "") {
  const q = new URLSearchParams({ filename: image.filename, type: image.type || "temp", subfolder: image.subfolder || "" });
  return `${base}/view?${q.toString()}`;
}
