// Exploration widget for Yume-style keyboard camera control on UnityVideo explore nodes.
// Click the widget (it takes keyboard focus), press W/A/S/D and the arrow keys (chords such as
// W+→ count as one action) to queue one action per segment; "continue" writes the queued
// script into the node's `actions` input, flags `continue_walk` (when the node has it) after the
// first run, and queues the prompt, so each run extends the walk from its last segment.
// Live walk: each segment's frames arrive while the walk renders (`unityvideo.explore.segment`
// messages) and show under the keys, in order; keys pressed meanwhile wait for the next continue,
// and a continue pressed meanwhile fires when the render ends.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { ActionQueue, ChordTracker, LiveWalk, formatEntry, viewUrl } from "./explore/explore_logic.js";

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
  const live = new LiveWalk();
  const actionsWidget = node.widgets?.find((w) => w.name === "actions");
  // The text input is the source of truth: the widget writes it only when its queue changes, and
  // adopts it when it changed elsewhere (typed by hand, or restored from a saved workflow).
  let written = null;
  const write = () => { if (actionsWidget) { written = queue.toScript(); actionsWidget.value = written; } };

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
  const status = document.createElement("div");
  status.style.color = "#8bd";
  const strip = document.createElement("div");
  strip.style.cssText = "display:flex;flex-wrap:nowrap;overflow-x:auto;gap:2px;margin-top:4px;min-height:52px;";
  root.append(hint, pending, done, error, controls, status, strip);

  const render = () => {
    const focused = document.activeElement === root;
    hint.textContent = focused ? "W/A/S/D move · arrows turn · chords combine" : "click here, then use W/A/S/D and the arrows";
    pending.textContent = `queued: ${queue.toScript() || "(none)"}`;
    done.textContent = queue.done.length ? `walked: ${queue.doneScript()}` : "";
    status.textContent = live.status();
    node.setDirtyCanvas?.(true, true);
  };
  const fail = (err) => { error.style.color = "#f77"; error.textContent = err.message; };
  const adopt = () => {
    const text = String(actionsWidget?.value ?? "");
    if (!actionsWidget || text === written) return;
    written = text;
    try { queue.setScript(text); error.textContent = ""; } catch (err) { fail(err); }
  };

  root.addEventListener("focus", () => { adopt(); render(); });
  root.addEventListener("blur", () => { chord.reset(); render(); });
  root.addEventListener("keydown", (e) => {
    if (e.repeat) { if (chord.down(e)) { e.preventDefault(); e.stopPropagation(); } return; }
    if (e.key === "Backspace") { queue.undo(); write(); error.textContent = ""; render(); e.preventDefault(); e.stopPropagation(); return; }
    if (chord.down(e)) { e.preventDefault(); e.stopPropagation(); }
  });
  root.addEventListener("keyup", (e) => {
    try {
      const action = chord.up(e);
      if (action) { queue.push(action); write(); error.textContent = `added ${formatEntry(action)}`; error.style.color = "#8c8"; }
    } catch (err) { fail(err); }
    e.preventDefault();
    e.stopPropagation();
    render();
  });

  controls.append(
    button("undo", () => { queue.undo(); write(); render(); }),
    button("clear", () => { queue.clear(); write(); render(); }),
    button("new walk", () => { queue.reset(); live.reset(); strip.replaceChildren(); write(); render(); }),
    button("continue ▶", () => go()),
  );

  const go = async () => {
    try {
      adopt();
      if (live.running) { // keys go on queueing; this continue fires when the render ends
        live.continueAfter = true;
        error.style.color = "#8c8";
        error.textContent = "continue after this render";
        render();
        return;
      }
      const first = queue.done.length === 0;
      const segments = queue.length;
      const script = queue.commit();
      // The run's script stays in the text input (so ComfyUI's own Queue button repeats it)
      // while the queue starts empty for the next segment's keys.
      if (actionsWidget) { actionsWidget.value = script; written = script; }
      const cont = node.widgets?.find((w) => w.name === "continue_walk");
      if (cont) cont.value = !first;
      error.textContent = "";
      live.start(segments);
      render();
      await app.queuePrompt(0, 1);
    } catch (err) { live.finish(); fail(err); render(); }
  };
  const onSegment = (message) => {
    live.add(message);
    for (const image of message.images || []) {
      const img = document.createElement("img");
      img.src = api.apiURL(viewUrl(image)) + `&rand=${Math.random()}`;
      img.title = `segment ${live.segments.length}`;
      img.style.cssText = "height:48px;flex:none;border:1px solid #444;";
      strip.append(img);
      img.scrollIntoView?.({ block: "nearest", inline: "end" });
    }
    render();
  };
  const onEnd = () => {
    const fire = live.finish();
    render();
    if (fire && queue.length) go();
  };

  const widget = node.addDOMWidget?.("explore_keys", "explore", root, { serialize: false, hideOnZoom: false });
  if (widget) widget.computeSize = (width) => [width, 176]; // keys, buttons, status and the segment strip
  adopt();
  render();
  return { queue, live, root, adopt, render, onSegment, onEnd };
}

const widgetOf = (id) => app.graph?.getNodeById?.(Number(id))?.exploreWidget;
api.addEventListener("unityvideo.explore.segment", (e) => widgetOf(e.detail?.node)?.onSegment(e.detail));
for (const event of ["execution_success", "execution_error", "execution_interrupted"]) {
  api.addEventListener(event, () => app.graph?._nodes?.forEach((n) => n.exploreWidget?.live.running && n.exploreWidget.onEnd()));
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
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) { // a loaded workflow restored the text input
      const r = onConfigure?.apply(this, args);
      this.exploreWidget?.adopt();
      this.exploreWidget?.render();
      return r;
    };
  },
});
