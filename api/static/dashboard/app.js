// The clr-service dashboard: jobs, live plots from the event stream, bounds picked on a range test, forms.
"use strict";

const view = document.getElementById("view");
const errorLine = document.getElementById("error");
const TERMINAL = ["succeeded", "failed", "cancelled"];
const STATES = ["queued", "running", ...TERMINAL];
const KINDS = ["range_test", "training", "comparison"];
const ARM_COLOURS = ["#dc2626", "#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const RANGE_TEST = {model: {architecture: "mlp"}, dataset: {name: "digits"}, optimizer: {name: "sgd"},
                    batch_size: 32, start_lr: 0.0001, end_lr: 10, epochs: 6, seed: 0};
const TRAINING = {model: {architecture: "mlp"}, dataset: {name: "digits"}, optimizer: {name: "sgd"}, batch_size: 32,
                  cycles: 1, seed: 0, clr: {base_lr: 0.001, max_lr: 0.1, step_size_epochs: 2}};
// The settings the forms show, by their path in the request (as a 422's `loc` names them); `empty`: what the API
// takes when the request leaves one out. Everything else stays editable in the request's JSON.
const JOB_FIELDS = [
  {path: "model.architecture", options: ["mlp", "seed_cnn"],
   hint: "A built-in model (another one, Keras JSON or an uploaded model: in the JSON below)"},
  {path: "dataset.name", label: "dataset", options: ["digits", "mnist", "fashion_mnist", "cifar10"],
   hint: "A built-in dataset: digits ships with the service, the others are downloaded once"},
  {path: "optimizer.name", label: "optimizer", options: ["sgd", "adam", "rmsprop"],
   hint: "Its own settings (momentum, beta_1, ...) in the JSON below"},
  {path: "batch_size", type: "integer", hint: "Samples per iteration, 1 to 65536"},
];
const SEED_FIELD = {path: "seed", type: "integer", empty: "random", hint: "Initial weights and shuffling, 0 to 2^32-1"};
const RANGE_TEST_FIELDS = [...JOB_FIELDS,
  {path: "start_lr", type: "number", hint: "The sweep's first LR, above 0"},
  {path: "end_lr", type: "number", hint: "Its last LR, above start_lr"},
  {path: "epochs", type: "integer", empty: "3", hint: "The sweep's length, 1 to 1000"},
  SEED_FIELD,
  {path: "verify", type: "boolean",
   hint: "Train a few bound pairs from the curve, one cycle each, and suggest the best"},
];
const TRAINING_FIELDS = [...JOB_FIELDS,
  {path: "cycles", type: "integer", excludes: "epochs", hint: "Whole cycles, ending at base_lr (or give epochs)"},
  {path: "epochs", type: "integer", excludes: "cycles", empty: "none", hint: "Epochs to train (or give cycles)"},
  SEED_FIELD,
  {path: "clr.base_lr", type: "number", hint: "The cycle's lowest LR, above 0"},
  {path: "clr.max_lr", type: "number", hint: "Its highest LR, above base_lr"},
  {path: "clr.step_size_epochs", type: "number", hint: "Half a cycle, in epochs (Smith: 2 to 10)"},
  {path: "validation_split", type: "number", empty: "0", hint: "The share held out for validation, 0 to below 1"},
];
const FORMS = {
  "#/new/range-test": {title: "New range test", example: RANGE_TEST, fields: RANGE_TEST_FIELDS, path: "/range-tests"},
  "#/new/training": {title: "New training", example: TRAINING, fields: TRAINING_FIELDS, path: "/trainings",
                     preview: true},
};
const FINAL_METRICS = ["val_accuracy", "accuracy", "val_loss", "loss"];  // the first a training has is shown
let leaving = [];  // what the current page stops when another opens

function key() { return sessionStorage.getItem("clr-key") || ""; }

function showError(error) { errorLine.textContent = error ? String(error.message || error) : ""; }

// An answer that is no success, with its status and `detail` (a 422's: a list of {loc, msg}).
class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(path, options = {}) {
  const headers = {Authorization: `Bearer ${key()}`, ...(options.body ? {"content-type": "application/json"} : {})};
  const response = await fetch(path, {...options, headers});
  if (!response.ok) {
    const body = await response.json().catch(() => ({detail: response.statusText}));
    throw new ApiError(response.status, body.detail);
  }
  return response;
}

// The job's Server-Sent Events through fetch (EventSource cannot send a key), resumed with Last-Event-ID.
async function followEvents(jobId, onEvent, stopped) {
  let lastId = null;
  while (!stopped()) {
    const headers = {Authorization: `Bearer ${key()}`, ...(lastId ? {"Last-Event-ID": lastId} : {})};
    const response = await fetch(`/jobs/${jobId}/events`, {headers});
    if (!response.ok) { throw new Error(`${response.status}: events of ${jobId}`); }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done || stopped()) { break; }
      buffer += decoder.decode(value, {stream: true}).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = {event: "message", data: ""};
        for (const line of block.split("\n")) {
          const [field, ...rest] = line.split(":");
          const text = rest.join(":").replace(/^ /, "");
          if (field === "event") { event.event = text; }
          if (field === "data") { event.data += text; }
          if (field === "id") { lastId = text; }
        }
        if (!event.data) { continue; }
        const data = JSON.parse(event.data);
        onEvent(event.event, data);
        if (event.event === "state" && TERMINAL.includes(data.state)) { return; }
      }
    }
  }
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  children.forEach((child) => node.append(child));
  return node;
}

// A job's LR bounds: a range test's suggestion, a training's (taken from a range test, else its own); null if none.
function jobBounds(job) {
  if (job.kind === "range_test") {
    const suggested = job.result?.suggested_bounds;
    return suggested ? [suggested.min_lr, suggested.max_lr] : null;
  }
  const clr = job.spec.clr;
  return job.result?.bounds ?? (clr?.base_lr != null ? [clr.base_lr, clr.max_lr] : null);
}

function boundsText(bounds) { return bounds ? bounds.map((lr) => Number(lr).toPrecision(3)).join(" – ") : "-"; }

// A training's last epoch by the first of FINAL_METRICS it has, to four digits; "-" when there is none.
function finalMetric(job) {
  const metrics = job.result?.final_metrics ?? {};
  const name = FINAL_METRICS.find((metric) => Number.isFinite(metrics[metric]));
  return name ? `${name} ${metrics[name].toPrecision(4)}` : "-";
}

function jobRow(job) {
  return el("tr", {"data-id": job.id},
    el("td", {}, el("a", {href: `#/jobs/${job.id}`}, job.id.slice(0, 8))), el("td", {class: "kind"}, job.kind),
    el("td", {class: "state"}, job.state),
    el("td", {}, `${job.progress.iteration}/${job.progress.total_iterations}`),
    el("td", {class: "lr-bounds"}, boundsText(jobBounds(job))), el("td", {class: "final-metric"}, finalMetric(job)),
    el("td", {}, new Date(job.created_at).toLocaleString()));
}

// A select of "all" (no filter) and `values`, named as the query parameter it sets.
function filterSelect(name, values) {
  return el("select", {id: `${name}-filter`, name}, el("option", {value: ""}, "all"),
            ...values.map((value) => el("option", {value}, value)));
}

async function jobList() {
  const filters = [filterSelect("kind", KINDS), filterSelect("state", STATES)];
  const table = el("table", {id: "jobs"});
  const labelled = filters.map((select) => el("label", {}, `${select.name} `, select));
  view.replaceChildren(el("h2", {}, "Jobs"), el("p", {class: "filters"}, ...labelled), table);
  const header = ["job", "kind", "state", "progress", "bounds", "final metric", "created"];
  const query = () => `/jobs?${new URLSearchParams([
    ...filters.filter((select) => select.value).map((select) => [select.name, select.value]), ["limit", "50"]])}`;
  const refresh = async () => {
    const asked = query();
    const page = await (await api(asked)).json();
    if (asked !== query()) { return; }  // the filters changed while it was asked: a newer answer is coming
    table.replaceChildren(el("tr", {}, ...header.map((h) => el("th", {}, h))), ...page.jobs.map(jobRow));
  };
  filters.forEach((select) => select.addEventListener("change", () => refresh().catch(showError)));
  await refresh();
  const timer = setInterval(() => refresh().catch(showError), 2000);  // live
  leaving.push(() => clearInterval(timer));
}

// A request's value at a dotted path ("clr.max_lr"); undefined where it has none.
function valueAt(request, path) { return path.split(".").reduce((node, key) => node?.[key], request); }

// Sets the value at a dotted path, making the objects on the way; `undefined` removes it.
function setAt(request, path, value) {
  const keys = path.split("."), last = keys.pop();
  let node = request;
  for (const key of keys) {
    if (typeof node[key] !== "object" || node[key] === null) {
      if (value === undefined) { return; }
      node[key] = {};
    }
    node = node[key];
  }
  if (value === undefined) { delete node[last]; } else { node[last] = value; }
}

function parseRequest(text) {
  const request = JSON.parse(text);
  if (typeof request !== "object" || request === null || Array.isArray(request)) { throw new Error("not an object"); }
  return request;
}

function fieldInput(field) {
  const attributes = {id: `field-${field.path}`, "data-path": field.path};
  if (field.options) {
    return el("select", attributes, ...field.options.map((option) => el("option", {value: option}, option)));
  }
  if (field.type === "boolean") { return el("input", {...attributes, type: "checkbox"}); }
  return el("input", {...attributes, type: "number", step: field.type === "integer" ? "1" : "any",
                      ...(field.empty ? {placeholder: field.empty} : {})});
}

// A field's value as the request holds it: a number as a number; an empty field or an unticked box left out.
function readField(input) {
  if (input.type === "checkbox") { return input.checked || undefined; }
  if (input.value.trim() === "") { return undefined; }
  return input.type === "number" ? Number(input.value) : input.value;
}

function writeField(input, value) {
  if (input.type === "checkbox") { input.checked = Boolean(value); } else { input.value = value ?? ""; }
}

function defaultText(field, value) {
  if (field.type === "boolean") { return value ? "on" : "off"; }
  return value === undefined ? field.empty : String(value);
}

// One setting: its label, its input, and a line of help that gives its default.
function fieldRow(field, input, example) {
  const hint = el("small", {class: "hint", id: `${input.id}-hint`},
                  `${field.hint}; default ${defaultText(field, valueAt(example, field.path))}`);
  input.setAttribute("aria-describedby", hint.id);
  return el("div", {class: "field"}, el("label", {for: input.id}, field.label || field.path.split(".").pop()),
            input, hint);
}

function markInvalid(input, message) {
  input.setAttribute("aria-invalid", "true");
  input.closest(".field").append(el("span", {class: "field-error", role: "alert"}, message));
}

function clearInvalid(input) {
  input.removeAttribute("aria-invalid");
  input.closest(".field").querySelectorAll(".field-error").forEach((error) => error.remove());
}

// A 422's errors beside their fields (`loc` without "body" is a field's path), the others on the error line.
function showFieldErrors(inputs, detail) {
  const elsewhere = [];
  for (const error of detail) {
    const path = error.loc.slice(1).join(".");
    const input = inputs.find((candidate) => candidate.dataset.path === path);
    if (input) { markInvalid(input, error.msg); } else { elsewhere.push(`${path || "request"}: ${error.msg}`); }
  }
  showError(elsewhere.length ? `422: ${elsewhere.join("; ")}` : null);
}

// The training's LR schedule from its JSON; returns what redraws it 300 ms after the last change.
function schedulePreview(text, chart) {
  let plot = null, pending = null;
  const draw = async () => {
    try {
      const spec = JSON.parse(text.value);
      const request = {clr: spec.clr, schedule: spec.schedule, dataset: spec.dataset, batch_size: spec.batch_size,
                       iterations: 2000};
      if (request.clr) { request.clr = {...request.clr}; delete request.clr.step_size_epochs; }
      if (request.clr && !request.clr.step_size) { request.clr.step_size = 500; }
      const lrs = await (await api("/schedules/preview", {method: "POST", body: JSON.stringify(request)})).json();
      plot?.destroy();
      plot = new uPlot({width: 700, height: 220, title: "Schedule preview (LR per iteration)",
                        scales: {x: {time: false}},  // iterations, not uPlot's default clock times
                        series: [{label: "iteration"}, {label: "lr", stroke: "#2563eb"}]},
                       [lrs.iteration, lrs.lr], chart);
      chart.dataset.xScale = plot.scales.x.time ? "time" : "iterations";
      showError(null);
    } catch (error) { /* an unfinished edit: keep the last preview */ }
  };
  draw();
  return () => { clearTimeout(pending); pending = setTimeout(draw, 300); };
}

// Each field edits the JSON, each edit of the JSON refills the fields it covers; `changed` is called after either.
function keepInSync(fields, inputs, text, settings, changed) {
  const legend = settings.querySelector("legend");
  const fill = (request, except) => fields.forEach((field, i) => {
    if (inputs[i] !== except) { writeField(inputs[i], valueAt(request, field.path)); }
  });
  fill(parseRequest(text.value));
  fields.forEach((field, i) => inputs[i].addEventListener("input", () => {
    const request = parseRequest(text.value), value = readField(inputs[i]);  // it parses: else no field is enabled
    setAt(request, field.path, value);
    if (field.excludes && value !== undefined) { setAt(request, field.excludes, undefined); }
    text.value = JSON.stringify(request, null, 2);
    fill(request, inputs[i]);  // not the one being typed in
    clearInvalid(inputs[i]);
    changed();
  }));
  text.addEventListener("input", () => {
    try {
      fill(parseRequest(text.value));
      settings.disabled = false;
      legend.textContent = "Settings";
    } catch (error) {  // an unfinished edit: the fields wait for JSON they can write into
      settings.disabled = true;
      legend.textContent = "Settings (editable once the JSON below parses)";
    }
    changed();
  });
}

// The JSON posted to `path`; the job's page once it is queued, a 422's errors beside their fields.
function submitJson(form, path, text, inputs) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    inputs.forEach(clearInvalid);
    showError(null);
    try {
      const job = await (await api(path, {method: "POST", body: text.value})).json();
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      if (error.status === 422 && Array.isArray(error.detail)) { showFieldErrors(inputs, error.detail); }
      else { showError(error); }
    }
  });
}

// One field per common setting above the whole request as JSON, which is what is submitted.
function submitForm({title, example, fields, path, preview}) {
  const text = el("textarea", {id: "spec", spellcheck: "false"});
  text.value = JSON.stringify(example, null, 2);
  const inputs = fields.map(fieldInput);
  const rows = fields.map((field, i) => fieldRow(field, inputs[i], example));
  const settings = el("fieldset", {id: "fields"}, el("legend", {}, "Settings"), ...rows);
  const button = el("button", {id: "submit", type: "submit"}, "Submit");
  const form = el("form", {novalidate: ""}, settings,  // the API judges the values: its 422 shows beside the field
                  el("label", {for: "spec", class: "advanced"}, "Advanced: the whole request"), text, el("br"), button);
  const chart = el("div", {id: "preview"});
  view.replaceChildren(el("h2", {}, title), form, chart);
  keepInSync(fields, inputs, text, settings, preview ? schedulePreview(text, chart) : () => {});
  submitJson(form, path, text, inputs);
}

// The y range of the PNG figure (clr/plots.py): from a little below the lowest loss to a little above the plateau
// before the fall, so a blow-up does not flatten the curve; null while there is no finite smoothed loss.
function lossRange(loss, smoothed) {
  const smooth = smoothed.filter(Number.isFinite);
  if (!smooth.length) { return null; }
  let lowest = 0;
  smooth.forEach((value, index) => { if (value < smooth[lowest]) { lowest = index; } });
  const high = 1.25 * smooth.slice(0, lowest + 1).reduce((a, b) => Math.max(a, b));
  const low = loss.filter(Number.isFinite).reduce((a, b) => Math.min(a, b), smooth[lowest]);
  return high > low ? [low - 0.05 * (high - low), high] : null;
}

// An epoch's figure: counts as integers (the epoch itself), metrics to four digits, "-" when there is none.
function metricText(value) {
  if (value === null) { return "-"; }
  return Number.isInteger(value) ? String(value) : Number(value).toPrecision(4);
}

// A log-LR tick: 1e-4, 3e-3, 0.01, 0.1, 1 (uPlot's own format prints 0.0001 as "0").
function lrLabel(value) { return value < 0.01 ? value.toExponential(0) : String(+value.toPrecision(2)); }

// Where the sweep diverged: its first non-finite loss (null in JSON), else its last point when it stopped early.
function divergedAt(loss, stoppedEarly) {
  const first = loss.findIndex((value) => !Number.isFinite(value));
  return first >= 0 ? first : (stoppedEarly && loss.length ? loss.length - 1 : -1);
}

// A red dashed vertical line at the LR where the sweep diverged, labelled.
function drawDivergence(u, lr) {
  const ctx = u.ctx, x = u.valToPos(lr, "x", true), ratio = window.devicePixelRatio || 1;
  ctx.save();
  ctx.strokeStyle = ctx.fillStyle = "#dc2626";
  ctx.lineWidth = 1.5 * ratio;
  ctx.setLineDash([6 * ratio, 4 * ratio]);
  ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
  ctx.font = `${12 * ratio}px system-ui, sans-serif`;
  ctx.textAlign = "right";
  ctx.fillText("diverged", x - 4 * ratio, u.bbox.top + 14 * ratio);
  ctx.restore();
}

// Each verified candidate's [min_lr, max_lr] as a thin bar with end ticks near the bottom, the chosen one green.
function drawCandidates(u, candidates) {
  const ctx = u.ctx, ratio = window.devicePixelRatio || 1, bottom = u.bbox.top + u.bbox.height;
  ctx.save();
  ctx.beginPath(); ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height); ctx.clip();
  candidates.forEach((candidate, index) => {
    const y = bottom - (8 + 7 * index) * ratio;
    const left = u.valToPos(candidate.min_lr, "x", true), right = u.valToPos(candidate.max_lr, "x", true);
    ctx.strokeStyle = candidate.chosen ? "#16a34a" : "#9ca3af";
    ctx.lineWidth = (candidate.chosen ? 3 : 1.5) * ratio;
    ctx.beginPath();
    ctx.moveTo(left, y); ctx.lineTo(right, y);
    for (const x of [left, right]) { ctx.moveTo(x, y - 3 * ratio); ctx.lineTo(x, y + 3 * ratio); }
    ctx.stroke();
  });
  ctx.restore();
}

// The verification candidates, the chosen one marked; what the server sent goes in as text only.
function verificationTable(candidates) {
  const number = (value, digits) => (value == null ? "-" : Number(value).toPrecision(digits));
  const header = ["name", "min_lr", "max_lr", "val_accuracy", "val_loss", "iterations"];
  return el("table", {id: "verification"}, el("tr", {}, ...header.map((h) => el("th", {}, h))),
    ...candidates.map((c) => el("tr", c.chosen ? {class: "chosen"} : {},
      el("td", {}, String(c.name)), el("td", {}, number(c.min_lr, 3)), el("td", {}, number(c.max_lr, 3)),
      el("td", {}, number(c.val_accuracy, 4)), el("td", {}, number(c.val_loss, 4)),
      el("td", {}, String(c.iterations ?? "-")))));
}

function logSlider(id, low, high, value) {
  const slider = el("input", {id, type: "range", min: Math.log10(low), max: Math.log10(high), step: "0.001"});
  slider.value = Math.log10(value);
  return slider;
}

async function jobPage(jobId) {
  let stop = false;
  leaving.push(() => { stop = true; });
  const job = await (await api(`/jobs/${jobId}`)).json();
  if (job.children) { return comparisonPage(job, () => stop); }
  const status = el("p", {id: "status"});
  const chartBox = el("div", {id: "chart"});
  const verified = el("div", {id: "verified"});
  const extra = el("div", {id: "extra"});
  const actions = el("p", {class: "actions"});
  view.replaceChildren(el("h2", {}, `${job.kind.replace("_", " ")} ${jobId.slice(0, 8)}`), status, chartBox,
                       verified, extra, actions);
  const columns = {iteration: [], lr: [], loss: [], smoothed_loss: [], accuracy: []};
  const rangeTest = job.kind === "range_test";
  let bounds = null, stoppedEarly = false, candidates = [], verifying = null;
  const opts = rangeTest
    ? {width: 800, height: 360, title: "Loss against the learning rate",
       scales: {x: {time: false, distr: 3}, y: {range: (u, low, high) => yRange(u, low, high)},
                accuracy: {range: [0, 1]}},
       series: [{label: "lr", value: (u, lr) => (lr == null ? "-" : lr.toPrecision(3))},
                {label: "loss", stroke: "#9ca3af"}, {label: "smoothed", stroke: "#dc2626", width: 2},
                {label: "accuracy", stroke: "#7c3aed", scale: "accuracy", width: 1}],
       axes: [{values: (u, splits) => lrTicks(splits)}, {}, {scale: "accuracy", side: 1, grid: {show: false}}],
       hooks: {draw: [(u) => drawBounds(u), (u) => drawRangeMarks(u)]}}
    : {width: 800, height: 360, title: "Loss and learning rate per iteration", scales: {x: {time: false}},
       series: [{label: "iteration"}, {label: "loss", stroke: "#dc2626"}, {label: "lr", stroke: "#2563eb", scale: "lr"}],
       axes: [{}, {}, {scale: "lr", side: 1}]};
  const plot = new uPlot(opts, rangeTest ? [[], [], [], []] : [[], [], []], chartBox);
  const started = Date.now();
  let total = job.progress.total_iterations;
  const data = () => (rangeTest ? [columns.lr, columns.loss, columns.smoothed_loss, columns.accuracy]
                                : [columns.iteration, columns.loss, columns.lr]);
  function yRange(u, low, high) {  // recomputed on every data update
    const range = lossRange(u.data[1], u.data[2]);
    if (range) { return range; }
    return Number.isFinite(low) && Number.isFinite(high) ? uPlot.rangeNum(low, high, 0.1, true) : [0, 1];
  }
  function lrTicks(splits) {  // the labels, also kept on the chart for tests (drawn on canvas, they cannot be read)
    const labels = splits.map((value) => (value == null ? "" : lrLabel(value)));
    chartBox.dataset.xTicks = JSON.stringify(labels.filter(Boolean));
    return labels;
  }
  function drawRangeMarks(u) {
    const at = divergedAt(columns.loss, stoppedEarly);
    if (at >= 0) { drawDivergence(u, columns.lr[at]); chartBox.dataset.divergedLr = String(columns.lr[at]); }
    else { delete chartBox.dataset.divergedLr; }
    if (candidates.length) { drawCandidates(u, candidates); }
    chartBox.dataset.yMin = String(u.scales.y.min);
    chartBox.dataset.yMax = String(u.scales.y.max);
  }
  function rangeResult(result) {  // a finished range test: where it stopped, its verified candidates
    stoppedEarly = Boolean(result?.stopped_early);
    candidates = Array.isArray(result?.verification) ? result.verification : [];
    verified.replaceChildren(...(candidates.length
      ? [el("h3", {}, "Verified bounds"), verificationTable(candidates)] : []));
    plot.redraw(false);
  }
  function drawBounds(u) {
    if (!bounds) { return; }
    const ctx = u.ctx;
    ctx.save();
    ctx.strokeStyle = "#16a34a";
    ctx.lineWidth = 2;
    for (const lr of [bounds.min, bounds.max]) {
      const x = u.valToPos(lr, "x", true);
      ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
    }
    ctx.restore();
  }
  const epochs = el("table", {id: "epochs"});
  if (!rangeTest) { extra.append(el("h3", {}, "Epochs"), epochs); }
  verified.after(el("p", {id: "related"}, ...relatedLinks(job)));
  if (rangeTest) { usedBy(job).catch(showError); }
  const showStatus = (state) => {
    const done = columns.iteration.length;
    const rate = done / Math.max((Date.now() - started) / 1000, 0.001);
    const running = !TERMINAL.includes(state);
    const eta = total && running ? ` · ETA ${Math.round((total - done) / Math.max(rate, 1e-9))} s` : "";
    const checking = verifying && running ? ` · verifying candidate ${verifying.candidate}/${verifying.of}` : "";
    status.textContent = `${state}${checking} · iteration ${done}/${total || "?"}${eta}`;
    status.dataset.points = String(done);
    status.dataset.state = state;
  };
  let state = job.state;
  if (rangeTest && job.result) { rangeResult(job.result); }
  showStatus(state);
  actions.replaceChildren(...buttons(job));
  await followEvents(jobId, (name, event) => {
    if (name === "points") {
      Object.keys(event).forEach((column) => columns[column]?.push(...event[column]));
      if (!event.accuracy) { columns.accuracy.push(...event.iteration.map(() => null)); }  // regression: none
      plot.setData(data());
    } else if (name === "progress") {
      total = event.total_iterations;
      verifying = event.verifying ?? null;  // {candidate, of} while bounds are being verified
    } else if (name === "epoch") {
      const metrics = Object.entries(event);
      if (!epochs.rows.length) { epochs.append(el("tr", {}, ...metrics.map(([m]) => el("th", {}, m)))); }
      epochs.append(el("tr", {}, ...metrics.map(([, v]) => el("td", {}, metricText(v)))));
    } else if (name === "state") {
      state = event.state;
      if (event.error) { showError(event.error); }
      if (rangeTest && event.result) { rangeResult(event.result); }
      if (rangeTest && event.result?.suggested_bounds) { bounds = pickBounds(event.result.suggested_bounds, job, plot); }
    }
    showStatus(state);
  }, () => stop);
  actions.replaceChildren(...buttons({...job, state}));
}

// Where a training comes from: the range test whose bounds it took, the comparison it is one run of.
function relatedLinks(job) {
  const links = [];
  if (job.spec.range_test_id) { links.push(el("a", {href: `#/jobs/${job.spec.range_test_id}`, id: "its-range-test"}, "its range test")); }
  if (job.comparison) {
    links.push(" ", el("a", {href: `#/jobs/${job.comparison.id}`, id: "its-comparison"},
                       `comparison ${job.comparison.id.slice(0, 8)} (arm ${job.comparison.arm}, seed ${job.comparison.seed})`));
  }
  return links;
}

// The trainings and comparisons that took this range test's bounds (`range_test_id`), linked.
async function usedBy(rangeTest) {
  const page = await (await api("/jobs?limit=500")).json();
  const users = page.jobs.filter((job) => job.spec.range_test_id === rangeTest.id
    || (job.spec.arms || []).some((arm) => arm.range_test_id === rangeTest.id));
  if (!users.length) { return; }
  document.getElementById("related").replaceChildren("Used by: ", ...users.flatMap((job) => [
    el("a", {href: `#/jobs/${job.id}`, class: "used-by"}, `${job.kind} ${job.id.slice(0, 8)}`), " "]));
}

// A comparison: every run's loss live (one colour per arm), the table once it ends, and a link to each run.
async function comparisonPage(job, stopped) {
  const runs = Object.entries(job.children).flatMap(([arm, seeds], index) => Object.entries(seeds).map(
    ([seed, id]) => ({arm, seed, id, colour: ARM_COLOURS[index % ARM_COLOURS.length]})));
  const status = el("p", {id: "status"}), chartBox = el("div", {id: "chart"});
  const table = el("table", {id: "comparison-table"}), list = el("ul", {id: "runs"});
  const actions = el("p", {class: "actions"});
  view.replaceChildren(el("h2", {}, `comparison ${job.id.slice(0, 8)}`), status, chartBox, el("h3", {}, "Arms"),
                       table, el("h3", {}, "Runs"), list, actions);
  const plot = new uPlot({width: 800, height: 360, title: "Loss per iteration: each run, one colour per arm",
    scales: {x: {time: false}}, series: [{label: "iteration"}, ...runs.map((run) => (
      {label: `${run.arm} ${run.seed}`, stroke: run.colour, width: 1, spanGaps: true}))]},
    [[], ...runs.map(() => [])], chartBox);
  let current = job;
  while (!stopped()) {
    const [comparison, ...children] = await Promise.all([job.id, ...runs.map((run) => run.id)].map(
      async (id) => (await api(`/jobs/${id}`)).json()));
    const curves = await Promise.all(runs.map(async (run) => (
      await api(`/jobs/${run.id}/curves?max_points=400`)).json()));
    plot.setData(uPlot.join(curves.map((curve) => [curve.iteration, curve.loss])));
    chartBox.dataset.points = JSON.stringify(curves.map((curve) => curve.iteration.length));
    list.replaceChildren(...runs.map((run, index) => el("li", {"data-id": run.id},
      el("a", {href: `#/jobs/${run.id}`}, `${run.arm}, seed ${run.seed}: ${run.id.slice(0, 8)}`),
      ` ${children[index].state}`)));
    current = comparison;
    const ended = children.filter((child) => TERMINAL.includes(child.state)).length;
    status.textContent = `${comparison.state} · ${ended}/${runs.length} runs ended`;
    status.dataset.state = comparison.state;
    if (comparison.error) { showError(comparison.error); }
    if (TERMINAL.includes(comparison.state)) { break; }
    await new Promise((resolve) => { setTimeout(resolve, 2000); });
  }
  if (current.result) { table.replaceChildren(...comparisonRows(current.result)); }
  actions.replaceChildren(...buttons(current));
}

// The table's rows: per arm, its runs, the mean ± std of its first final metric and of its test accuracy, and the
// iterations it took to reach the best fixed rate's final accuracy.
function comparisonRows(result) {
  const metric = result.target?.metric ?? FINAL_METRICS.find((name) => result.arms.some((arm) => arm.final[name]));
  const spread = (figure) => (figure?.mean == null ? "-"
    : `${figure.mean.toPrecision(4)}${figure.std == null ? "" : ` ± ${figure.std.toPrecision(2)}`}`);
  const reached = (arm) => (arm.iterations_to_target == null ? "-" : arm.iterations_to_target === "never"
    ? "never" : `${Math.round(arm.iterations_to_target.mean)} (${arm.iterations_to_target.n}/${arm.runs} runs)`);
  const header = ["arm", "runs", `final ${metric}`, "test accuracy", "iterations to target"];
  return [el("tr", {}, ...header.map((name) => el("th", {}, name))), ...result.arms.map((arm) => el("tr",
    {"data-arm": arm.name}, el("td", {}, arm.name), el("td", {}, String(arm.runs)),
    el("td", {class: "final"}, spread(arm.final[metric])), el("td", {}, spread(arm.final.test_accuracy)),
    el("td", {class: "to-target"}, reached(arm))))];
}

function pickBounds(suggested, job, plot) {
  const bounds = {min: suggested.min_lr, max: suggested.max_lr};
  const low = job.spec.start_lr, high = job.spec.end_lr;
  const minSlider = logSlider("min-lr", low, high, bounds.min), maxSlider = logSlider("max-lr", low, high, bounds.max);
  const minText = el("span", {id: "min-lr-value"}), maxText = el("span", {id: "max-lr-value"});
  const update = () => {
    bounds.min = 10 ** Number(minSlider.value);
    bounds.max = 10 ** Number(maxSlider.value);
    minText.textContent = bounds.min.toPrecision(3);
    maxText.textContent = bounds.max.toPrecision(3);
    plot.redraw(false);
  };
  let moved = false;  // whether the bounds are still the suggestion
  for (const slider of [minSlider, maxSlider]) {
    slider.addEventListener("input", () => { moved = true; update(); });
  }
  const train = el("button", {id: "train"}, "Train with these bounds");
  train.addEventListener("click", async () => {
    const spec = {...TRAINING, model: job.spec.model, dataset: job.spec.dataset, optimizer: job.spec.optimizer,
                  batch_size: job.spec.batch_size, validation_split: 0.1,
                  clr: {base_lr: bounds.min, max_lr: bounds.max, step_size_epochs: 2}};
    try {
      const training = await (await api("/trainings", {method: "POST", body: JSON.stringify(spec)})).json();
      location.hash = `#/jobs/${training.id}`;
    } catch (error) { showError(error); }
  });
  const compareEpochs = el("input", {id: "compare-epochs", type: "number", min: "1", value: "8", size: "3"});
  const compareSeeds = el("input", {id: "compare-seeds", type: "number", min: "1", max: "8", value: "2", size: "2"});
  const compare = el("button", {id: "compare"}, "Compare against a fixed rate and 1cycle");
  compare.addEventListener("click", async () => {  // the fixed rate: fastai's single-LR pick from the same curve
    const suggestion = !moved;
    const source = suggestion ? {range_test_id: job.id, accept_low_confidence: true} : {};
    const spec = {training: {model: job.spec.model, dataset: job.spec.dataset, optimizer: job.spec.optimizer,
                             batch_size: job.spec.batch_size, epochs: Number(compareEpochs.value),
                             validation_split: 0.2},
                  arms: [{name: "fixed", schedule: {policy: "constant", lr: suggested.valley_lr}},
                         {name: "clr", clr: {step_size_epochs: 2, ...(suggestion ? {} : {base_lr: bounds.min,
                          max_lr: bounds.max})}, ...source},
                         {name: "one_cycle", schedule: {policy: "one_cycle", ...(suggestion ? {} : {max_lr: bounds.max})},
                          ...source}],
                  seeds: [...Array(Number(compareSeeds.value)).keys()]};
    try {
      const comparison = await (await api("/comparisons", {method: "POST", body: JSON.stringify(spec)})).json();
      location.hash = `#/jobs/${comparison.id}`;
    } catch (error) { showError(error); }
  });
  document.getElementById("extra").replaceChildren(el("div", {class: "bounds"},
    el("p", {}, `Suggested${suggested.verified ? " and verified" : ""} (confidence ${suggested.confidence}): `
                + `${suggested.explanation || ""}`),
    el("label", {}, "base_lr ", minSlider, " ", minText), el("br"),
    el("label", {}, "max_lr ", maxSlider, " ", maxText), el("br"), train, el("br"), compare, " ",
    el("label", {}, "epochs ", compareEpochs), " ", el("label", {}, "seeds ", compareSeeds)));
  update();
  return bounds;
}

function buttons(job) {
  const result = [];
  if (!TERMINAL.includes(job.state)) {
    const cancel = el("button", {id: "cancel"}, "Cancel");
    cancel.addEventListener("click", () => api(`/jobs/${job.id}/cancel`, {method: "POST"}).catch(showError));
    result.push(cancel);
  } else {
    const remove = el("button", {id: "delete"}, "Delete");
    remove.addEventListener("click", () => api(`/jobs/${job.id}`, {method: "DELETE"})
      .then(() => { location.hash = "#/"; }).catch(showError));
    result.push(remove);
  }
  if (job.kind === "training" && job.state === "succeeded") {
    const download = el("button", {id: "download"}, "Download model");
    download.addEventListener("click", async () => {
      try {
        const blob = await (await api(`/jobs/${job.id}/model`)).blob();
        const link = el("a", {href: URL.createObjectURL(blob), download: `${job.id}.keras`});
        document.body.append(link);
        link.click();
        link.remove();
      } catch (error) { showError(error); }
    });
    result.push(download);
  }
  return result;
}

async function route() {
  leaving.forEach((stop) => stop());
  leaving = [];
  showError(null);
  if (!key()) { view.replaceChildren(el("p", {}, "Type an API key above (`clr-service up` prints where it is).")); return; }
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/jobs/")) { await jobPage(hash.slice(7)); }
    else if (FORMS[hash]) { submitForm(FORMS[hash]); }
    else { await jobList(); }
  } catch (error) { showError(error); }
}

document.getElementById("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("clr-key", document.getElementById("key").value.trim());  // kept for this tab only
  route();
});
window.addEventListener("hashchange", route);
route();
