// Coordis demo dashboard: one snapshot from /v1/dashboard, then live updates over two SSE streams.
// The snapshot carries this visitor's own API key (one per client address), which the forms below spend.
const $ = (selector) => document.querySelector(selector);
const state = { key: undefined, keyId: undefined, audit: new Map() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function time(ms) {
  return new Date(ms).toLocaleTimeString();
}

function renderBoard(period, entries, highlight) {
  const body = $(`#board-${period} tbody`);
  body.replaceChildren();
  if (entries.length === 0) {
    body.append(el("tr", {}, el("td", { class: "empty", colspan: "3" }, "no scores yet")));
    return;
  }
  for (const e of entries) {
    const row = el(
      "tr",
      { "data-player": e.playerId },
      el("td", {}, e.rank),
      el("td", { title: e.playerId }, e.name ?? e.playerId),
      el("td", { class: "num" }, e.score.toLocaleString()),
    );
    if (e.playerId === highlight) row.classList.add("flash");
    body.append(row);
  }
}

function renderRules(rules) {
  const box = $("#rules");
  box.replaceChildren();
  for (const r of rules) {
    const share = r.limit === 0 ? 0 : r.remaining / r.limit;
    const bar = el("div", { class: `bar${share === 0 ? " empty" : share < 0.3 ? " low" : ""}` }, el("div"));
    bar.firstChild.style.width = `${Math.round(share * 100)}%`;
    const reset = r.resetMs > 0 ? ` · full in ${Math.ceil(r.resetMs / 1000)} s` : "";
    box.append(
      el(
        "div",
        { class: "rule", "data-rule": r.name },
        el(
          "div",
          { class: "rule-head" },
          el("strong", {}, r.name),
          el("span", {}, `${r.remaining} / ${r.limit} left${reset}`),
        ),
        bar,
      ),
    );
  }
}

function renderJobs(runs) {
  const body = $("#jobs tbody");
  body.replaceChildren();
  if (runs.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: "4" }, "no runs yet")));
  for (const r of runs) {
    body.append(
      el(
        "tr",
        { "data-job": r.job },
        el("td", {}, r.job),
        el("td", {}, time(r.tick)),
        el("td", {}, el("span", { class: "tag" }, r.owner)),
        el("td", { class: "num" }, Math.max(0, r.endMs - r.startMs)),
      ),
    );
  }
}

function describe(data) {
  switch (data.type) {
    case "job-run":
      return `${data.job} ran on ${data.replica}`;
    case "player-deleted":
      return `admin deleted player ${data.playerId} (via ${data.replica})`;
    case "ratelimit-reset":
      return `admin refilled key ${data.key} (via ${data.replica})`;
    case "api-key-issued":
      return `admin issued ${data.ids.length} API key(s) (via ${data.replica})`;
    case "replica-started":
      return `replica ${data.replica} started`;
    case "job-retried":
      return `admin retried dead job ${data.jobId} (via ${data.replica})`;
    default:
      return JSON.stringify(data);
  }
}

function addAudit(entry) {
  if (state.audit.has(entry.id)) return;
  state.audit.set(entry.id, entry);
  const list = $("#audit");
  const item = el(
    "li",
    { "data-id": entry.id },
    el("span", { class: "seq" }, `#${entry.seq}`),
    el("span", {}, el("span", { class: "tag" }, entry.data.type), describe(entry.data)),
    el(
      "span",
      { class: "hash", title: entry.hash ?? "" },
      `${time(entry.timestampMs)} ${(entry.hash ?? "").slice(0, 8)}`,
    ),
  );
  list.prepend(item);
  while (list.children.length > 40) list.lastChild.remove();
}

// Small SVG line charts: one <path> per series, scaled to the largest value shown. The <svg> carries data-max and
// data-total (every value summed) so what it draws can be read back.
const SVG_NS = "http://www.w3.org/2000/svg";
const CHARTS = {
  "chart-depth": [
    ["waiting", "#3355dd"],
    ["delayed", "#d97706"],
    ["active", "#1f9d55"],
  ],
  "chart-jobs": [
    ["added", "#9aa3b5"],
    ["completed", "#1f9d55"],
    ["retried", "#d97706"],
    ["dead", "#d64545"],
  ],
  "chart-ratelimit": [
    ["allowed", "#1f9d55"],
    ["denied", "#d64545"],
  ],
};

// Legends give a gauge's latest sample, or a counter's total over the window.
function drawChart(id, series, gauge = false) {
  const svg = document.getElementById(id);
  const [width, height] = [300, 80];
  const values = Object.values(series).flat();
  const max = Math.max(1, ...values.filter((v) => v !== null));
  svg.replaceChildren();
  for (const [name, color] of CHARTS[id]) {
    const points = series[name] ?? [];
    const step = points.length > 1 ? width / (points.length - 1) : width;
    let d = "";
    let pen = "M";
    points.forEach((v, i) => {
      if (v === null) {
        pen = "M";
        return;
      }
      const y = height - 2 - (v / max) * (height - 6);
      d += `${pen}${(i * step).toFixed(1)},${y.toFixed(1)} `;
      pen = "L";
    });
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d.trim());
    path.setAttribute("stroke", color);
    path.dataset.series = name;
    svg.append(path);
  }
  svg.dataset.max = String(max);
  svg.dataset.total = String(values.reduce((a, v) => a + (v ?? 0), 0));
  const legend = document.querySelector(`.legend[data-for="${id}"]`);
  legend.replaceChildren(
    ...CHARTS[id].map(([name, color]) => {
      const points = series[name] ?? [];
      const value = gauge
        ? ([...points].reverse().find((v) => v !== null) ?? 0)
        : points.reduce((a, v) => a + (v ?? 0), 0);
      const swatch = el("i");
      swatch.style.background = color;
      return el("span", { "data-series": name }, swatch, `${name} ${value.toLocaleString()}`);
    }),
  );
}

function renderQueue(q) {
  const counts = { ...q.counts, completedPerMinute: q.completedPerMinute };
  for (const box of document.querySelectorAll("#queue-counts [data-count]")) {
    const value = counts[box.dataset.count] ?? 0;
    box.querySelector("strong").textContent = value.toLocaleString();
    box.toggleAttribute("data-nonzero", value > 0);
  }
  const body = $("#dead tbody");
  body.replaceChildren();
  if (q.deadLetters.length === 0) body.append(el("tr", {}, el("td", { class: "empty", colspan: "4" }, "none")));
  for (const job of q.deadLetters) {
    const retry = el("button", { type: "button", class: "retry", "data-job": job.id }, "retry");
    retry.addEventListener("click", () => void retryDead(job.id));
    body.append(
      el(
        "tr",
        { "data-job": job.id },
        el("td", { title: job.id }, job.playerId ?? job.id),
        el("td", {}, time(job.diedAt)),
        el("td", { class: "error", title: job.error }, job.error),
        el("td", { class: "num" }, retry),
      ),
    );
  }
}

async function refreshQueue() {
  const [queue, activity] = await Promise.all([fetch("/v1/queue"), fetch("/v1/activity")]);
  if (queue.ok) renderQueue(await queue.json());
  if (activity.ok) {
    const a = await activity.json();
    drawChart("chart-depth", a.gauges, true);
    drawChart("chart-jobs", a.counters);
    drawChart("chart-ratelimit", { allowed: a.counters.allowed, denied: a.counters.denied });
  }
}

async function retryDead(id) {
  const token = $("#admin-token").value.trim();
  const out = $("#retry-result");
  if (token === "") {
    out.textContent = "enter the admin token to retry";
    return;
  }
  sessionStorage.setItem("adminToken", token);
  const res = await fetch(`/v1/admin/queue/dead/${encodeURIComponent(id)}/retry`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  out.textContent =
    res.status === 204 ? `retried ${id}` : `HTTP ${res.status}: ${(await res.json().catch(() => ({}))).detail ?? ""}`;
  void refreshQueue();
}

async function refreshJobs() {
  const res = await fetch("/v1/jobs");
  if (res.ok) renderJobs((await res.json()).runs.slice(0, 12));
}

async function loadSnapshot() {
  const res = await fetch("/v1/dashboard");
  if (!res.ok) throw new Error(`dashboard: HTTP ${res.status}`);
  const snap = await res.json();
  state.key = snap.apiKey.key;
  state.keyId = snap.apiKey.id;
  $("#demo-key").textContent = snap.apiKey.id;
  renderBoard("daily", snap.top.daily);
  renderBoard("all", snap.top.all);
  renderRules(snap.ratelimit.rules);
  renderJobs(snap.jobs);
  for (const entry of [...snap.audit].reverse()) addAudit(entry);
}

function setLive(ok) {
  const pill = $("#live");
  pill.dataset.state = ok ? "live" : "down";
  pill.textContent = ok ? "live" : "reconnecting…";
}

async function refreshRules() {
  if (state.keyId === undefined) return;
  const res = await fetch(`/v1/ratelimit/${encodeURIComponent(state.keyId)}`);
  if (res.ok) renderRules((await res.json()).rules);
}

// An EventSource reconnects by itself after a dropped stream, but not after a refusal (429/503 over the stream
// caps): then open a new one a little later.
function stream(path, onOpen, onError) {
  const source = new EventSource(path);
  source.addEventListener("open", onOpen);
  source.addEventListener("error", () => {
    onError();
    if (source.readyState === EventSource.CLOSED) setTimeout(() => stream(path, onOpen, onError), 5_000);
  });
  return source;
}

function connect() {
  const events = stream(
    "/v1/events",
    () => setLive(true),
    () => setLive(false),
  );
  events.addEventListener("top10", (e) => {
    const m = JSON.parse(e.data);
    renderBoard("daily", m.top.daily, m.playerId);
    renderBoard("all", m.top.all, m.playerId);
    $("#last-score").textContent = `${m.name} scored ${m.score.toLocaleString()} (via ${m.replica})`;
  });
  events.addEventListener("job", () => void refreshJobs());
  // A deleted player leaves the boards; a renamed one shown on them gets its new name.
  events.addEventListener("player", (e) => {
    const m = JSON.parse(e.data);
    const shown = document.querySelector(`tr[data-player="${CSS.escape(m.playerId)}"]`) !== null;
    if (m.action === "deleted" || shown) void loadSnapshot().catch(() => {});
  });
  const audit = stream(
    "/v1/audit/stream",
    () => {},
    () => {},
  );
  audit.addEventListener("audit", (e) => addAudit(JSON.parse(e.data)));
  setInterval(() => {
    if (document.visibilityState === "visible") void refreshRules();
  }, 1_000);
  setInterval(() => {
    if (document.visibilityState === "visible") void refreshQueue().catch(() => {});
  }, 2_000);
}

async function call(path, init, out) {
  const res = await fetch(path, init);
  const limit = res.headers.get("RateLimit") ?? "";
  out.textContent = `HTTP ${res.status} from ${res.headers.get("x-replica-id") ?? "?"}  ${limit}`;
  void refreshRules();
  return res;
}

$("#score-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { playerId: form.get("playerId"), score: Number(form.get("score")) };
  if (form.get("name")) body.name = form.get("name");
  await call(
    "/v1/scores",
    {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": state.key },
      body: JSON.stringify(body),
    },
    $("#submit-result"),
  );
});

$("#spend").addEventListener("click", () =>
  call("/v1/leaderboards/all/top?n=1", { headers: { "x-api-key": state.key } }, $("#spend-result")),
);

$("#admin-token").value = sessionStorage.getItem("adminToken") ?? "";

void refreshQueue().catch(() => {});
loadSnapshot()
  .catch((err) => {
    $("#last-score").textContent = String(err);
  })
  .finally(connect);
