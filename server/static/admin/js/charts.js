// The panels' renderers, one per shape of data: line (with a threshold line and interval
// bands), bar, funnel, heatmap, table, and headline figures. Charts are drawn by Chart.js
// (loaded by the page as window.Chart); heatmaps, tables and figures are plain elements. Text
// is always set as text, never as HTML: search texts and names come from customers.

const PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#ca8a04", "#db2777",
  "#4b5563"];
const THRESHOLD_COLOR = "#b91c1c";

function library() {
  const Chart = globalThis.Chart;
  if (!Chart) throw new Error("the chart library did not load");
  return Chart;
}

export function color(index) {
  return PALETTE[index % PALETTE.length];
}

function translucent(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** Empty a panel's body, releasing the charts drawn in it. */
export function clear(el) {
  const Chart = globalThis.Chart;
  if (Chart) {
    for (const canvas of el.querySelectorAll("canvas")) {
      const chart = Chart.getChart(canvas);
      if (chart) chart.destroy();
    }
  }
  el.replaceChildren();
}

/** A line of text in a panel's body: "no data", "loading…", or an error. */
export function status(el, text, kind = "") {
  const p = document.createElement("p");
  p.className = `panel-status ${kind}`.trim();
  p.textContent = text;
  el.append(p);
  return p;
}

/** A short line of explanation among a panel's charts (what was drawn, and why). */
export function aside(el, text) {
  const p = document.createElement("p");
  p.className = "aside";
  p.textContent = text;
  el.append(p);
  return p;
}

function canvasIn(el) {
  const box = document.createElement("div");
  box.className = "chart";
  const canvas = document.createElement("canvas");
  box.append(canvas);
  el.append(box);
  return canvas;
}

// The value axis' ticks: formatted, and whole numbers only for counts (`whole`).
function ticks(spec) {
  const format = spec.format;
  return {
    callback: (v) => (format ? format(v) : v),
    ...(spec.whole ? { precision: 0 } : {}),
  };
}

function options(format, extra = {}) {
  const show = format || ((v) => String(v));
  return {
    responsive: true,
    maintainAspectRatio: false,
    // Drawn at once: nothing moves while an operator reads, or while a test looks.
    animation: false,
    interaction: { mode: "index", intersect: false },
    plugins: {
      legend: {
        position: "bottom",
        labels: { filter: (item, data) => !data.datasets[item.datasetIndex].hiddenInLegend },
      },
      tooltip: {
        filter: (item) => !item.dataset.hiddenInLegend,
        callbacks: { label: (item) => `${item.dataset.label}: ${show(item.raw)}` },
      },
    },
    ...extra,
  };
}

/**
 * A line chart.
 * spec: {labels, series: [{label, values, dashed?}], threshold?: {label, value},
 *        thresholds?: [{label, value}], band?: {label, lower, upper},
 *        bands?: [{label, lower, upper}], format?: value => text, fromZero?, whole?,
 *        compact?}
 * A band (a prediction interval) is shaded between `lower` and `upper` (null where it does
 * not reach); `bands` are several, the widest first; a threshold is a dashed red line across
 * the chart (`thresholds`: several, e.g. a floor and a ceiling). A compact chart (one of a
 * grid of small charts) has no legend (the panel says what its lines are) and few, flat
 * labels on its time axis.
 */
export function lineChart(el, spec) {
  const Chart = library();
  const datasets = [];
  // Widest first: the narrower bands shade over it, darker where they overlap.
  const bands = spec.bands || (spec.band ? [spec.band] : []);
  for (const band of bands) {
    const shade = translucent(color(0), 0.15);
    datasets.push({
      label: `${band.label} (lower)`,
      data: band.lower,
      borderWidth: 0,
      pointRadius: 0,
      fill: false,
      backgroundColor: shade,
      hiddenInLegend: true,
    });
    datasets.push({
      label: band.label,
      data: band.upper,
      borderWidth: 0,
      pointRadius: 0,
      fill: "-1",
      backgroundColor: shade,
    });
  }
  spec.series.forEach((series, i) => {
    datasets.push({
      label: series.label,
      data: series.values,
      borderColor: color(i),
      backgroundColor: color(i),
      borderDash: series.dashed ? [6, 4] : [],
      pointRadius: spec.labels.length > (spec.compact ? 14 : 60) ? 0 : 2,
      // Smooth without overshooting: a count never dips below zero between two points.
      cubicInterpolationMode: "monotone",
      fill: false,
      spanGaps: true,
    });
  });
  const thresholds = spec.thresholds || (spec.threshold ? [spec.threshold] : []);
  for (const threshold of thresholds) {
    datasets.push({
      label: threshold.label,
      data: spec.labels.map(() => threshold.value),
      borderColor: THRESHOLD_COLOR,
      backgroundColor: THRESHOLD_COLOR,
      borderDash: [4, 4],
      borderWidth: 1.5,
      pointRadius: 0,
      fill: false,
    });
  }
  const format = spec.format;
  const chosen = options(format, {
    scales: {
      y: { beginAtZero: !!spec.fromZero, ticks: ticks(spec) },
      ...(spec.compact ? { x: { ticks: { maxRotation: 0, maxTicksLimit: 4 } } } : {}),
    },
  });
  if (spec.compact) chosen.plugins.legend.display = false;
  return new Chart(canvasIn(el), {
    type: "line",
    data: { labels: spec.labels, datasets },
    options: chosen,
  });
}

/**
 * A bar chart.
 * spec: {labels, series: [{label, values, color?}], horizontal?, stacked?, format?, whole?}
 * A horizontal chart grows with its bars, so that every label stays readable.
 */
export function barChart(el, spec) {
  const Chart = library();
  const format = spec.format;
  const value = spec.horizontal ? "x" : "y";
  const category = spec.horizontal ? "y" : "x";
  const canvas = canvasIn(el);
  if (spec.horizontal && spec.labels.length > 8) {
    const perBar = spec.stacked ? 1.4 : 1.2 + 0.4 * spec.series.length;
    // Set through the CSSOM, which the Content-Security-Policy allows.
    canvas.parentElement.style.height = `${4 + perBar * spec.labels.length}rem`;
  }
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels: spec.labels,
      datasets: spec.series.map((series, i) => ({
        label: series.label,
        data: series.values,
        backgroundColor: series.color || color(i),
      })),
    },
    options: options(format, {
      indexAxis: category,
      scales: {
        [value]: {
          beginAtZero: true,
          stacked: !!spec.stacked,
          ticks: ticks(spec),
        },
        [category]: { stacked: !!spec.stacked, ticks: { autoSkip: false } },
      },
    }),
  });
}

/**
 * A funnel: each stage's count as a horizontal bar, labelled with its share of the first
 * stage and of the stage before.
 * spec: {stages: [{label, value}], format?}
 */
export function funnelChart(el, spec) {
  const first = spec.stages.length ? spec.stages[0].value : 0;
  const share = (part, whole) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : "–");
  const labels = spec.stages.map((stage, i) => {
    if (i === 0) return stage.label;
    const previous = spec.stages[i - 1].value;
    const ofFirst = share(stage.value, first);
    return `${stage.label} · ${ofFirst} of first, ${share(stage.value, previous)} of previous`;
  });
  return barChart(el, {
    labels,
    series: [{ label: spec.label || "customers", values: spec.stages.map((s) => s.value) }],
    horizontal: true,
    format: spec.format,
    whole: spec.whole !== false,
  });
}

/**
 * A heatmap: a table whose cells are shaded by their value (cohort retention, segment moves).
 * spec: {rowLabels, columnLabels, values: [[number|null]], format?, corner?}
 */
export function heatmap(el, spec) {
  const show = spec.format || ((v) => String(v));
  const max = Math.max(0, ...spec.values.flat().filter((v) => typeof v === "number"));
  const scroll = document.createElement("div");
  scroll.className = "table-scroll";
  const table = document.createElement("table");
  table.className = "data heatmap";
  const head = table.createTHead().insertRow();
  const corner = document.createElement("th");
  corner.textContent = spec.corner || "";
  head.append(corner);
  for (const label of spec.columnLabels) {
    const th = document.createElement("th");
    th.textContent = label;
    head.append(th);
  }
  const body = table.createTBody();
  spec.values.forEach((row, r) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.className = "row";
    th.textContent = spec.rowLabels[r];
    tr.append(th);
    for (const value of row) {
      const td = tr.insertCell();
      td.className = "cell";
      if (typeof value === "number") {
        td.textContent = show(value);
        td.dataset.value = String(value);
        // Style set through the CSSOM, which the Content-Security-Policy allows.
        if (max > 0 && value > 0) {
          td.style.backgroundColor = translucent(color(0), 0.1 + 0.8 * (value / max));
        }
        if (max > 0 && value / max > 0.6) td.style.color = "#ffffff";
      }
    }
  });
  scroll.append(table);
  el.append(scroll);
  return table;
}

/**
 * A table.
 * spec: {columns: [{label, value: row => text|number|Node, numeric?, className?}], rows,
 *        rowClass?: row => class name or null (e.g. "flagged")}
 * A cell's value is set as text, or appended when it is an element (a row's button).
 */
export function table(el, spec) {
  const scroll = document.createElement("div");
  scroll.className = "table-scroll";
  const t = document.createElement("table");
  t.className = "data";
  const head = t.createTHead().insertRow();
  for (const column of spec.columns) {
    const th = document.createElement("th");
    th.textContent = column.label;
    if (column.numeric) th.className = "number";
    head.append(th);
  }
  const body = t.createTBody();
  for (const row of spec.rows) {
    const tr = body.insertRow();
    const kind = spec.rowClass ? spec.rowClass(row) : null;
    if (kind) tr.className = kind;
    for (const column of spec.columns) {
      const td = tr.insertCell();
      const value = column.value(row);
      if (value instanceof Node) td.append(value);
      else td.textContent = String(value);
      const classes = [column.numeric ? "number" : "", column.className || ""];
      td.className = classes.join(" ").trim();
    }
  }
  scroll.append(t);
  el.append(scroll);
  return t;
}

/**
 * Headline figures above a chart or a table: "sell rate 39%", "SKUs 118".
 * items: [{label, value: text, tone?: "good" | "bad"}] (a change shown as good or bad news)
 */
export function figures(el, items) {
  const list = document.createElement("dl");
  list.className = "figures";
  for (const item of items) {
    const box = document.createElement("div");
    const label = document.createElement("dt");
    label.textContent = item.label;
    const value = document.createElement("dd");
    value.textContent = String(item.value);
    if (item.tone) value.dataset.tone = item.tone;
    box.append(label, value);
    list.append(box);
  }
  el.append(list);
  return list;
}
