// Pure helpers for the modality colour legends (no ComfyUI imports, so node:test can run them).

/** Modality widget value -> the legend key used in legends.json ("flow" is the release's "raft"). */
export function legendKey(modality) {
  const aliases = { flow: "raft", optical_flow: "raft" };
  const key = String(modality || "").trim().toLowerCase();
  return aliases[key] || key;
}

/** "rgb(r, g, b)" for a [r, g, b] stop. */
export function cssColour(rgb) {
  return `rgb(${rgb.map((c) => Math.max(0, Math.min(255, Math.round(c)))).join(", ")})`;
}

/**
 * Layout of a legend inside a box of the given width: numeric stops become a gradient
 * ({kind: "gradient", stops: [{offset, colour}]}); labelled stops become swatches
 * ({kind: "swatches", items: [{x, width, colour, label}]}).
 */
export function legendLayout(legend, width) {
  if (!legend || !Array.isArray(legend.stops) || legend.stops.length === 0) return null;
  const numeric = legend.stops.every(([pos]) => typeof pos === "number");
  if (numeric) {
    const lo = legend.stops[0][0];
    const hi = legend.stops[legend.stops.length - 1][0];
    const span = hi - lo || 1;
    return { kind: "gradient", title: legend.title, units: legend.units,
      stops: legend.stops.map(([pos, rgb]) => ({ offset: (pos - lo) / span, colour: cssColour(rgb) })) };
  }
  const w = width / legend.stops.length;
  return { kind: "swatches", title: legend.title, units: legend.units,
    items: legend.stops.map(([label, rgb], i) => ({ x: i * w, width: w, colour: cssColour(rgb), label: String(label) })) };
}
