// UnityVideo frontend extension: colour legends under modality nodes and a summary of decoded
// values on the save node; saved Load Video nodes with the old inputs moved to the new ones.
import { app } from "../../scripts/app.js";
import { legendKey, legendLayout } from "./legend_logic.js";
import { LOAD_VIDEO_TYPE, migrateLoadVideoNode } from "./load_video_migrate.js";

const LEGEND_NODES = new Set([
  "UnityVideoTask", "UnityVideoEstimate", "UnityVideoModalityDecode", "UnityVideoPreprocess",
]);
const LEGEND_HEIGHT = 46;
let legends = null;
fetch(new URL("./legends.json", import.meta.url)).then((r) => r.json()).then((d) => { legends = d; app.graph?.setDirtyCanvas(true); });

function drawLegend(node, ctx) {
  const widget = node.widgets?.find((w) => w.name === "modality");
  const legend = legends?.[legendKey(widget?.value)];
  const width = node.size[0] - 20;
  const layout = legendLayout(legend, width);
  if (!layout) return;
  const y = node.size[1] - LEGEND_HEIGHT + 4;
  ctx.save();
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#bbb";
  const fit = (text) => { // cut to the node's width with an ellipsis
    if (ctx.measureText(text).width <= width) return text;
    while (text.length > 1 && ctx.measureText(`${text}…`).width > width) text = text.slice(0, -1);
    return `${text}…`;
  };
  ctx.fillText(fit([layout.title, layout.units].filter(Boolean).join(": ")), 10, y + 10);
  if (layout.kind === "gradient") {
    const g = ctx.createLinearGradient(10, 0, 10 + width, 0);
    layout.stops.forEach((s) => g.addColorStop(s.offset, s.colour));
    ctx.fillStyle = g;
    ctx.fillRect(10, y + 16, width, 14);
  } else {
    layout.items.forEach((it) => {
      ctx.fillStyle = it.colour;
      ctx.fillRect(10 + it.x, y + 16, it.width - 1, 14);
      if (ctx.measureText(it.label).width <= it.width - 2) { // a label that fits under its swatch
        ctx.fillStyle = "#bbb";
        ctx.fillText(it.label, 10 + it.x + 1, y + 40);
      }
    });
  }
  ctx.restore();
}

app.registerExtension({
  name: "unityvideo.legends",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (LEGEND_NODES.has(nodeData.name)) {
      const onDraw = nodeType.prototype.onDrawForeground;
      const computeSize = nodeType.prototype.computeSize;
      nodeType.prototype.computeSize = function (...args) {
        const size = computeSize ? computeSize.apply(this, args) : [240, 80];
        return [Math.max(size[0], 240), size[1] + LEGEND_HEIGHT];
      };
      nodeType.prototype.onDrawForeground = function (ctx) {
        onDraw?.apply(this, arguments);
        if (!this.flags?.collapsed) drawLegend(this, ctx);
      };
    }
    if (nodeData.name === LOAD_VIDEO_TYPE) {
      // A graph saved before Load Video's inputs changed (num_frames, width, height, sampling,
      // stride) would put its values into the new widgets by position: rewrite them first.
      const configure = nodeType.prototype.configure;
      nodeType.prototype.configure = function (info) {
        const warning = migrateLoadVideoNode(info);
        if (warning) console.warn(warning);
        return configure.apply(this, arguments);
      };
    }
    if (nodeData.name === "UnityVideoSaveValues") {
      const onExecuted = nodeType.prototype.onExecuted;
      nodeType.prototype.onExecuted = function (message) {
        onExecuted?.apply(this, arguments);
        const text = (message?.text || []).join("\n");
        let w = this.widgets?.find((x) => x.name === "saved");
        if (!w) w = this.addWidget("text", "saved", "", () => {}, { serialize: false });
        w.value = text;
        this.setDirtyCanvas(true, true);
      };
    }
  },
});
