/* hf-search-wandb report: draws the embedded run data with Plotly (bundled inline). No network access. */
(function () {
  "use strict";
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const state = {
    charts: [],          // {id, kind, key, run?} every Plotly chart drawn
    tables: [],          // {id, name, total} every data table
    full: new Map(),     // chart div id -> [{run, x: Float64Array, y: Float64Array}] full-resolution curves
    visible: DATA.runs.map(() => true),
    ready: false,
  };
  window.__report = state;
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const color = (i) => DATA.runs.length <= PALETTE.length ? PALETTE[i] : `hsl(${(i * 137.508) % 360},65%,45%)`;
  const CONFIG = { displaylogo: false, responsive: true };
  const MAX_POINTS_PER_CHART = 120000;
  const MARKERS_UP_TO = 500;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) if (c != null) node.append(c);
    return node;
  }
  /* {f8: base64 float64} | {i4: base64 int32} | {ref: k} (an array shared in DATA.arrays) -> Float64Array */
  const shared = new Map();
  function decode(enc) {
    if (enc.ref !== undefined) {
      if (!shared.has(enc.ref)) shared.set(enc.ref, decode(DATA.arrays[enc.ref]));
      return shared.get(enc.ref);
    }
    const bin = atob(enc.f8 !== undefined ? enc.f8 : enc.i4);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return enc.f8 !== undefined ? new Float64Array(bytes.buffer) : Float64Array.from(new Int32Array(bytes.buffer));
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(4) : String(+v.toPrecision(6));
    }
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  let counter = 0;
  const newId = (prefix) => `${prefix}-${++counter}`;

  /* min/max decimation: at most ~`limit` points, every bucket's extremes kept; all points when under it. */
  function decimate(x, y, limit, lo, hi) {
    let start = 0, end = x.length;
    if (lo !== undefined) {
      while (start < end && x[start] < lo) start++;
      while (end > start && x[end - 1] > hi) end--;
      start = Math.max(0, start - 1); end = Math.min(x.length, end + 1);
    }
    const n = end - start;
    if (n <= limit) return { x: Array.from(x.subarray(start, end)), y: Array.from(y.subarray(start, end)) };
    const buckets = Math.max(1, Math.floor(limit / 2)), size = n / buckets, ox = [], oy = [];
    for (let b = 0; b < buckets; b++) {
      const s = start + Math.floor(b * size), e = Math.min(end, start + Math.floor((b + 1) * size));
      let mi = -1, ma = -1;
      for (let i = s; i < e; i++) {
        if (Number.isNaN(y[i])) continue;
        if (mi < 0 || y[i] < y[mi]) mi = i;
        if (ma < 0 || y[i] > y[ma]) ma = i;
      }
      if (mi < 0) { ox.push(x[s]); oy.push(NaN); continue; }
      for (const i of mi <= ma ? [mi, ma] : [ma, mi]) { ox.push(x[i]); oy.push(y[i]); if (mi === ma) break; }
    }
    return { x: ox, y: oy };
  }

  function layout(title, xTitle, yTitle, extra) {
    return Object.assign({
      title: { text: title, font: { size: 13 }, x: 0.01, xanchor: "left" }, margin: { l: 55, r: 15, t: 34, b: 45 },
      xaxis: { title: { text: xTitle }, zeroline: false }, yaxis: { title: { text: yTitle || "" }, zeroline: false },
      showlegend: false, hovermode: "closest",  // the run picker above is the curves' legend
    }, extra || {});
  }

  /* ---------- curves (several runs overlaid) ---------- */
  function curveChart(parent, group, xTitle, kind) {
    const id = newId(kind), div = el("div", { id, class: "chart" });
    parent.append(div);
    const full = group.series.map((s) => ({ run: s.run, x: decode(s.x), y: decode(s.y) }));
    state.full.set(id, full);
    const limit = () => Math.max(200, Math.floor(MAX_POINTS_PER_CHART / Math.max(1, full.length)));
    const traces = full.map((s) => {
      const d = decimate(s.x, s.y, limit());
      return {
        type: "scatter", mode: s.x.length === 1 ? "markers" : s.x.length > MARKERS_UP_TO ? "lines" : "lines+markers", x: d.x, y: d.y,
        name: DATA.runs[s.run].name, legendgroup: String(s.run), visible: state.visible[s.run],
        line: { color: color(s.run), width: 1.5 }, marker: { size: s.x.length > 60 ? 2 : 5, color: color(s.run) },
        meta: { run: s.run, total: s.x.length },
      };
    });
    state.charts.push({ id, kind, key: group.key, traces: full.map((s) => ({ run: s.run, points: s.x.length })) });
    return () => Plotly.newPlot(div, traces, layout(group.key, xTitle), CONFIG).then(() => {
      div.on("plotly_relayout", (ev) => {
        if (!("xaxis.range[0]" in ev) && !ev["xaxis.autorange"]) return;
        const lo = ev["xaxis.range[0]"], hi = ev["xaxis.range[1]"];
        const ds = full.map((s) => decimate(s.x, s.y, limit(), lo, hi));
        Plotly.restyle(div, { x: ds.map((d) => d.x), y: ds.map((d) => d.y) });
      });
    });
  }
  function toggleRun(run, on) {
    state.visible[run] = on === undefined ? !state.visible[run] : on;
    const box = document.querySelector(`#run-picker input[data-run="${run}"]`);
    if (box) box.checked = state.visible[run];
    applyVisibility();
  }
  function applyVisibility() {
    for (const c of state.charts) {
      if (c.kind !== "curve" && c.kind !== "stat") continue;
      const div = document.getElementById(c.id);
      if (!div || !div.data) continue;
      Plotly.restyle(div, { visible: div.data.map((t) => state.visible[t.meta.run]) });
    }
  }

  /* ---------- sortable, filterable tables ---------- */
  function dataTable(parent, name, columns, rows, opts) {
    opts = opts || {};
    const id = newId("table"), pageSize = opts.pageSize || 1000;
    const input = el("input", { type: "search", placeholder: `filter ${name}…`, "aria-label": `filter ${name}` });
    const count = el("span", { class: "muted" });
    const more = el("button", { text: "show more" });
    const table = el("table", { class: "data", id, "data-name": name });
    const head = el("tr");
    columns.forEach((c, j) => head.append(el("th", { "data-col": String(j), text: c })));
    const body = el("tbody");
    table.append(el("thead", {}, head), body);
    parent.append(el("div", { class: "toolbar" }, input, count), el("div", { class: "table-wrap" }, table), more);
    let order = rows.map((_, i) => i), sortCol = -1, sortDir = 1, shown = pageSize, matches = order;
    const text = rows.map((r) => r.map((v) => fmt(v)).join("\u0001").toLowerCase());
    function render() {
      const q = input.value.trim().toLowerCase();
      matches = q ? order.filter((i) => text[i].includes(q)) : order;
      body.replaceChildren(...matches.slice(0, shown).map((i) => el("tr", {}, ...rows[i].map((v) =>
        el("td", { class: typeof v === "number" ? "num" : "", text: fmt(v) })))));
      table.dataset.rowsTotal = String(rows.length);
      table.dataset.rowsMatching = String(matches.length);
      count.textContent = `${matches.length} of ${rows.length} rows` + (matches.length > shown ? ` (first ${shown} shown)` : "");
      more.style.display = matches.length > shown ? "" : "none";
    }
    head.addEventListener("click", (ev) => {
      const th = ev.target.closest("th"); if (!th) return;
      const j = +th.dataset.col;
      sortDir = sortCol === j ? -sortDir : 1; sortCol = j;
      head.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      order = rows.map((_, i) => i).sort((a, b) => compare(rows[a][j], rows[b][j]) * sortDir || a - b);
      render();
    });
    input.addEventListener("input", () => { shown = pageSize; render(); });
    more.addEventListener("click", () => { shown += pageSize; render(); });
    render();
    state.tables.push({ id, name, total: rows.length });
    return table;
  }
  function compare(a, b) {
    const na = a === null || a === undefined || a === "", nb = b === null || b === undefined || b === "";
    if (na || nb) return na - nb;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }
  function kvTable(parent, name, obj) {
    const keys = Object.keys(obj).sort();
    if (!keys.length) { parent.append(el("p", { class: "note", text: `no ${name}` })); return; }
    return dataTable(parent, name, ["key", "value"], keys.map((k) => [k, obj[k]]), {});
  }

  /* ---------- page sections ---------- */
  function header() {
    const runs = DATA.runs;
    document.title = `${DATA.title} — hf-search-wandb report`;
    const h = el("header", {}, el("h1", { text: DATA.title }),
      el("div", { class: "meta", text: `${runs.length} run${runs.length === 1 ? "" : "s"} · generated ${DATA.generated} by hf-search-wandb ${DATA.version} · read with wandb leet inspect; self-contained, makes no network request` }));
    document.body.prepend(h);
  }
  /* Runs left out (wandb cannot read their log) and runs drawn from a damaged log: said before anything else. */
  function problems(main) {
    const skipped = DATA.skipped || [];
    const damaged = DATA.runs.filter((r) => (r.problems || []).length);
    if (!skipped.length && !damaged.length) return;
    const list = el("ul");
    for (const s of skipped) list.append(el("li", {}, el("strong", { text: "left out: " }), `${s.dir} — ${s.reason}`));
    for (const r of damaged) for (const p of r.problems) list.append(el("li", {}, el("strong", { text: `${r.name}: ` }), `${p} (${r.dir})`));
    const what = [skipped.length ? `${skipped.length} run folder${skipped.length === 1 ? "" : "s"} could not be read and ${skipped.length === 1 ? "is" : "are"} not shown` : "",
      damaged.length ? `${damaged.length} run${damaged.length === 1 ? " is" : "s are"} drawn from a damaged or unfinished log` : ""].filter(Boolean).join("; ");
    main.append(el("section", { id: "problems", class: "warn", role: "alert" }, el("h2", { text: `⚠ ${what}` }), list));
  }
  function runPicker(main) {
    const sec = el("section", { id: "runs" }, el("h2", { text: "Runs" }));
    const legend = el("div", { class: "legend", id: "run-picker" });
    DATA.runs.forEach((r, i) => {
      const box = el("input", { type: "checkbox", "data-run": String(i) }); box.checked = true;
      box.addEventListener("change", () => toggleRun(i, box.checked));
      const flag = (r.problems || []).length ? el("span", { class: "flag", title: r.problems.join("\n"), text: " ⚠" }) : null;
      legend.append(el("label", { title: r.dir }, box, el("span", { class: "swatch", style: `background:${color(i)}` }), `${r.name} (${r.state || "?"})`, flag));
    });
    const all = el("button", { text: "all" }), none = el("button", { text: "none" });
    all.onclick = () => { DATA.runs.forEach((_, i) => { state.visible[i] = true; }); syncBoxes(); applyVisibility(); };
    none.onclick = () => { DATA.runs.forEach((_, i) => { state.visible[i] = false; }); syncBoxes(); applyVisibility(); };
    sec.append(el("div", { class: "toolbar" }, el("span", { class: "muted", text: "legend of every chart: tick the runs to show" }), all, none), legend);
    main.append(sec);
  }
  function syncBoxes() { document.querySelectorAll("#run-picker input").forEach((b) => { b.checked = state.visible[+b.dataset.run]; }); }

  function sweepSection(main, jobs) {
    const cmp = DATA.comparison; if (!cmp) return;
    const sec = el("section", { id: "sweep" }, el("h2", { text: "Comparison" }));
    const p = cmp.parallel;
    if (p) {
      const id = newId("parallel"), div = el("div", { id, class: "chart wide" });
      sec.append(el("h3", { text: `Hyperparameters against best ${p.metric} (${p.goal}); drag on an axis to filter` }), div);
      state.charts.push({ id, kind: "parallel", key: p.metric, traces: [{ points: p.color.length }] });
      jobs.push(() => Plotly.newPlot(div, [{
        type: "parcoords", line: { color: p.color, colorscale: "Viridis", showscale: true, reversescale: p.goal === "minimize" },
        dimensions: p.dimensions.map((d) => Object.assign({ label: d.label, values: d.values }, d.tickvals ? { tickvals: d.tickvals, ticktext: d.ticktext } : {})),
      }], { margin: { l: 70, r: 70, t: 50, b: 30 } }, CONFIG));
    }
    sec.append(el("h3", { text: "Runs side by side" }));
    dataTable(sec, "comparison", cmp.columns, cmp.rows, {});
    main.append(sec);
  }
  /* ---------- two evaluations query by query (report/significance.py computes, this draws) ---------- */
  function significanceSection(main, jobs) {
    const sig = DATA.significance; if (!sig) return;
    const sec = el("section", { id: "significance" }, el("h2", { text: "Is the gain real? Two evaluations query by query" }));
    const pickA = el("select", { id: "sig-a", "aria-label": "evaluation A" }), pickB = el("select", { id: "sig-b", "aria-label": "evaluation B" });
    sig.options.forEach((o, i) => { for (const p of [pickA, pickB]) p.append(el("option", { value: String(i), text: o.label })); });
    pickA.value = String(sig.default[0]); pickB.value = String(sig.default[1]);
    const body = el("div", { id: "sig-body" });
    sec.append(el("p", { class: "note", text: `paired over the queries both hold; two-sided randomization test (${sig.permutations} sign flips, seed ${sig.seed}) and paired t-test; p_holm: the randomization p Holm-adjusted over the measures; significant: p_holm < 0.05. The numbers hf-search-wandb compare prints.` }),
      el("div", { class: "toolbar" }, el("span", { text: "A:" }), pickA, el("span", { text: "B:" }), pickB), body);
    if (sig.truncated) sec.append(el("p", { class: "note", text: `only the first ${sig.options.length} evaluations are offered` }));
    main.append(sec);
    const draw = () => {
      const i = +pickA.value, j = +pickB.value;
      const old = document.getElementById("sig-hist"); if (old) Plotly.purge(old);
      state.charts = state.charts.filter((c) => c.kind !== "significance");
      state.tables = state.tables.filter((t) => !t.significance);
      body.replaceChildren();
      if (i === j) { body.append(el("p", { class: "note", text: "pick two different evaluations" })); return; }
      const swap = i > j, p = sig.pairs[swap ? `${j}-${i}` : `${i}-${j}`];
      if (!p) { body.append(el("p", { class: "note", text: "these two evaluations share no query" })); return; }
      const rows = p.rows.map((r) => swap ? [r[0], r[2], r[1], -r[3], r[4], r[5], r[6], r[8], r[7], r[9], r[10]] : r);
      const only = p.only_a || p.only_b ? `; ${swap ? p.only_b : p.only_a} only in A, ${swap ? p.only_a : p.only_b} only in B` : "";
      body.append(el("p", { text: `B against A on ${p.paired} paired queries${only}` }));
      dataTable(body, "significance", sig.columns, rows, {});
      state.tables[state.tables.length - 1].significance = true;
      const e = p.histogram.edges, n = p.histogram.counts.length;
      const centers = p.histogram.counts.map((_, k) => (swap ? -1 : 1) * (e[k] + e[k + 1]) / 2);
      const div = el("div", { id: "sig-hist", class: "chart" }); body.append(div);
      state.charts.push({ id: "sig-hist", kind: "significance", key: p.primary, traces: [{ points: n }] });
      const flip = (r) => swap ? [r[0], r[2], r[1], -r[3]] : r;
      const cols = el("div", { class: "cols" });
      const up = el("div", {}, el("h3", { text: `most improved (${p.primary})` })), down = el("div", {}, el("h3", { text: `most regressed (${p.primary})` }));
      dataTable(up, "most improved", ["query", "A", "B", "delta"], (swap ? p.regressed : p.improved).map(flip), {});
      dataTable(down, "most regressed", ["query", "A", "B", "delta"], (swap ? p.improved : p.regressed).map(flip), {});
      state.tables[state.tables.length - 1].significance = true; state.tables[state.tables.length - 2].significance = true;
      cols.append(up, down); body.append(cols);
      return Plotly.newPlot(div, [{ type: "bar", x: centers, y: p.histogram.counts, marker: { color: centers.map((c) => c < 0 ? "#d62728" : "#2ca02c") } }],
        layout(`per-query change of ${p.primary} (B − A)`, "B − A", "queries"), CONFIG);
    };
    pickA.addEventListener("change", draw); pickB.addEventListener("change", draw);
    jobs.push(draw);
  }
  function curveSections(main, jobs) {
    const groups = new Map();
    for (const g of DATA.curves) { if (!groups.has(g.group)) groups.set(g.group, []); groups.get(g.group).push(g); }
    for (const [name, list] of groups) {
      const sec = el("section", { id: `curves-${name}` }, el("h2", { text: `${name}/ metrics` }),
        el("p", { class: "note", text: `x axis: ${DATA.step_key}; every logged value is kept, long curves are drawn min/max-decimated and redrawn in full when zoomed` }));
      const grid = el("div", { class: "grid" });
      sec.append(grid); main.append(sec);
      for (const g of list) jobs.push(curveChart(grid, g, DATA.step_key, "curve"));
    }
    if (DATA.stats.length) {
      const sec = el("section", { id: "curves-wandb-system" }, el("h2", { text: "wandb system metrics" }),
        el("p", { class: "note", text: "sampled by wandb itself (CPU, memory, disk, network, GPU); x axis: seconds since the run started" }));
      const grid = el("div", { class: "grid" });
      sec.append(grid); main.append(sec);
      for (const g of DATA.stats) jobs.push(curveChart(grid, g, "seconds", "stat"));
    }
  }

  function runDetails(main, jobs) {
    const sec = el("section", { id: "run-details" }, el("h2", { text: "Run details" }));
    const pick = el("select", { id: "run-select", "aria-label": "run" });
    DATA.runs.forEach((r, i) => pick.append(el("option", { value: String(i), text: `${r.name} (${r.id})` })));
    const body = el("div", { id: "run-body" });
    sec.append(el("div", { class: "toolbar" }, el("span", { text: "run:" }), pick), body);
    main.append(sec);
    const show = () => {
      for (const c of state.charts.filter((c) => c.kind === "histogram")) { const d = document.getElementById(c.id); if (d) Plotly.purge(d); }
      state.charts = state.charts.filter((c) => c.kind !== "histogram");
      state.tables = state.tables.filter((t) => !t.perRun);
      body.replaceChildren();
      const local = [];
      renderRun(body, DATA.runs[+pick.value], local);
      return local.reduce((p, job) => p.then(job), Promise.resolve());
    };
    pick.addEventListener("change", () => { state.ready = false; show().then(() => { state.ready = true; }); });
    jobs.push(show);
  }

  function renderRun(body, run, jobs) {
    const tablesBefore = state.tables.length;
    if ((run.problems || []).length) {
      const list = el("ul");
      for (const p of run.problems) list.append(el("li", { text: p }));
      body.append(el("div", { class: "warn run-problems", role: "alert" }, el("strong", { text: "⚠ this run's log is damaged or unfinished:" }), list));
    }
    const overview = {
      id: run.id, name: run.name, project: run.project, state: run.state, exit_code: run.exit_code,
      folder: run.dir, started: run.start_time, runtime_s: run.runtime_s, tags: (run.tags || []).join(", "),
      notes: run.notes, "history rows": run.history_rows, "last step": run.last_step, "step axis": run.step_axis,
    };
    if (run.trial) Object.assign(overview, { "sweep study": run.trial.study, "sweep trial": run.trial.number, "trial state": run.trial.state, "trial value": run.trial.value });
    const cols = el("div", { class: "cols" });
    const left = el("div", {}, el("h3", { text: "Overview" })), right = el("div", {}, el("h3", { text: "Best values" }));
    kvTable(left, "overview", overview);
    if (run.best.length) dataTable(right, "best values", ["metric", "value", "how", "step"], run.best.map((b) => [b.metric, b.value, b.how, b.step]), {});
    else right.append(el("p", { class: "note", text: "no aggregated summary values" }));
    cols.append(left, right); body.append(cols);
    const cfg = el("div", { class: "cols" });
    const c1 = el("div", {}, el("h3", { text: "Config" })), c2 = el("div", {}, el("h3", { text: "Environment" }));
    kvTable(c1, "config", run.config); kvTable(c2, "environment", run.environment);
    cfg.append(c1, c2); body.append(cfg);

    body.append(el("h3", { text: `Artifacts (${run.artifacts.length} logged versions)` }));
    if (run.artifacts.length) {
      const cols2 = ["name", "type", "logged", "aliases", "description", "metadata", "files", "size_bytes", "digest"];
      dataTable(body, "artifacts", cols2, run.artifacts.map((a) => cols2.map((c) => a[c])), {});
    } else body.append(el("p", { class: "note", text: "no artifacts" }));

    const hkeys = Object.keys(run.histograms);
    body.append(el("h3", { text: `Score histograms (${hkeys.length}), one line per evaluation step` }));
    const grid = el("div", { class: "grid" }); body.append(grid);
    for (const key of hkeys) {
      const list = run.histograms[key], id = newId("histogram"), div = el("div", { id, class: "chart" });
      grid.append(div);
      const traces = list.map((h, k) => {
        const xs = [], ys = [];
        for (let i = 0; i < h.values.length; i++) {
          if (h.bins[i] === null || h.bins[i + 1] === null) continue;
          xs.push((h.bins[i] + h.bins[i + 1]) / 2); ys.push(h.values[i]);
        }
        const t = list.length > 1 ? k / (list.length - 1) : 1;
        return { type: "scatter", mode: "lines", line: { shape: "hvh", width: 1.5, color: `hsl(${220 - 200 * t},70%,${55 - 15 * t}%)` }, x: xs, y: ys, name: `step ${h.step}` };
      });
      state.charts.push({ id, kind: "histogram", key, run: run.index, traces: traces.map((t) => ({ points: t.x.length })) });
      jobs.push(() => Plotly.newPlot(div, traces, layout(key, "score", "count", { showlegend: true, legend: { font: { size: 10 }, x: 1, xanchor: "right", y: 1 } }), CONFIG));
    }

    const tkeys = Object.keys(run.tables);
    body.append(el("h3", { text: `Tables (${tkeys.length})` }));
    for (const key of tkeys) {
      const versions = run.tables[key];
      const box = el("div", { class: "media-table", "data-key": key });
      const pick = el("select", { "aria-label": `${key} step` });
      versions.forEach((v, i) => pick.append(el("option", { value: String(i), text: `step ${v.step}${v.missing ? " (missing)" : ` · ${v.rows.length} row${v.rows.length === 1 ? "" : "s"}`}` })));
      pick.value = String(versions.length - 1);
      const holder = el("div");
      const draw = () => {
        state.tables = state.tables.filter((t) => t.key !== key || t.run !== run.index);
        holder.replaceChildren();
        const v = versions[+pick.value];
        if (v.missing) { holder.append(el("p", { class: "note", text: v.missing })); return; }
        const t = dataTable(holder, key, v.columns, v.rows, {});
        Object.assign(state.tables[state.tables.length - 1], { key, run: run.index, step: v.step, perRun: true });
        t.dataset.step = String(v.step);
      };
      pick.addEventListener("change", draw);
      box.append(el("div", { class: "toolbar" }, el("strong", { text: key }), el("span", { class: "muted", text: "evaluation:" }), pick), holder);
      body.append(box); draw();
    }
    const others = Object.entries(run.other_media);
    if (others.length) body.append(el("p", { class: "note", text: "not drawn here: " + others.map(([k, v]) => `${k} (${v.type} × ${v.count})`).join(", ") }));
    for (let i = tablesBefore; i < state.tables.length; i++) state.tables[i].perRun = true;
  }

  function start() {
    header();
    const main = el("main");
    document.body.append(main);
    const jobs = [];
    problems(main);
    runPicker(main);
    sweepSection(main, jobs);
    significanceSection(main, jobs);
    curveSections(main, jobs);
    runDetails(main, jobs);
    // Draw chart by chart, yielding to the browser in between so the page stays responsive.
    let chain = Promise.resolve();
    for (const job of jobs) chain = chain.then(() => new Promise((res) => setTimeout(res, 0))).then(job);
    chain.then(() => { state.drawnMs = performance.now(); state.ready = true; document.body.dataset.ready = "1"; },
      (err) => { console.error("report: drawing failed", err); });
  }
  start();
})();
