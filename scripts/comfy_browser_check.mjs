// Open the ComfyUI frontend in headless Chromium, load UI-format workflows through the app API,
// take screenshots and list console errors; drive the explore widget with the keyboard.
//
//   npm install --prefix /tmp/pptr puppeteer-core        # once; uses the system Chromium
//   node scripts/comfy_browser_check.mjs --workflow example_workflows/estimate_depth.json \
//        --workflow example_workflows/explore_walk.json --out docs/images
//
// Options: --server URL (default http://127.0.0.1:8188, loopback only), --workflow FILE
// (repeatable; default example_workflows/estimate_depth.json), --out DIR (screenshots, default
// docs/images; existing files are never overwritten: name_1.png, ...), --chromium PATH (default
// $CHROMIUM or /usr/bin/chromium), --size WxH (default 1600x1000), --puppeteer DIR (a
// node_modules folder holding puppeteer-core; default $PUPPETEER_DIR or /tmp/pptr/node_modules).
//
// For each workflow it checks that every node was created with its widgets (none of the "missing
// node type" placeholders). For a workflow with a UnityVideoExplore node it focuses the node's
// key widget, presses W, D and ArrowLeft, and checks the node's `actions` widget against what
// web/explore/explore_logic.js gives for those keys. Then it clicks the widget's "continue ▶"
// (the queued script runs as a new walk), waits until the first segment's frames show in the
// widget (screenshot *_live_segment1.png), presses A during the render, shoots the walk after its
// last segment (*_live_last.png), clicks "continue ▶" again (the walk goes on with A and
// continue_walk on), waits for both prompts in /history and checks that both succeeded
// and that the second saved video is the first plus one segment (--segment-frames, 4 on the default,
// 32 on Yume-5B; frames counted as the animated WebP's ANMF chunks; --prompt-timeout seconds each). Prints one JSON object on the last line;
// exits 1 on a console error from our extension (web/unityvideo.js, web/explore_widget.js, ...),
// a node that failed to load, or a failed explore check.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const OURS = /unityvideo|explore_widget|legend_logic|explore_logic/i;

// The API twin of a UI graph: example_workflows/estimate_depth.json -> workflows/default/estimate_depth_api.json,
// 5b_estimate_depth -> workflows/5b/estimate_depth_5b_api.json, yume_explore -> workflows/yume/explore_yume_api.json
// (scripts/make_workflows.py's ui_name, reversed); a file elsewhere: <file>_api.json beside it.
function apiTwin(file) {
  const name = path.basename(file, ".json");
  const m = /^(5b|yume)_(.+)$/.exec(name);
  const twin = m ? path.join(ROOT, "workflows", m[1], `${m[2]}_${m[1]}_api.json`)
    : path.join(ROOT, "workflows", "default", `${name}_api.json`);
  return path.basename(path.dirname(file)) === "example_workflows" ? twin : file.replace(/\.json$/, "_api.json");
}

function parseArgs(argv) {
  const opts = {
    server: "http://127.0.0.1:8188", workflows: [], out: path.join(ROOT, "docs", "images"),
    chromium: process.env.CHROMIUM || "/usr/bin/chromium", size: "1600x1000",
    puppeteer: process.env.PUPPETEER_DIR || "/tmp/pptr/node_modules",
    "segment-frames": "4", "prompt-timeout": "180",
  };
  for (let i = 0; i < argv.length; i += 1) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (!key.startsWith("--") || value === undefined) throw new Error(`bad argument ${key}; see the header of this file`);
    i += 1;
    if (key === "--workflow") opts.workflows.push(value);
    else if (key.slice(2) in opts) opts[key.slice(2)] = value;
    else throw new Error(`unknown option ${key}`);
  }
  if (opts.workflows.length === 0) opts.workflows.push(path.join(ROOT, "example_workflows", "estimate_depth.json"));
  const host = new URL(opts.server).hostname;
  if (!(host === "localhost" || host.startsWith("127.") || host === "[::1]")) {
    throw new Error(`server ${opts.server} is not on loopback; this check only talks to a local ComfyUI`);
  }
  return opts;
}

async function historyIds(server) {
  return new Set(Object.keys(await (await fetch(`${server}/history`)).json()));
}

/** Wait for a prompt that is not in `known` to finish; returns { id, entry } from /history. */
async function waitForNewPrompt(server, known, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const history = await (await fetch(`${server}/history`)).json();
    for (const [id, entry] of Object.entries(history)) {
      if (!known.has(id) && entry.status?.completed !== undefined) return { id, entry };
    }
    await sleep(500);
  }
  throw new Error(`no new prompt finished within ${timeoutMs / 1000} s`);
}

/** Frames of the first video a prompt saved (ANMF chunks of an animated WebP). */
async function savedFrames(server, entry) {
  const image = Object.values(entry.outputs || {}).flatMap((o) => o.images || [])[0];
  if (!image) return null;
  const query = new URLSearchParams({ filename: image.filename, subfolder: image.subfolder || "", type: image.type });
  const bytes = Buffer.from(await (await fetch(`${server}/view?${query}`)).arrayBuffer());
  let count = 0;
  for (let i = bytes.indexOf("ANMF"); i >= 0; i = bytes.indexOf("ANMF", i + 4)) count += 1;
  return count;
}

async function loadPuppeteer(dir) {
  try {
    return (await import("puppeteer-core")).default;
  } catch {
    try {
      return createRequire(path.join(dir, "noop.js"))("puppeteer-core");
    } catch {
      throw new Error(`puppeteer-core not found; install it with: npm install --prefix ${path.dirname(dir)} puppeteer-core`);
    }
  }
}

function freePath(file) {
  if (!fs.existsSync(file)) return file;
  const { dir, name, ext } = path.parse(file);
  for (let i = 1; ; i += 1) {
    const candidate = path.join(dir, `${name}_${i}${ext}`);
    if (!fs.existsSync(candidate)) return candidate;
  }
}

/** The widget's queue after `keys` when it started from the script `before`. */
async function expectedActions(before, keys) {
  const logic = await import(pathToFileURL(path.join(ROOT, "web", "explore", "explore_logic.js")).href);
  const queue = new logic.ActionQueue(before || "");
  for (const key of keys) queue.pushKeys([key]);
  return queue.toScript();
}

/** Input names each node class declares (required and optional), from the server's /object_info. */
async function declaredInputs(server) {
  const info = await (await fetch(`${server}/object_info`)).json();
  return Object.fromEntries(Object.entries(info).map(([cls, d]) => [cls, new Set(Object.keys({ ...d.input?.required, ...d.input?.optional }))]));
}

/**
 * Differences between the frontend's prompt for the loaded UI graph and the shipped API file.
 * An input only the frontend sends that the class does not declare (the frontend's own preview
 * widgets, e.g. "video-preview" on a video-upload combo, which graphToPrompt serialises as "") is
 * dropped by the server: it goes to `ignored`, not to the differences.
 */
function diffPrompt(got, want, declared = {}, ignored = []) {
  const diffs = [];
  for (const id of new Set([...Object.keys(got), ...Object.keys(want)])) {
    const [g, w] = [got[id], want[id]];
    if (!g || !w) { diffs.push(`node ${id}: only in ${g ? "frontend" : "api file"}`); continue; }
    if (g.class_type !== w.class_type) diffs.push(`node ${id}: ${g.class_type} != ${w.class_type}`);
    for (const k of new Set([...Object.keys(g.inputs), ...Object.keys(w.inputs)])) {
      if (!(k in w.inputs) && declared[g.class_type] && !declared[g.class_type].has(k)) { ignored.push(`node ${id}.${k}`); continue; }
      if (JSON.stringify(g.inputs[k]) !== JSON.stringify(w.inputs[k])) {
        diffs.push(`node ${id}.${k}: frontend ${JSON.stringify(g.inputs[k])} != api ${JSON.stringify(w.inputs[k])}`);
      }
    }
  }
  return diffs;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const [width, height] = opts.size.split("x").map(Number);
  const puppeteer = await loadPuppeteer(opts.puppeteer);
  fs.mkdirSync(opts.out, { recursive: true });
  const browser = await puppeteer.launch({
    executablePath: opts.chromium, headless: true, defaultViewport: { width, height },
    args: ["--no-sandbox", "--disable-gpu", `--window-size=${width},${height}`],
  });
  const consoleMessages = [];
  const blocked = new Set();
  const summary = { server: opts.server, workflows: {}, explore: null, console_errors: [], our_errors: [], screenshots: [] };
  try {
    const page = await browser.newPage();
    // loopback only: the frontend also asks remote hosts (release notes, templates); refuse those
    await page.setRequestInterception(true);
    page.on("request", (req) => {
      const { protocol, hostname } = new URL(req.url());
      const local = ["data:", "blob:"].includes(protocol) || hostname === "localhost" || hostname.startsWith("127.") || hostname === "[::1]";
      if (local) req.continue();
      else { blocked.add(new URL(req.url()).origin); req.abort("blockedbyclient"); }
    });
    page.on("console", (msg) => {
      if ((msg.type() === "error" || msg.type() === "warn") && !msg.text().includes("ERR_BLOCKED_BY_CLIENT")) {
        consoleMessages.push({ type: msg.type(), text: msg.text(), url: msg.location()?.url || "" });
      }
    });
    page.on("pageerror", (err) => consoleMessages.push({ type: "pageerror", text: String(err?.stack || err), url: "" }));
    page.on("requestfailed", (req) => {
      if (!String(req.failure()?.errorText).startsWith("net::ERR_BLOCKED_BY_CLIENT")) {
        consoleMessages.push({ type: "requestfailed", text: req.failure()?.errorText || "", url: req.url() });
      }
    });
    page.on("response", (res) => {
      if (res.status() >= 400) consoleMessages.push({ type: "http", text: `HTTP ${res.status()}`, url: res.url() });
    });

    await page.goto(opts.server, { waitUntil: "networkidle2", timeout: 90000 });
    await page.waitForFunction(() => window.app?.graph && window.app?.canvas, { timeout: 90000 });
    const declared = await declaredInputs(opts.server);
    summary.extensions = await page.evaluate(() => (window.app.extensions || []).map((e) => e.name).filter((n) => /unityvideo/i.test(n)));
    await page.keyboard.press("Escape"); // any first-run dialog

    for (const file of opts.workflows) {
      const name = path.basename(file, ".json");
      const graph = JSON.parse(fs.readFileSync(file, "utf8"));
      const info = await page.evaluate(async (data) => {
        await window.app.loadGraphData(data, true, true, null);
        await new Promise((r) => setTimeout(r, 500));
        const nodes = window.app.graph._nodes || window.app.graph.nodes;
        window.app.canvas.selectItems?.(nodes);
        const fit = window.app.extensionManager?.command?.execute?.("Comfy.Canvas.FitView");
        if (fit) await fit;
        window.app.canvas.deselectAll?.();
        window.app.graph.setDirtyCanvas(true, true);
        return nodes.map((n) => ({
          id: n.id, type: n.type, title: n.title, widgets: (n.widgets || []).map((w) => w.name),
          missing: Boolean(n.has_errors || n.constructor?.nodeData === undefined),
        }));
      }, graph);
      const apiFile = apiTwin(file);
      if (fs.existsSync(apiFile)) {
        const prompt = await page.evaluate(async () => (await window.app.graphToPrompt()).output);
        const ignored = [];
        const apiDiff = diffPrompt(prompt, JSON.parse(fs.readFileSync(apiFile, "utf8")), declared, ignored);
        summary.workflows[name] = { api_diff: apiDiff, frontend_only_inputs: ignored };
      }
      await page.keyboard.press("Escape");
      await sleep(1000);
      const bad = info.filter((n) => n.missing || (n.widgets.length === 0 && graph.nodes.find((g) => g.id === n.id)?.widgets_values?.length));
      summary.workflows[name] = { ...summary.workflows[name], nodes: info.length, expected: graph.nodes.length, not_loaded: bad.map((n) => `${n.id}:${n.type}`) };
      const explore = info.find((n) => n.type === "UnityVideoExplore");
      if (!explore) { // an explore graph is shot once, after the keys
        const shot = freePath(path.join(opts.out, `comfyui_${name}.png`));
        await page.screenshot({ path: shot });
        summary.screenshots.push(path.relative(ROOT, shot));
      } else {
        const keys = ["w", "d", "ArrowLeft"];
        const before = await page.evaluate((id) => {
          const node = window.app.graph.getNodeById(id);
          node.exploreWidget?.root?.focus();
          return { actions: node.widgets.find((w) => w.name === "actions")?.value, focused: document.activeElement === node.exploreWidget?.root };
        }, explore.id);
        for (const key of keys) { await page.keyboard.press(key); await sleep(100); }
        const after = await page.evaluate((id) => {
          const node = window.app.graph.getNodeById(id);
          return { actions: node.widgets.find((w) => w.name === "actions")?.value, text: node.exploreWidget?.root?.innerText };
        }, explore.id);
        const want = await expectedActions(before.actions, keys);
        await sleep(300);
        const eshot = freePath(path.join(opts.out, `comfyui_${name}_keys.png`));
        await page.screenshot({ path: eshot });
        summary.screenshots.push(path.relative(ROOT, eshot));
        summary.explore = { workflow: name, keys, focused: before.focused, before: before.actions, after: after.actions,
          expected: want, ok: before.focused && after.actions === want && after.actions !== before.actions,
          widget_text: after.text };
        // "continue ▶" twice: a new walk with the queued script, then one more segment (A), whose key
        // is pressed while the first walk renders (the widget keeps it for the next continue). The
        // first walk is shot once its first segment's frames are on screen, and after its last.
        const runs = [];
        const live = {};
        const segmentsShown = (id) => window.app.graph.getNodeById(id).exploreWidget.live.segments.length;
        for (const [index, extraKey] of [[0, "a"], [1, null]]) {
          const known = await historyIds(opts.server);
          await page.evaluate((id) => {
            const root = window.app.graph.getNodeById(id).exploreWidget.root;
            [...root.querySelectorAll("button")].find((b) => b.textContent.startsWith("continue")).click();
          }, explore.id);
          if (index === 0) {
            await page.waitForFunction(segmentsShown, { timeout: Number(opts["prompt-timeout"]) * 1000, polling: 50 }, explore.id);
            const during = await page.evaluate((id) => {
              const w = window.app.graph.getNodeById(id).exploreWidget;
              return { running: w.live.running, segments: w.live.segments.length, text: w.root.innerText };
            }, explore.id);
            const shot1 = freePath(path.join(opts.out, `comfyui_${name}_live_segment1.png`));
            await page.screenshot({ path: shot1 });
            summary.screenshots.push(path.relative(ROOT, shot1));
            await page.evaluate((id) => window.app.graph.getNodeById(id).exploreWidget?.root?.focus(), explore.id);
            await page.keyboard.press(extraKey); // pressed during the render
            await sleep(100);
            live.during = { ...during, key: extraKey,
              queued: await page.evaluate((id) => window.app.graph.getNodeById(id).exploreWidget.queue.toScript(), explore.id) };
          }
          const { id, entry } = await waitForNewPrompt(opts.server, known, Number(opts["prompt-timeout"]) * 1000);
          await page.waitForFunction((nid) => !window.app.graph.getNodeById(nid).exploreWidget.live.running, { timeout: 10000 }, explore.id);
          const inputs = entry.prompt?.[2]?.[String(explore.id)]?.inputs || {};
          runs.push({ prompt_id: id, status: entry.status?.status_str, actions: inputs.actions,
            continue_walk: inputs.continue_walk, frames: await savedFrames(opts.server, entry),
            segments_shown: await page.evaluate(segmentsShown, explore.id),
            widget_text: await page.evaluate((nid) => window.app.graph.getNodeById(nid).exploreWidget.root.innerText, explore.id) });
          if (index === 0) {
            await sleep(1500); // the last segment's animation loads
            const shot2 = freePath(path.join(opts.out, `comfyui_${name}_live_last.png`));
            await page.screenshot({ path: shot2 });
            summary.screenshots.push(path.relative(ROOT, shot2));
          }
        }
        summary.explore.live = live;
        const [first, second] = runs;
        const step = Number(opts["segment-frames"]);  // frames one segment adds: 4 on the default, 32 on Yume-5B
        const segments = first.actions ? first.actions.trim().split(/\s+/).length : 0;
        summary.explore.continue_runs = runs;
        summary.explore.continue_ok = runs.every((r) => r.status === "success") && first.actions === want &&
          first.continue_walk === false && second.actions === "A" && second.continue_walk === true &&
          first.frames === 1 + step * segments && second.frames === first.frames + step &&
          live.during?.running === true && live.during?.segments >= 1 && live.during?.queued === "A" &&
          first.segments_shown === segments && second.segments_shown === segments + 1;
        summary.explore.ok = summary.explore.ok && summary.explore.continue_ok;
      }
    }
  } finally {
    await browser.close();
  }
  summary.blocked_remote_origins = [...blocked];
  summary.console_errors = consoleMessages.filter((m) => m.type !== "warn");
  summary.console_warnings = consoleMessages.filter((m) => m.type === "warn").length;
  summary.our_errors = consoleMessages.filter((m) => OURS.test(m.url) || OURS.test(m.text));
  const loadFailures = Object.values(summary.workflows).some((w) => w.not_loaded.length || w.nodes !== w.expected || w.api_diff?.length);
  summary.ok = summary.our_errors.length === 0 && !loadFailures && (summary.explore === null || summary.explore.ok);
  for (const m of summary.console_errors) console.log(`${m.type}: ${m.text.slice(0, 300)} ${m.url}`);
  console.log(JSON.stringify(summary));
  process.exitCode = summary.ok ? 0 : 1;
}

main().catch((err) => { console.error(err?.stack || String(err)); process.exitCode = 2; });
