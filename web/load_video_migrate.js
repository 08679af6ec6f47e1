// Pure migration of UnityVideo Load Video's saved widget values from the old input layout to the
// current one (no ComfyUI imports, so node:test can run it).
//
// Old layout (before the frame-range loader): [video, num_frames, width, height, sampling, stride]
// with sampling "uniform" (num_frames spread over the whole clip) or "stride" (every stride-th
// frame from the start), resized and centre-cropped to width x height.
// New layout: [video, skip_first_frames, end_frame, select_every_nth, frame_load_cap, max_side].
//
// Closest meaning, chosen here:
// - "uniform" becomes the whole clip (0, 0, every frame, no cap): the old job thinned the clip to
//   fit one window; UnityVideo Windowed Sampling now takes a clip of any length, so keeping every
//   frame is what the current graphs do. (A uniform spread has no exact equivalent: the new
//   loader keeps every n-th frame, not n evenly spaced ones.)
// - "stride" becomes select_every_nth = stride and frame_load_cap = num_frames from frame 0, which
//   picks the same source frames as before.
// - width x height are dropped: max_side 0 keeps the source size (the windows resize each one).

export const LOAD_VIDEO_TYPE = "UnityVideoLoadVideo";
export const OLD_NAMES = ["video", "num_frames", "width", "height", "sampling", "stride"];
export const NEW_NAMES = ["video", "skip_first_frames", "end_frame", "select_every_nth", "frame_load_cap", "max_side"];
const SAMPLINGS = new Set(["uniform", "stride"]);

const isCount = (v) => typeof v === "number" && Number.isInteger(v) && v >= 0;

/**
 * True when `values` (a node's widgets_values) is the old layout: at least 6 values, numbers at
 * 1-3 and 5, and "uniform" or "stride" at 4 (the new layout has a number there).
 */
export function isOldLoadVideoLayout(values) {
  return Array.isArray(values) && values.length >= 6 && SAMPLINGS.has(values[4]) &&
    [1, 2, 3, 5].every((i) => isCount(values[i]));
}

/**
 * Old widgets_values -> {values, changes}: the new layout's values (any values after the sixth
 * kept as they are) and a one-line account of what changed; null when `values` is not the old
 * layout (the new layout and anything else are left alone).
 */
export function migrateLoadVideoWidgets(values) {
  if (!isOldLoadVideoLayout(values)) return null;
  const [video, numFrames, width, height, sampling, stride] = values;
  const isStride = sampling === "stride";
  const next = [video, 0, 0, isStride ? Math.max(1, stride) : 1, isStride ? numFrames : 0, 0, ...values.slice(6)];
  const before = OLD_NAMES.slice(1).map((n, i) => `${n}=${JSON.stringify(values[i + 1])}`).join(", ");
  const after = NEW_NAMES.slice(1).map((n, i) => `${n}=${next[i + 1]}`).join(", ");
  const meaning = isStride
    ? `every ${next[3]}-th frame from the start, at most ${numFrames}, at the source size`
    : "the whole clip at the source size";
  return { values: next, changes: `${before} -> ${after} (${meaning}; ${width}x${height} no longer applies)` };
}

/**
 * A serialized node ({type, id, title, widgets_values}) from a saved graph: when it is a Load
 * Video node with the old layout, rewrites its widgets_values in place and returns the warning to
 * log (naming the node and the change); otherwise returns null and leaves it untouched.
 */
export function migrateLoadVideoNode(info) {
  if (!info || info.type !== LOAD_VIDEO_TYPE) return null;
  const result = migrateLoadVideoWidgets(info.widgets_values);
  if (!result) return null;
  info.widgets_values = result.values;
  const name = `${info.title || "UnityVideo Load Video"} (#${info.id ?? "?"}, ${LOAD_VIDEO_TYPE})`;
  return `UnityVideo: ${name} was saved with the old inputs; migrated ${result.changes}. ` +
    "Check the values and re-save the workflow.";
}
