import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ActionQueue, ChordTracker, LiveWalk, actionFromKeys, formatScript, keySymbol, parseEntry, parseScript, viewUrl,
} from "../explore/explore_logic.js";

test("browser keys map to Yume's keys", () => {
  assert.equal(keySymbol("w"), "W");
  assert.equal(keySymbol({ key: "ArrowLeft", code: "ArrowLeft" }), "←");
  assert.equal(keySymbol({ key: "ц", code: "KeyW" }), "W"); // non-Latin layout falls back to the code
  assert.equal(keySymbol("q"), null);
  assert.deepEqual(actionFromKeys(["w", "a"]), { movement: "W+A", rotation: "·" });
  assert.deepEqual(actionFromKeys(["ArrowUp", "ArrowRight", "s", "d"]), { movement: "S+D", rotation: "↑→" });
  assert.deepEqual(actionFromKeys([]), { movement: "·", rotation: "·" });
});

test("opposite keys are rejected", () => {
  assert.throws(() => actionFromKeys(["w", "s"]), /opposite keys W and S/);
  assert.throws(() => actionFromKeys(["a", "d"]), /opposite keys A and D/);
  assert.throws(() => actionFromKeys(["ArrowLeft", "ArrowRight"]), /opposite keys ← and →/);
  assert.throws(() => actionFromKeys(["ArrowUp", "ArrowDown"]), /opposite keys ↑ and ↓/);
  assert.throws(() => parseScript("W W+S"), /entry 2: bad action 'W\+S': opposite keys/);
});

test("script grammar: entries, separators, ASCII arrows, repeats, canonical round trip", () => {
  const acts = parseScript("W W+A ← · W→ S+D↓← W,→ a+w < W*3 ·→ →↑");
  assert.equal(acts.length, 14);
  assert.deepEqual(acts[2], { movement: "·", rotation: "←" });
  assert.deepEqual(acts[5], { movement: "S+D", rotation: "↓←" });
  assert.deepEqual(acts[7], { movement: "W+A", rotation: "·" });
  assert.deepEqual(acts[13], { movement: "·", rotation: "↑→" });
  const canon = formatScript(acts);
  assert.equal(canon, "W W+A ← · W→ S+D↓← W→ W+A ← W W W → ↑→");
  assert.deepEqual(parseScript(canon), acts);
  assert.throws(() => parseScript("W X"), /entry 2: bad action 'X': unknown key 'X'/);
  assert.throws(() => parseScript("WA"), /out of place/);
  assert.throws(() => parseScript("W*0"), /repeat count/);
  assert.throws(() => parseScript("   "), /empty/);
  assert.throws(() => parseEntry("↑↑"), /repeated/);
});

test("chords: keys pressed together give one action on release", () => {
  const c = new ChordTracker();
  assert.equal(c.down("w"), true);
  assert.equal(c.down("ArrowRight"), true);
  assert.equal(c.up("w"), null); // → still held
  assert.deepEqual(c.up("ArrowRight"), { movement: "W", rotation: "→" });
  assert.equal(c.down("F5"), false);
  c.down("a"); c.down("d");
  c.up("a");
  assert.throws(() => c.up("d"), /opposite keys/);
  c.down("s");
  assert.deepEqual(c.up("s"), { movement: "S", rotation: "·" }); // state recovered after the error
});

test("queue: push, undo, commit moves pending to done for the next segment", () => {
  const q = new ActionQueue("W W");
  q.pushKeys(["w", "a"]);
  q.push({ movement: "·", rotation: "←" });
  assert.equal(q.toScript(), "W W W+A ←");
  assert.deepEqual(q.undo(), { movement: "·", rotation: "←" });
  assert.equal(q.length, 3);
  assert.equal(q.commit(), "W W W+A");
  assert.equal(q.length, 0);
  assert.equal(q.doneScript(), "W W W+A");
  assert.throws(() => q.commit(), /no actions queued/);
  assert.throws(() => q.push({ movement: "W+S", rotation: "·" }), /opposite|out of place/);
  q.pushScript("→*2");
  assert.equal(q.commit(), "→ →");
  assert.equal(q.doneScript(), "W W W+A → →");
});

test("queue: a script typed in the text input replaces the pending actions, and a bad one changes nothing", () => {
  const q = new ActionQueue("W W");
  q.commit();
  q.push({ movement: "A", rotation: "·" });
  assert.equal(q.setScript("S S→").length, 2);
  assert.equal(q.toScript(), "S S→");
  assert.equal(q.doneScript(), "W W");
  assert.throws(() => q.setScript("S Q"), /entry 2: bad action 'Q': unknown key 'Q'; use W\/A\/S\/D/);
  assert.equal(q.toScript(), "S S→");
  q.setScript("  ");
  assert.equal(q.length, 0);
});

test("live walk: segments show in order as they land; keys pressed during a render wait for the next continue", () => {
  const q = new ActionQueue("W D");
  const live = new LiveWalk();
  live.start(q.length);
  assert.equal(q.commit(), "W D"); // the run takes the queued keys
  assert.match(live.status(), /rendering segment 1\/2/);
  q.pushKeys(["a"]); // pressed while segment 1 renders
  assert.equal(live.add({ node: "5", segment: 0, segments: 2, images: [{ filename: "w0.webp", subfolder: "unityvideo", type: "temp" }] }), 1);
  assert.match(live.status(), /rendering segment 2\/2/);
  q.pushKeys(["arrowleft"]);
  live.continueAfter = true; // continue pressed during the render
  live.add({ node: "5", segment: 1, segments: 2, images: [{ filename: "w1.webp", subfolder: "unityvideo", type: "temp" }] });
  assert.deepEqual(live.segments.map((s) => s.images[0].filename), ["w0.webp", "w1.webp"]);
  assert.equal(live.finish(), true); // the remembered continue fires now ...
  assert.equal(q.commit(), "A ←"); // ... with the keys pressed during the render
  assert.equal(q.doneScript(), "W D A ←");
  assert.equal(live.finish(), false);
  assert.equal(viewUrl(live.segments[1].images[0], "/api"), "/api/view?filename=w1.webp&type=temp&subfolder=unityvideo");
  live.reset();
  assert.equal(live.segments.length, 0);
});
