// Exploration widget for Yume-style keyboard camera control on UnityVideo explore nodes.
// Click the widget (it takes keyboard focus), press W/A/S/D and the arrow keys (chords such as
// W+→ count as one action) to queue one action per segment; "continue" writes the queued
// script into the node's `actions` input, flags `continue_walk` (when the node has it) after the
// first run, and queues the prompt, so each run extends the walk from its last segment.
import { app } from "../../scripts/app.js";
import { ActionQueue, ChordTracker, formatEntry } from "./explore/explore_logic.js";

const EXPLORE_NODES = new Set(["UnityVideoExplore"]);

function isExploreNode(nodeData) {
  if (EXPLORE_NODES.has(nodeData.name)) return true;
  const inputs = { ...(nodeData.input?.required || {}), ...(nodeData.input?.optional || {}) };
  return String(nodeData.category || "").startsWith("UnityVideo/explore") && "actions" in inputs;
}

function button(label, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.style.cssText = "margin:2px;padding:1px 6px;font-size:11px;";
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(); });
  return b;
}

function attachWidget(node) {
  const queue = new ActionQueue();
  const chord = new ChordTracker();
  const actionsWidget = node.widgets?.find((w) => w.name === "actions");
  if (actionsWidget?.value) {
    try { queue.pushScript(String(actionsWidget.value)); } catch { /* keep an unparsable value as typed */ }
  }

  const root = document.createElement("div");
  root.tabIndex = 0;
  root.style.cssText = "outline:1px solid #555;border-radius:4px;padding:4px;font:12px monospace;color:#ddd;" +
    "background:#222;min-height:64px;cursor:pointer;user-select:none;";
  const hint = document.createElement("div");
  const pending = document.createElement("div");
  const done = document.createElement("div");
  const error = document.createElement("div");
  error.style.color = "#f77";
  done.style.color = "#888";
  const controls = document.createElement("div");
  root.append(hint, pending, done, error, controls);

  const render = () => {
    const focused = document.activeElement === root;
    hint.textContent = focused ? "W/A/S/D move · arrows turn · chords combine" : "click here, then use W/A/S/D and the arrows";
    pending.textContent = `queued: ${queue.toScript() || "(none)"}`;
    done.textContent = queue.done.length ? `walked: ${queue.doneScript()}` : "";
    if (actionsWidget) actionsWidget.value = queue.toScript();
    node.setDirtyCanvas?.(true, true);
  };
  const fail = (err) => { error.textContent = err.message; };

  root.addEventListener("focus", render);
  root.addEventListener("blur", () => { chord.reset(); render(); });
  root.addEventListener("keydown", (e) => {
    if (e.repeat) { if (chord.down(e)) { e.preventDefault(); e.stopPropagation(); } return; }
    if (e.key === "Backspace") { queue.undo(); error.textContent = ""; render(); e.preventDefault(); e.stopPropagation(); return; }
    if (chord.down(e)) { e.preventDefault(); e.stopPropagation(); }
  });
  root.addEventListener("keyup", (e) => {
    try {
      const action = chord.up(e);
      if (action) { queue.push(action); error.textContent = `added ${formatEntry(action)}`; error.style.color = "#8c8"; }
    } catch (err) { error.style.color = "#f77"; fail(err); }
    e.preventDefault();
    e.stopPropagation();
    render();
  });

  controls.append(
    button("undo", () => { queue.undo(); render(); }),
    button("clear", () => { queue.clear(); render(); }),
    button("new walk", () => { queue.reset(); render(); }),
    button("continue ▶", async () => {
      try {
        const first = queue.done.length === 0;
        const script = queue.commit();
        if (actionsWidget) actionsWidget.value = script;
        const cont = node.widgets?.find((w) => w.name === "continue_walk");
        if (cont) cont.value = !first;
        error.textContent = "";
        render();
        if (actionsWidget) actionsWidget.value = script; // render() showed the (now empty) queue
        await app.queuePrompt(0, 1);
      } catch (err) { error.style.color = "#f77"; fail(err); }
    }),
  );

  const widget = node.addDOMWidget?.("explore_keys", "explore", root, { serialize: false, hideOnZoom: false });
  if (widget) widget.computeSize = (width) => [width, 110];
  render();
  return { queue, root };
}

app.registerExtension({
  name: "unityvideo.explore",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!isExploreNode(nodeData)) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const r = onNodeCreated?.apply(this, args);
      this.exploreWidget = attachWidget(this);
      return r;
    };
  },
});
