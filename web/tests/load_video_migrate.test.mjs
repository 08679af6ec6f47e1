import assert from "node:assert/strict";
import { test } from "node:test";
import {
  NEW_NAMES, isOldLoadVideoLayout, migrateLoadVideoNode, migrateLoadVideoWidgets,
} from "../load_video_migrate.js";

test("old uniform layout becomes the whole clip at the source size", () => {
  const r = migrateLoadVideoWidgets(["clip.mp4", 17, 64, 64, "uniform", 1]);
  assert.deepEqual(r.values, ["clip.mp4", 0, 0, 1, 0, 0]);
  assert.equal(r.values.length, NEW_NAMES.length);
  assert.match(r.changes, /num_frames=17/);
  assert.match(r.changes, /sampling="uniform"/);
  assert.match(r.changes, /select_every_nth=1, frame_load_cap=0, max_side=0/);
  assert.match(r.changes, /whole clip/);
});

test("old stride layout keeps the same source frames: every stride-th, capped at num_frames", () => {
  const r = migrateLoadVideoWidgets(["walk.webm", 33, 128, 96, "stride", 3]);
  assert.deepEqual(r.values, ["walk.webm", 0, 0, 3, 33, 0]);
  assert.match(r.changes, /every 3-th frame from the start, at most 33/);
  assert.match(r.changes, /128x96 no longer applies/);
});

test("values after the sixth are kept", () => {
  const r = migrateLoadVideoWidgets(["a.mp4", 17, 64, 64, "stride", 2, null]);
  assert.deepEqual(r.values, ["a.mp4", 0, 0, 2, 17, 0, null]);
});

test("the new layout and other shapes are left alone", () => {
  assert.equal(migrateLoadVideoWidgets(["clip.mp4", 0, 0, 1, 0, 0]), null);
  assert.equal(migrateLoadVideoWidgets(["clip.mp4", 17, 64, 64, 5, 1]), null);
  assert.equal(migrateLoadVideoWidgets(["clip.mp4", 17, 64, 64, "random", 1]), null);
  assert.equal(migrateLoadVideoWidgets(["clip.mp4", 17, 64, "uniform"]), null);
  assert.equal(migrateLoadVideoWidgets(undefined), null);
  assert.equal(isOldLoadVideoLayout(["clip.mp4", "17", 64, 64, "uniform", 1]), false);
  assert.equal(isOldLoadVideoLayout(["clip.mp4", 17, 64, 64, "uniform", 1]), true);
});

test("a saved Load Video node is rewritten in place, with a warning naming it", () => {
  const node = { id: 7, type: "UnityVideoLoadVideo", widgets_values: ["clip.mp4", 17, 64, 64, "uniform", 1] };
  const warning = migrateLoadVideoNode(node);
  assert.deepEqual(node.widgets_values, ["clip.mp4", 0, 0, 1, 0, 0]);
  assert.match(warning, /#7, UnityVideoLoadVideo/);
  assert.match(warning, /re-save/);
  assert.equal(migrateLoadVideoNode(node), null); // already migrated: nothing more to do
  assert.deepEqual(node.widgets_values, ["clip.mp4", 0, 0, 1, 0, 0]);
});

test("other nodes with a look-alike layout are untouched", () => {
  const values = ["clip.mp4", 17, 64, 64, "uniform", 1];
  const node = { id: 3, type: "VHS_LoadVideo", widgets_values: [...values] };
  assert.equal(migrateLoadVideoNode(node), null);
  assert.deepEqual(node.widgets_values, values);
  assert.equal(migrateLoadVideoNode(null), null);
});

test("the Load Video node of workflows/estimate_depth.json as saved before the change", () => {
  // verbatim from `git show dce0c92^:workflows/estimate_depth.json`
  const node = JSON.parse('{"id": 2, "type": "UnityVideoLoadVideo", "pos": [400, 60], "size": [320, 200], "flags": {}, ' +
    '"order": 1, "mode": 0, "inputs": [], "outputs": [{"name": "frames", "type": "IMAGE", "links": [2], "slot_index": 0}, ' +
    '{"name": "fps", "type": "FLOAT", "links": [], "slot_index": 1}], "properties": {"Node name for S&R": ' +
    '"UnityVideoLoadVideo"}, "widgets_values": ["carphone_pristine.mp4", 17, 64, 64, "uniform", 1]}');
  const warning = migrateLoadVideoNode(node);
  assert.deepEqual(node.widgets_values, ["carphone_pristine.mp4", 0, 0, 1, 0, 0]); // what today's templates hold
  assert.match(warning, /^UnityVideo: UnityVideo Load Video \(#2, UnityVideoLoadVideo\) was saved with the old inputs/);
  assert.deepEqual(node.outputs.map((o) => o.name), ["frames", "fps"]); // the rest of the node untouched
});
