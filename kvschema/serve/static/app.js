// kvschema serve: the page. Reads the inputs, asks POST /api/fit (debounced, the previous
// request cancelled), and draws the answer. No framework, no build step, no eval, no inline
// script: the Content-Security-Policy forbids them. Text from the server is set as text; the
// plan's chart is SVG the server drew, parsed as SVG (never as HTML).
"use strict";

const GIB = 2 ** 30;
const DEBOUNCE_MS = 250;
const $ = (id) => document.getElementById(id);

const state = {
  dropped: null, // {config, name}: a config.json the user gave
  index: null, // {metadata: {total_size}}: a safetensors index the user gave
  timer: null,
  controller: null,
  sequence: 0,
  lastModel: null,
};

const number = (value, digits = 0) =>
  value === null || value === undefined
    ? "–"
    : Number(value).toLocaleString("en-US", {
        minimumFractionDigits: digits,
        maximumFractionDigits: digits,
      });
const gib = (bytes) => (bytes === null || bytes === undefined ? "" : (bytes / GIB).toFixed(2));

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setValue(id, text, raw) {
  const node = $(id);
  node.textContent = text;
  if (raw === undefined || raw === null) node.removeAttribute("data-value");
  else node.dataset.value = String(raw);
}

// -- inputs -> request ------------------------------------------------------------------------

function positive(id, label) {
  const text = $(id).value.trim();
  if (text === "") return undefined;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new Error(`${label}: a whole number ≥ 1, got “${text}”`);
  return Number(text);
}

function length() {
  const text = $("max-model-len").value.trim();
  if (text === "") return undefined;
  if (text === "auto" || text === "-1") return "auto";
  const match = /^(\d+)([kKmM]?)$/.exec(text);
  if (!match) throw new Error(`max_model_len: tokens (32768, 32k, 32K) or auto, got “${text}”`);
  const scale = { "": 1, k: 1000, K: 1024, m: 1e6, M: 2 ** 20 }[match[2]];
  const value = Number(match[1]) * scale;
  if (value < 1) throw new Error("max_model_len: at least one token");
  return value;
}

function request() {
  const body = { chart: true };
  if ($("model").value === "dropped" && state.dropped) {
    body.hf_config = state.dropped.config;
    body.config_name = state.dropped.name;
    if (state.index) body.safetensors_index = state.index;
  } else {
    body.model = $("model").value;
  }
  const weights = $("weights-gib").value.trim();
  if (weights !== "" && !(state.index && $("model").value === "dropped")) {
    const value = Number(weights);
    if (!(value > 0)) throw new Error(`weights: a size in GiB above 0, got “${weights}”`);
    body.weights_bytes = Math.round(value * GIB);
  }
  body.gpu = $("gpu").value;
  const gpus = positive("gpus", "GPUs");
  if (gpus !== undefined) body.gpus = gpus;
  if ($("tp").value !== "") body.tensor_parallel_size = Number($("tp").value);
  const pp = positive("pp", "pipeline parallel");
  if (pp !== undefined) body.pipeline_parallel_size = pp;
  const utilization = Number($("utilization").value);
  if (!(utilization > 0 && utilization <= 1)) {
    throw new Error(`gpu_memory_utilization: in (0, 1], got “${$("utilization").value}”`);
  }
  body.gpu_memory_utilization = utilization;
  const len = length();
  if (len !== undefined) body.max_model_len = len;
  const seqs = positive("max-num-seqs", "max_num_seqs");
  if (seqs !== undefined) body.max_num_seqs = seqs;
  const tokens = positive("max-num-batched-tokens", "max_num_batched_tokens");
  if (tokens !== undefined) body.max_num_batched_tokens = tokens;
  body.kv_cache_dtype = $("kv-cache-dtype").value;
  if ($("enforce-eager").checked) body.enforce_eager = true;
  if ($("sweep").checked) body.sweep = {};
  return body;
}

// -- talking to the server --------------------------------------------------------------------

async function getJSON(path) {
  const response = await fetch(path, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function schedule() {
  clearTimeout(state.timer);
  $("status").textContent = "Updating…";
  state.timer = setTimeout(update, DEBOUNCE_MS);
}

async function update() {
  let body;
  try {
    body = request();
  } catch (err) {
    showError(err.message, []);
    return;
  }
  if (state.controller) state.controller.abort();
  const controller = new AbortController();
  state.controller = controller;
  const sequence = ++state.sequence;
  const started = performance.now();
  let response;
  let answer;
  try {
    response = await fetch("/api/fit", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    answer = await response.json();
  } catch (err) {
    if (err.name === "AbortError") return;
    showError(`The server did not answer: ${err.message}`, []);
    return;
  }
  if (sequence !== state.sequence) return;
  if (!response.ok) {
    showError(`${answer.message} [${answer.type}]`, answer.problems || []);
    return;
  }
  const server = /dur=([\d.]+)/.exec(response.headers.get("server-timing") || "");
  render(answer, body);
  const took = server ? `${Number(server[1]).toFixed(1)} ms on the server, ` : "";
  $("status").textContent = `Updated (${took}${(performance.now() - started).toFixed(0)} ms in all).`;
  document.body.dataset.sequence = String(sequence);
}

function showError(message, problems) {
  const box = $("error");
  box.replaceChildren(element("p", message));
  if (problems.length) {
    const list = element("ul");
    for (const p of problems) list.append(element("li", `${p.path || ""} ${p.message} [${p.type}]`));
    box.append(list);
  }
  box.hidden = false;
  $("results").classList.add("stale");
  $("status").textContent = "Cannot answer: see the message.";
  document.body.dataset.sequence = String(state.sequence);
}

// -- the answer -------------------------------------------------------------------------------

function render(answer, body) {
  $("error").hidden = true;
  $("results").classList.remove("stale");
  const report = answer.report;
  const plan = report.plan;
  const verdict = $("verdict");
  verdict.textContent = report.verdict.replaceAll("_", " ");
  verdict.dataset.value = report.verdict;
  verdict.className = `verdict ${report.verdict}`;
  $("reason").textContent = report.reason;
  setValue("out-num-pages", number(plan.num_pages), plan.num_pages);
  setValue("out-kv-tokens", number(plan.kv_cache_size_tokens), plan.kv_cache_size_tokens);
  setValue(
    "out-concurrency",
    plan.max_concurrency === null ? "–" : `${number(plan.max_concurrency, 2)}×`,
    plan.max_concurrency,
  );
  setValue("out-max-model-len", number(plan.max_model_len), plan.max_model_len);
  const kv = report.available_kv_bytes;
  setValue("out-kv-gib", `${gib(kv.point)} GiB`, kv.point);
  setValue("out-at-once", number(plan.requests_at_once), plan.requests_at_once);
  renderMemory(report);
  renderGroups(answer.groups);
  renderChart(answer.chart_svg);
  renderLog(report.vllm_log);
  $("command").textContent = answer.command || "";
  $("command-note").textContent = answer.command_note || "";
  const download = $("download");
  if (body.model) {
    download.href = `/api/models/${encodeURIComponent(body.model)}`;
    download.download = `${body.model}.json`;
    download.hidden = false;
  } else {
    download.hidden = true;
  }
  renderSweep(answer.sweep, answer.sweep_command);
  const notes = $("notes");
  notes.replaceChildren(...report.notes.map((note) => element("li", note)));
}

const TERMS = [
  ["weights", "weights"],
  ["activation", "activation peak"],
  ["non_torch", "non-torch memory"],
  ["cuda_graphs", "CUDA graphs"],
];

function renderMemory(report) {
  const stage = report.stages[report.bottleneck_stage];
  const total = report.hardware ? report.hardware.cuda_total.point : null;
  const parts = [];
  for (const [key, label] of TERMS) {
    if (stage[key]) parts.push([key, label, stage[key].point]);
  }
  parts.push(["kv", "KV cache", Math.max(stage.available.point, 0)]);
  if (total !== null) {
    const used = parts.reduce((sum, part) => sum + part[2], 0);
    const budget = stage.requested ? stage.requested.point : used;
    if (total > budget) parts.push(["outside", "outside the budget", total - budget]);
  }
  const whole = Math.max(parts.reduce((sum, part) => sum + part[2], 0), total || 0, 1);
  const bar = $("bar");
  const legend = $("legend");
  bar.replaceChildren();
  legend.replaceChildren();
  for (const [key, label, bytes] of parts) {
    const segment = element("div", null, `segment ${key}`);
    segment.style.width = `${(100 * bytes) / whole}%`;
    segment.title = `${label}: ${gib(bytes)} GiB`;
    bar.append(segment);
    const item = element("li");
    item.append(element("span", null, `swatch ${key}`), element("span", `${label} ${gib(bytes)} GiB`));
    item.dataset.term = key;
    item.dataset.value = String(bytes);
    legend.append(item);
  }
  const name = report.hardware ? report.hardware.gpu || "the device" : "the device";
  bar.setAttribute(
    "aria-label",
    `Memory of one ${name} (${gib(total)} GiB): ` +
      parts.map(([, label, bytes]) => `${label} ${gib(bytes)} GiB`).join(", "),
  );
  const rows = [];
  if (stage.requested) rows.push(["total × utilization", stage.requested, false]);
  for (const [key, label] of TERMS) if (stage[key]) rows.push([`− ${label}`, stage[key], true]);
  rows.push(["= KV cache", stage.available, false]);
  const tbody = $("budget").tBodies[0];
  tbody.replaceChildren();
  for (const [label, value, cost] of rows) {
    const tr = element("tr");
    tr.append(element("th", label));
    tr.firstChild.scope = "row";
    const ends = cost ? [value.high, value.point, value.low] : [value.low, value.point, value.high];
    for (const end of ends) tr.append(element("td", gib(end)));
    tbody.append(tr);
  }
}

function renderGroups(groups) {
  const tbody = $("groups").tBodies[0];
  tbody.replaceChildren();
  groups.forEach((group, index) => {
    const tr = element("tr");
    tr.append(
      element("td", index),
      element("td", group.kind),
      element("td", number(group.layers)),
      element("td", number(group.group_page_bytes)),
      element("td", number(group.pages_per_request)),
      element("td", number(group.request_bytes)),
    );
    tbody.append(tr);
  });
}

function renderChart(svgText) {
  const box = $("chart");
  box.replaceChildren();
  if (!svgText) {
    box.append(element("p", "No chart: vLLM would not start with this budget.", "hint"));
    return;
  }
  const parsed = new DOMParser().parseFromString(svgText, "image/svg+xml");
  const svg = parsed.documentElement;
  if (svg.nodeName !== "svg" || parsed.getElementsByTagName("parsererror").length) return;
  for (const script of svg.querySelectorAll("script, foreignObject")) script.remove();
  svg.setAttribute("aria-label", "The plan: one request's memory and pages by group, and the requests the blocks hold at each length");
  box.append(document.importNode(svg, true));
}

function renderLog(lines) {
  const log = $("log");
  log.replaceChildren();
  for (const line of lines) {
    const row = element("span", line.text, `line ${line.level.toLowerCase()}`);
    if (!line.complete) row.title = "part of a longer line";
    log.append(row, document.createTextNode("\n"));
  }
}

function renderSweep(sweep, command) {
  const box = $("sweep-box");
  box.hidden = !sweep;
  if (!sweep) return;
  const tbody = $("sweep-table").tBodies[0];
  tbody.replaceChildren();
  for (const row of sweep.rows) {
    if (row.verdict === null) continue;
    const tr = element("tr", null, row.verdict);
    const kv = row.available_kv_gib;
    const conc = row.max_concurrency_low ?? row.max_concurrency;
    const cell = element("td");
    const use = element("button", "Use");
    use.type = "button";
    use.setAttribute(
      "aria-label",
      `Use ${row.gpu}, TP ${row.tensor_parallel_size}, PP ${row.pipeline_parallel_size}`,
    );
    use.addEventListener("click", () => choose(row));
    cell.append(use);
    tr.append(
      cell,
      element("td", row.gpu),
      element("td", `${row.gpus} (${row.tensor_parallel_size} × ${row.pipeline_parallel_size})`),
      element("td", row.kv_cache_dtype),
      element("td", row.verdict.replaceAll("_", " ")),
      element("td", kv ? `${kv[0].toFixed(2)}–${kv[1].toFixed(2)}` : ""),
      element("td", number(row.max_model_len)),
      element("td", conc === null ? "–" : number(conc, 2)),
      element("td", row.concurrency_per_gpu === null ? "–" : number(row.concurrency_per_gpu, 2)),
    );
    tbody.append(tr);
  }
  $("sweep-command").textContent = command || "";
}

function choose(row) {
  $("gpu").value = row.gpu;
  $("gpus").value = String(row.gpus);
  $("tp").value = String(row.tensor_parallel_size);
  $("pp").value = String(row.pipeline_parallel_size);
  schedule();
  $("verdict-title").scrollIntoView({ block: "nearest" });
}

// -- files ------------------------------------------------------------------------------------

async function readFile(file) {
  if (file.size > 64 * 2 ** 20) throw new Error(`${file.name}: larger than 64 MiB`);
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch (err) {
    throw new Error(`${file.name}: not JSON (${err.message})`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new Error(`${file.name}: a JSON object was expected`);
  }
  return data;
}

async function takeFile(file) {
  try {
    const data = await readFile(file);
    if (data.metadata && data.weight_map !== undefined) {
      // only the total size is read: the weight map stays here
      state.index = { metadata: { total_size: data.metadata.total_size } };
    } else {
      state.dropped = { config: data, name: file.name };
      let option = $("model").querySelector('option[value="dropped"]');
      if (!option) {
        option = element("option");
        option.value = "dropped";
        $("model").prepend(option);
      }
      option.textContent = `Your ${file.name} (${data.model_type || "unknown model_type"})`;
      $("model").value = "dropped";
    }
    describeSource();
    schedule();
  } catch (err) {
    showError(err.message, []);
  }
}

function describeSource() {
  const parts = [];
  if ($("model").value === "dropped" && state.dropped) parts.push(`Using ${state.dropped.name}`);
  if (state.index) {
    parts.push(`weights from the index: ${gib(state.index.metadata.total_size)} GiB in all (with your config.json)`);
  }
  $("source").textContent = parts.join("; ");
}

// -- start ------------------------------------------------------------------------------------

async function start() {
  try {
    const [models, gpus] = await Promise.all([getJSON("/api/models"), getJSON("/api/gpus")]);
    for (const model of models) {
      const option = element("option", model.title);
      option.title = model.source;
      option.value = model.name;
      $("model").append(option);
    }
    for (const gpu of gpus) {
      const option = element("option", `${gpu.name} (${gpu.memory_gb} GB)`);
      option.value = gpu.name;
      $("gpu").append(option);
    }
    const h100 = gpus.find((gpu) => gpu.aliases.includes("H100"));
    if (h100) $("gpu").value = h100.name;
  } catch (err) {
    showError(`Cannot load the catalogue: ${err.message}`, []);
    return;
  }
  $("inputs").addEventListener("input", (event) => {
    if (event.target.type !== "file") schedule();
  });
  $("inputs").addEventListener("change", (event) => {
    if (event.target.type === "file") {
      if (event.target.files.length) takeFile(event.target.files[0]);
    } else {
      // a select may report only its change; schedule() merges it with the input event
      if (event.target.id === "model") describeSource();
      schedule();
    }
  });
  $("inputs").addEventListener("submit", (event) => {
    event.preventDefault();
    update();
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    for (const file of event.dataTransfer.files) takeFile(file);
  });
  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("command").textContent);
      $("status").textContent = "Command copied.";
    } catch {
      $("status").textContent = "Copying is not allowed here: select the command instead.";
    }
  });
  update();
}

document.addEventListener("DOMContentLoaded", start);
