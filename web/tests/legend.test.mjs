import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { cssColour, legendKey, legendLayout } from "../legend_logic.js";

const legends = JSON.parse(readFileSync(new URL("../legends.json", import.meta.url)));

test("aliases map to the release's names", () => {
  assert.equal(legendKey("flow"), "raft");
  assert.equal(legendKey(" Depth "), "depth");
});

test("depth is a gradient from warm (near) to cool (far)", () => {
  const layout = legendLayout(legends.depth, 200);
  assert.equal(layout.kind, "gradient");
  assert.equal(layout.stops[0].offset, 0);
  assert.equal(layout.stops.at(-1).offset, 1);
  const [r0, , b0] = legends.depth.stops[0][1];
  const [r1, , b1] = legends.depth.stops.at(-1)[1];
  assert.ok(r0 > b0 && b1 > r1);
});

test("skeleton legend has one swatch per keypoint, filling the width", () => {
  const layout = legendLayout(legends.skeleton, 180);
  assert.equal(layout.kind, "swatches");
  assert.equal(layout.items.length, 18);
  assert.equal(layout.items.at(-1).x + layout.items.at(-1).width, 180);
});

test("colours are clamped and missing legends give null", () => {
  assert.equal(cssColour([300, -5, 12.4]), "rgb(255, 0, 12)");
  assert.equal(legendLayout(undefined, 100), null);
});
