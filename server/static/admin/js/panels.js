// The dashboard's panels: a registry. A panel is one GraphQL query (a document in
// queries/<query>.graphql), the variables it takes from the period, the rows it shows, and a
// renderer (charts.js). Adding a panel is one more `panel({...})`:
//
//   panel({
//     id: "gmv",                          // unique; the element's data-panel
//     title: "GMV",
//     note: "What the shop sold",         // optional line under the title
//     query: "shopKpis",                  // queries/shopKpis.graphql
//     variables: (period) => ({ input: { from: period.from, to: period.to,
//                                        granularity: period.granularity, keys: ["gmv"] } }),
//     rows: (data) => unwrap(data.shopKpis).kpis, // null or [] shows "no data"
//     render: (rows, el, period) => lineChart(el, kpiLineSpec(rows[0])),
//   });
//
// `variables(period, {ask, choice})` may be async: `ask(name, variables)` runs another document
// first (once per refresh, shared by the panels), e.g. to learn the viewer's permissions. A
// panel may have a choice of its own beside the period (`control`, kept in the URL hash under
// `control.param`): `control.build(form, choose)` makes its fields once, and
// `await control.resolve(text, {ask, form})` turns the hash's text into the `choice` its
// variables take, before every load.
//
// `wide: true` gives a panel the page's whole width (a grid of charts). `render` gets a fourth
// argument for a panel's own buttons: `act(name, variables)` runs a document (a mutation) as
// the signed-in staff member and resolves to its data, `reload()` loads the panel again.
//
// A panel whose query fails shows the error in its place; the others go on.

import { RequestFailed, unwrap } from "./api.js";
import {
  aside,
  barChart,
  color,
  figures,
  funnelChart,
  heatmap,
  lineChart,
  status,
  table,
} from "./charts.js";
import {
  formatChange,
  formatCount,
  formatDifference,
  formatNumber,
  formatRatio,
  formatMoney,
  formatShopDay,
  formatShopTime,
  formatUnit,
} from "./format.js";

export const PANELS = [];

export function panel(definition) {
  for (const key of ["id", "title", "query", "variables", "rows", "render"]) {
    if (!(key in definition)) throw new Error(`panel ${definition.id}: no ${key}`);
  }
  if (definition.control) {
    for (const key of ["param", "build", "resolve"]) {
      if (!(key in definition.control)) {
        throw new Error(`panel ${definition.id}: no control.${key}`);
      }
    }
  }
  if (PANELS.some((p) => p.id === definition.id)) throw new Error(`panel ${definition.id} twice`);
  PANELS.push(definition);
  return definition;
}

// The GraphQL enum CustomerSegment, in its order (the operators' table).
export const SEGMENT_ORDER = [
  "IMPORTANT_VALUE",
  "IMPORTANT_DEVELOP",
  "IMPORTANT_KEEP",
  "IMPORTANT_WIN_BACK",
  "GENERAL_VALUE",
  "GENERAL_DEVELOP",
  "GENERAL_KEEP",
  "GENERAL_WIN_BACK",
];

/** A KPI of shopKpis as a line chart: the period, the previous period and the same period
 * last year, with an optional alert threshold (`thresholds`: several, [{label, value}]). */
export function kpiLineSpec(kpi, { threshold = null, thresholds = [], currency = "CNY" } = {}) {
  const format = (value) => formatUnit(value, kpi.unit, currency);
  return {
    labels: kpi.points.map((p) => p.start),
    series: [
      { label: kpi.label, values: kpi.points.map((p) => p.value) },
      { label: "previous period", values: kpi.points.map((p) => p.previous), dashed: true },
      { label: "last year", values: kpi.points.map((p) => p.lastYear), dashed: true },
    ],
    thresholds: [
      ...(threshold === null ? [] : [{ label: "threshold", value: threshold }]),
      ...thresholds,
    ],
    format,
  };
}

// --- KPI trends and alerts --------------------------------------------------------------------

// The headline KPIs, in the order drawn: one shopKpis request asks them all.
export const KPI_KEYS = [
  "gmv",
  "orders",
  "aov",
  "visitors",
  "conversion_rate",
  "repurchase_rate",
  "refund_rate",
  "csat",
  "nps",
  "private_domain_share",
];
// Every point of a series is an object of the query's cost (docs/security.md): a longer
// period asked by day is drawn by week (92 days of 10 KPIs are about 930 points; a year by
// day would be 3,700).
export const KPI_MAX_DAILY_DAYS = 92;
const GRANULARITY_WORDS = { DAY: "day", WEEK: "week", MONTH: "month" };

/** The granularity the KPI trends are asked by: the period's, but by week instead of by day
 * beyond KPI_MAX_DAILY_DAYS days. */
export function kpiGranularity(period) {
  return period.granularity === "DAY" && period.days > KPI_MAX_DAILY_DAYS
    ? "WEEK"
    : period.granularity;
}

/** The thresholds an alert rule draws on a KPI's chart: the enabled (and active) ABOVE and
 * BELOW rules on that KPI at the chart's granularity. */
export function kpiThresholds(rules, key, granularity) {
  return rules
    .filter(
      (r) =>
        r.active &&
        r.kpi === key &&
        r.granularity === granularity &&
        (r.condition === "ABOVE" || r.condition === "BELOW"),
    )
    .map((r) => ({ label: r.name, value: r.threshold }));
}

// A change is good news when it goes the way the KPI should.
// Good or bad news, or none for a move the figure shows as zero ("0%" is never coloured).
// ``places``: the decimals the figure shows of ``change`` (a change is shown in per cent).
function tone(change, higherIsBetter, places) {
  if (change === null || change === undefined) return null;
  const factor = 10 ** places;
  if (Math.round(Math.abs(change) * factor) === 0) return null;
  return change > 0 === higherIsBetter ? "good" : "bad";
}

/** A KPI's total against an earlier one, as a figure: the relative change (the API's), but
 * for a score (CSAT, NPS) the difference — a relative change of a score that may be 0 or
 * below (NPS) means nothing. */
export function kpiComparison(kpi, label, change, earlier) {
  if (kpi.unit === "SCORE") {
    const difference =
      kpi.total === null || earlier === null || earlier === undefined ? null : kpi.total - earlier;
    return {
      label,
      value: formatDifference(difference),
      tone: tone(difference, kpi.higherIsBetter, 2),
    };
  }
  return { label, value: formatChange(change), tone: tone(change, kpi.higherIsBetter, 3) };
}

function hasFigures(kpi) {
  const some = (v) => v !== null && v !== undefined && v !== 0;
  return some(kpi.total) || kpi.points.some((p) => some(p.value));
}

panel({
  id: "kpi-trends",
  title: "KPI trends",
  note:
    "Each KPI over the period (blue), the period before (green, dashed) and the same dates " +
    "last year (orange, dashed); its total against both (for CSAT and NPS the difference), " +
    "green when it is good news. A red dashed line is an alert rule's threshold at this " +
    "granularity.",
  wide: true,
  query: "shopKpis",
  variables: (period) => ({
    input: {
      from: period.from,
      to: period.to,
      granularity: kpiGranularity(period),
      keys: KPI_KEYS,
    },
  }),
  rows: (data) => {
    const report = unwrap(data.shopKpis);
    if (report.refreshedAt === null) {
      throw new RequestFailed(
        "The KPI figures have not been computed yet: the job core.kpis builds them within " +
          "minutes of the server's start (or run shopgraph insights kpis-rebuild).",
      );
    }
    return report.kpis.some(hasFigures) ? { report, rules: data.alertRules.nodes } : null;
  },
  render: ({ report, rules }, el, period) => {
    const by = report.granularity;
    const asOf = formatShopTime(report.refreshedAt);
    const notes = [`By ${GRANULARITY_WORDS[by]}; figures as of ${asOf}.`];
    if (by !== period.granularity) {
      notes.unshift(
        `Drawn by ${GRANULARITY_WORDS[by]}: over ${KPI_MAX_DAILY_DAYS} days, a point a day ` +
          "would spend too much of the query-cost budget.",
      );
    }
    aside(el, notes.join(" "));
    const grid = document.createElement("div");
    grid.className = "kpi-grid";
    el.append(grid);
    for (const kpi of report.kpis) {
      const cell = document.createElement("div");
      cell.className = "kpi";
      cell.dataset.kpi = kpi.key;
      const title = document.createElement("h3");
      title.textContent = kpi.label;
      cell.append(title);
      grid.append(cell);
      figures(cell, [
        { label: "total", value: formatUnit(kpi.total, kpi.unit) },
        kpiComparison(kpi, "vs previous", kpi.change, kpi.previousTotal),
        kpiComparison(kpi, "vs last year", kpi.lastYearChange, kpi.lastYearTotal),
      ]);
      const thresholds = kpiThresholds(rules, kpi.key, by);
      lineChart(cell, { ...kpiLineSpec(kpi, { thresholds }), compact: true });
    }
  },
});

// The open alerts shown, newest first (the count says how many there are in all).
const ALERTS_SHOWN = 20;
const ALERT_KINDS = { THRESHOLD: "rule", ANOMALY: "anomaly", STOCK_OUT: "stock-out" };
const CONDITION_WORDS = {
  ABOVE: "above",
  BELOW: "below",
  RISES_BY: "rises by",
  FALLS_BY: "falls by",
};

function alertSubject(alert) {
  if (alert.product) {
    const sku = alert.variant ? ` (${alert.variant.sku})` : "";
    return `${alert.product.name}${sku}`;
  }
  return alert.kpiLabel ?? alert.kpi ?? "–";
}

/** A rule's condition as operators read it: "below 2", "above ¥50,000.00", "falls by 70%". */
export function ruleCondition(rule) {
  const words = CONDITION_WORDS[rule.condition] ?? rule.condition;
  const change = rule.condition === "RISES_BY" || rule.condition === "FALLS_BY";
  const value = change
    ? formatRatio(rule.threshold)
    : rule.kpiUnit
      ? formatUnit(rule.threshold, rule.kpiUnit)
      : formatNumber(rule.threshold);
  return `${words} ${value}`;
}

function acknowledgeButton(alert, { act, reload }) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Acknowledge";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const data = await act("acknowledgeAlert", { input: { alertId: alert.id } });
      unwrap(data.acknowledgeAlert);
      await reload();
    } catch (error) {
      const message = document.createElement("span");
      message.className = "message";
      message.setAttribute("role", "alert");
      message.textContent = error.message;
      button.replaceWith(message);
    }
  });
  return button;
}

panel({
  id: "alerts",
  title: "Open alerts",
  note:
    "Raised by the alert rules, the anomaly detector and the stock-out check, newest first; " +
    "bad news marked. Acknowledging one (alerts.manage) takes it off this list.",
  query: "alerts",
  variables: () => ({ first: ALERTS_SHOWN }),
  rows: (data) => (data.alerts.nodes.length ? data : null),
  render: (data, el, period, actions) => {
    const open = data.alerts.nodes;
    const manage = data.viewerPermissions.includes("alerts.manage");
    figures(el, [
      { label: "open alerts", value: formatCount(data.alerts.totalCount) },
      { label: "bad news (shown)", value: formatCount(open.filter((a) => a.badNews).length) },
    ]);
    const columns = [
      { label: "when", value: (a) => formatShopTime(a.createdAt), className: "nowrap" },
      { label: "kind", value: (a) => ALERT_KINDS[a.kind] ?? a.kind },
      { label: "KPI or product", value: alertSubject },
      { label: "alert", value: (a) => a.message },
      { label: "", value: (a) => (a.badNews ? "bad news" : ""), className: "news" },
    ];
    // Only for staff who may acknowledge: the API would refuse the others.
    if (manage) columns.push({ label: "", value: (a) => acknowledgeButton(a, actions) });
    table(el, { columns, rows: open, rowClass: (a) => (a.badNews ? "flagged" : null) });
  },
});

function searchPeriod(period) {
  return { from: period.fromMoment, to: period.toMoment };
}

function movementsInput(period) {
  return { input: { from: period.from, to: period.to, granularity: period.granularity } };
}

panel({
  id: "segment-sizes",
  title: "Customer segments (RFM)",
  note: "Customers in each segment now; moves in and out since the period's first day.",
  query: "customerSegments",
  variables: (period) => ({ since: period.fromMoment }),
  rows: (data) => {
    const segments = data.customerSegments;
    return segments.some((s) => s.count > 0) ? segments : null;
  },
  render: (segments, el) =>
    barChart(el, {
      labels: segments.map((s) => s.label),
      series: [
        { label: "customers", values: segments.map((s) => s.count) },
        { label: "moved in", values: segments.map((s) => s.movedIn) },
        { label: "moved out", values: segments.map((s) => s.movedOut) },
      ],
      format: formatCount,
      whole: true,
    }),
});

panel({
  id: "segment-movements",
  title: "Segment changes over time",
  note:
    "Moves between segments, first segments (first purchases) and customers left without " +
    "a purchase, per bucket.",
  query: "customerSegmentMovements",
  variables: movementsInput,
  rows: (data) => {
    const found = unwrap(data.customerSegmentMovements);
    return found.total > 0 ? found.buckets : null;
  },
  render: (buckets, el) =>
    lineChart(el, {
      labels: buckets.map((b) => b.start),
      series: [
        { label: "moved", values: buckets.map((b) => b.moved) },
        { label: "entered", values: buckets.map((b) => b.entered) },
        { label: "left", values: buckets.map((b) => b.left) },
      ],
      format: formatCount,
      fromZero: true,
      whole: true,
    }),
});

panel({
  id: "segment-flows",
  title: "Who moved where",
  note: "Changes over the period, from the row's segment to the column's.",
  query: "customerSegmentMovements",
  variables: movementsInput,
  rows: (data) => {
    const found = unwrap(data.customerSegmentMovements);
    return found.flows.length ? found.flows : null;
  },
  render: (flows, el) => {
    const labels = new Map();
    for (const flow of flows) {
      if (flow.from) labels.set(flow.from, flow.fromLabel);
      if (flow.to) labels.set(flow.to, flow.toLabel);
    }
    // Rows and columns in the segments' order, with only the segments that moved; first
    // purchases head the rows and "no purchase left" ends the columns.
    const seen = (key, segment) => flows.some((f) => f[key] === segment);
    const sources = [null, ...SEGMENT_ORDER].filter((s) => seen("from", s));
    const targets = [...SEGMENT_ORDER, null].filter((s) => seen("to", s));
    const counts = new Map(flows.map((f) => [`${f.from}>${f.to}`, f.count]));
    return heatmap(el, {
      corner: "from \\ to",
      rowLabels: sources.map((s) => (s === null ? "(first purchase)" : labels.get(s))),
      columnLabels: targets.map((s) => (s === null ? "(no purchase left)" : labels.get(s))),
      values: sources.map((a) => targets.map((b) => counts.get(`${a}>${b}`) ?? null)),
      format: formatCount,
    });
  },
});

panel({
  id: "searches-without-results",
  title: "Searches without results",
  note: "What customers looked for and the shop did not have: the most such searches first.",
  query: "searchesWithoutResults",
  variables: (period) => ({ period: searchPeriod(period), first: 10 }),
  rows: (data) => unwrap(data.searchesWithoutResults).terms,
  render: (terms, el) =>
    barChart(el, {
      labels: terms.map((t) => t.query),
      series: [
        { label: "searches without results", values: terms.map((t) => t.zeroResultSearches) },
        { label: "searchers", values: terms.map((t) => t.searchers) },
      ],
      horizontal: true,
      format: formatCount,
      whole: true,
    }),
});

panel({
  id: "low-click-through",
  title: "Searches with low click-through",
  note: "Searched at least 3 times, followed by a click less than 10% of the time.",
  query: "searchesWithLowClickThrough",
  variables: (period) => ({
    period: searchPeriod(period),
    first: 10,
    minSearches: 3,
    maxClickThroughRate: 0.1,
  }),
  rows: (data) => unwrap(data.searchesWithLowClickThrough).terms,
  render: (terms, el) =>
    table(el, {
      columns: [
        { label: "search", value: (t) => t.query },
        { label: "searches", value: (t) => formatCount(t.searches), numeric: true },
        { label: "searchers", value: (t) => formatCount(t.searchers), numeric: true },
        { label: "results (avg)", value: (t) => formatNumber(t.averageResultCount), numeric: true },
        { label: "click-through", value: (t) => formatRatio(t.clickThroughRate), numeric: true },
      ],
      rows: terms,
    }),
});

// --- product health, rising searches, demand forecasts ----------------------------------------

// What productHealth's stockValue needs, as costPrice does.
const COST_PERMISSIONS = ["pricing.manage", "catalog.manage"];
// Rows of productHealth's lists and of the rising search terms.
const LIST_LIMIT = 20;

/** Whether the viewer may see cost prices: only then is stockValue asked for (an analyst
 * would get null and a FORBIDDEN error). */
async function maySeeCosts(ask) {
  const data = await ask("viewerPermissions");
  return COST_PERMISSIONS.some((p) => data.viewerPermissions.includes(p));
}

// The period's new products are those created from its first day on: newWithinDays counts
// back from the day after `to` (createdFrom = to + 1 − newWithinDays = from).
async function productHealthInput(period, { ask }) {
  return {
    input: {
      from: period.from,
      to: period.to,
      newWithinDays: Math.min(366, period.days),
      limit: LIST_LIMIT,
    },
    costs: await maySeeCosts(ask),
  };
}

function productHealth(data) {
  return unwrap(data.productHealth);
}

const SOLD_COLOR = "#16a34a";
const IDLE_COLOR = "#d1d5db";

panel({
  id: "sell-rate",
  title: "Sell rate (动销率)",
  note:
    "SKUs on sale that sold at least one unit in the period, overall and per category: the " +
    "lowest rate first.",
  query: "productHealth",
  variables: productHealthInput,
  rows: (data) => {
    const found = productHealth(data);
    return found.sellRate.skus > 0 ? found.sellRate : null;
  },
  render: (sellRate, el) => {
    figures(el, [
      { label: "sell rate", value: formatRatio(sellRate.rate) },
      {
        label: "SKUs that sold",
        value: `${formatCount(sellRate.sellingSkus)} of ${formatCount(sellRate.skus)}`,
      },
      { label: "categories", value: formatCount(sellRate.categoryCount) },
    ]);
    const categories = sellRate.categories;
    return barChart(el, {
      labels: categories.map(
        (c) => `${c.name === null ? "(no category)" : c.name} · ${formatRatio(c.rate)}`,
      ),
      series: [
        {
          label: "SKUs that sold",
          values: categories.map((c) => c.sellingSkus),
          color: SOLD_COLOR,
        },
        {
          label: "SKUs that sold nothing",
          values: categories.map((c) => c.skus - c.sellingSkus),
          color: IDLE_COLOR,
        },
      ],
      horizontal: true,
      stacked: true,
      format: formatCount,
      whole: true,
    });
  },
});

panel({
  id: "new-products",
  title: "New products' sell-through",
  note:
    "Products created in the period: units sold / (units sold + units on hand now), the " +
    "lowest first.",
  query: "productHealth",
  variables: productHealthInput,
  rows: (data) => {
    const found = productHealth(data);
    return found.newProducts.products > 0 ? found.newProducts : null;
  },
  render: (news, el) => {
    figures(el, [
      { label: `new since ${news.createdFrom}`, value: formatCount(news.products) },
      { label: "units sold", value: formatCount(news.unitsSold) },
      { label: "on hand", value: formatCount(news.onHand) },
      { label: "sell-through", value: formatRatio(news.sellThrough) },
    ]);
    return table(el, {
      columns: [
        { label: "product", value: (p) => p.name },
        { label: "SKU", value: (p) => p.sku },
        { label: "created", value: (p) => formatShopDay(p.createdAt) },
        { label: "sold", value: (p) => formatCount(p.unitsSold), numeric: true },
        { label: "on hand", value: (p) => formatCount(p.onHand), numeric: true },
        { label: "sell-through", value: (p) => formatRatio(p.sellThrough), numeric: true },
      ],
      rows: news.items,
    });
  },
});

panel({
  id: "slow-movers",
  title: "Slow movers",
  note:
    "SKUs with stock on hand, the longest days of cover first (on hand / units sold a day); " +
    "those that sold nothing lead.",
  query: "productHealth",
  variables: productHealthInput,
  rows: (data) => {
    const found = productHealth(data);
    return found.slowMovers.count > 0 ? found.slowMovers : null;
  },
  render: (slow, el) => {
    figures(el, [{ label: "SKUs with stock on hand", value: formatCount(slow.count) }]);
    const columns = [
      { label: "SKU", value: (s) => s.sku },
      { label: "product", value: (s) => s.productName },
      { label: "sold", value: (s) => formatCount(s.unitsSold), numeric: true },
      { label: "on hand", value: (s) => formatCount(s.onHand), numeric: true },
      { label: "a day", value: (s) => formatNumber(s.dailyUnits), numeric: true },
      {
        label: "days of cover",
        value: (s) => (s.daysOfCover === null ? "no sales" : formatCount(s.daysOfCover)),
        numeric: true,
      },
    ];
    // Present only when it was asked for (the viewer may see cost prices).
    if (slow.items.some((s) => "stockValue" in s)) {
      columns.push({
        label: "stock value",
        value: (s) => formatMoney(s.stockValue),
        numeric: true,
      });
    }
    return table(el, { columns, rows: slow.items });
  },
});

panel({
  id: "stock-outs",
  title: "Stock-outs",
  note: "SKUs that sold in the period and have nothing available now: sales being lost.",
  query: "productHealth",
  variables: productHealthInput,
  rows: (data) => {
    const found = productHealth(data);
    return found.stockOuts.count > 0 ? found.stockOuts : null;
  },
  render: (outs, el) => {
    figures(el, [{ label: "SKUs sold out", value: formatCount(outs.count) }]);
    return table(el, {
      columns: [
        { label: "SKU", value: (s) => s.sku },
        { label: "product", value: (s) => s.productName },
        { label: "sold", value: (s) => formatCount(s.unitsSold), numeric: true },
        { label: "on hand", value: (s) => formatCount(s.onHand), numeric: true },
        { label: "available", value: (s) => formatCount(s.available), numeric: true },
        { label: "last sold", value: (s) => formatShopTime(s.lastSoldAt) },
      ],
      rows: outs.items,
    });
  },
});

panel({
  id: "rising-searches",
  title: "Rising searches",
  note:
    "Searched more than in the period as long before, beyond chance (score > 0), the surest " +
    "rise first. Unmet demand: at least half of its searches found nothing.",
  query: "risingSearchTerms",
  variables: (period) => ({ input: { from: period.from, to: period.to, limit: LIST_LIMIT } }),
  rows: (data) => unwrap(data.risingSearchTerms).terms,
  render: (terms, el) =>
    table(el, {
      columns: [
        { label: "search", value: (t) => t.query },
        { label: "searches", value: (t) => formatCount(t.searches), numeric: true },
        { label: "before", value: (t) => formatCount(t.previousSearches), numeric: true },
        // exp(growth) = (searches + ½) / (before + ½): how many times as often.
        { label: "growth", value: (t) => `×${formatNumber(Math.exp(t.growth))}`, numeric: true },
        { label: "score", value: (t) => formatNumber(t.score), numeric: true },
        { label: "found nothing", value: (t) => formatRatio(t.zeroResultShare), numeric: true },
        { label: "", value: (t) => (t.unmetDemand ? "unmet demand" : "") },
      ],
      rows: terms,
      rowClass: (t) => (t.unmetDemand ? "flagged" : null),
    }),
});

// The demand forecast's target in the URL hash: "category:<slug>" or "sku:<SKU>".
const FORECAST_PARAM = "forecast";
const FORECAST_DAYS = 28;
const FORECAST_HISTORY_DAYS = 56;
const FORECAST_LEVELS = [80, 95];
// As the server checks a SKU (server/services/catalog.py), case aside.
const SKU = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function parseForecastTarget(text) {
  const match = /^(category|sku):(.+)$/.exec(text || "");
  if (!match) return null;
  const [, kind, value] = match;
  if (kind === "sku") return SKU.test(value) ? { kind, sku: value } : null;
  return /^[a-z0-9-]{1,100}$/.test(value) ? { kind, slug: value } : null;
}

const forecastTarget = {
  param: FORECAST_PARAM,

  build(form, choose) {
    const select = document.createElement("select");
    select.name = "category";
    select.setAttribute("aria-label", "category");
    const sku = document.createElement("input");
    sku.name = "sku";
    sku.type = "text";
    sku.maxLength = 64;
    sku.placeholder = "or a product's SKU";
    sku.setAttribute("aria-label", "SKU");
    sku.autocomplete = "off";
    const button = document.createElement("button");
    button.type = "submit";
    button.textContent = "Forecast";
    const message = document.createElement("span");
    message.className = "message";
    message.setAttribute("role", "alert");
    form.append(select, sku, button, message);

    select.addEventListener("change", () => {
      if (!select.value) return;
      sku.value = "";
      message.textContent = "";
      choose(`category:${select.value}`);
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = sku.value.trim();
      if (!text) {
        if (select.value) choose(`category:${select.value}`);
        return;
      }
      if (!SKU.test(text)) {
        message.textContent = "a SKU is letters, digits, '.', '_' and '-' (at most 64)";
        return;
      }
      message.textContent = "";
      choose(`sku:${text.toUpperCase()}`);
    });
  },

  // The target: the hash's category or product, else the first top-level category. The
  // select is filled (again) from the categories query.
  async resolve(text, { ask, form }) {
    const { categories } = await ask("categories");
    const select = form.querySelector("select");
    const sku = form.querySelector("input[name=sku]");
    fillCategories(select, categories);
    const target = parseForecastTarget(text);
    if (target && target.kind === "sku") {
      select.value = "";
      sku.value = target.sku;
      const { productBySku } = await ask("productBySku", { sku: target.sku });
      if (!productBySku) throw new RequestFailed(`no product has the SKU ${target.sku}`);
      return { productId: productBySku.id };
    }
    sku.value = "";
    const all = categories.flatMap((c) => [c, ...c.children]);
    const slug = target ? target.slug : categories.length ? categories[0].slug : null;
    if (slug === null) throw new RequestFailed("the shop has no category: give a product's SKU");
    const category = all.find((c) => c.slug === slug);
    select.value = category ? category.slug : "";
    if (!category) throw new RequestFailed(`no category ${slug}: choose one`);
    return { categoryId: category.id };
  },
};

// Top-level categories as groups, each first as itself (with the categories below it), then
// its children.
function fillCategories(select, categories) {
  const options = [new Option("—", "")];
  options[0].disabled = true;
  const groups = categories.map((top) => {
    const group = document.createElement("optgroup");
    group.label = top.name;
    group.append(
      new Option(`${top.name} (all)`, top.slug),
      ...top.children.map((child) => new Option(child.name, child.slug)),
    );
    return group;
  });
  select.replaceChildren(...options, ...groups);
}

panel({
  id: "demand-forecast",
  title: "Demand forecast",
  note:
    `Units sold a day over the last ${FORECAST_HISTORY_DAYS} days, then the forecast of the ` +
    `next ${FORECAST_DAYS} from today, with its 80% and 95% intervals (whatever the period).`,
  query: "demandForecast",
  control: forecastTarget,
  variables: (period, { choice }) => ({
    input: {
      ...choice,
      days: FORECAST_DAYS,
      historyDays: FORECAST_HISTORY_DAYS,
      levels: FORECAST_LEVELS,
    },
  }),
  rows: (data) => unwrap(data.demandForecast),
  render: (forecast, el) => {
    const of = forecast.product
      ? `${forecast.product.name} (${forecast.product.sku})`
      : `${forecast.category.name} (category)`;
    figures(el, [
      { label: "forecast of", value: of },
      {
        label: `units expected in ${forecast.points.length} days`,
        value: formatNumber(forecast.total),
      },
      { label: "model", value: forecast.model },
    ]);
    // Nothing ever sold: every figure is 0, and there is nothing to draw but why.
    if (forecast.model === "NONE") return status(el, forecast.reason);
    return lineChart(el, forecastSpec(forecast));
  },
});

/** A forecast as a line chart: the actual units, then the expected units and their intervals
 * (the widest band first). */
export function forecastSpec(forecast) {
  const history = forecast.actuals.length;
  const gap = (n) => Array(n).fill(null);
  const levels = [...forecast.levels].sort((a, b) => b - a);
  const bound = (level, side) => [
    ...gap(history),
    ...forecast.points.map((p) => {
      const interval = p.intervals.find((i) => i.level === level);
      return interval ? interval[side] : null;
    }),
  ];
  return {
    labels: [...forecast.actuals.map((a) => a.day), ...forecast.points.map((p) => p.day)],
    series: [
      {
        label: "units sold",
        values: [...forecast.actuals.map((a) => a.units), ...gap(forecast.points.length)],
      },
      {
        label: "forecast",
        values: [...gap(history), ...forecast.points.map((p) => p.mean)],
        dashed: true,
      },
    ],
    bands: levels.map((level) => ({
      label: `${level}% interval`,
      lower: bound(level, "lower"),
      upper: bound(level, "upper"),
    })),
    format: formatNumber,
    fromZero: true,
  };
}

panel({
  id: "channel-attribution",
  title: "Channels (last touch)",
  note:
    "Paid orders and their revenue credited to the channel the customer bought through; " +
    "marketing cost, ROI = (revenue − cost) / cost, and cost per new customer.",
  query: "channelAttribution",
  variables: (period) => ({
    input: { from: period.from, to: period.to, model: "LAST_TOUCH" },
  }),
  rows: (data) => {
    const found = unwrap(data.channelAttribution);
    const rows = found.channels.filter((c) => c.orders > 0 || Number(c.cost.amount) > 0);
    return rows.length ? rows : null;
  },
  render: (channels, el) =>
    table(el, {
      columns: [
        { label: "channel", value: (c) => c.label + (c.privateDomain ? " ·私域" : "") },
        { label: "orders", value: (c) => formatNumber(c.orders), numeric: true },
        { label: "revenue", value: (c) => formatMoney(c.revenue), numeric: true },
        { label: "cost", value: (c) => formatMoney(c.cost), numeric: true },
        { label: "ROI", value: (c) => formatRatio(c.roi), numeric: true },
        { label: "new customers", value: (c) => formatNumber(c.newCustomers), numeric: true },
        { label: "CAC", value: (c) => formatMoney(c.cac), numeric: true },
      ],
      rows: channels,
    }),
});

// --- the shopping funnel, cohorts, satisfaction and the alert rules -------------------------

const FUNNEL_STEPS = {
  VIEW: "viewed a product",
  ADD_TO_CART: "added to cart",
  ORDER: "ordered",
  PAID: "paid",
};

panel({
  id: "shopping-funnel",
  title: "Shopping funnel",
  note:
    "Visitors of the period at each step, having done every step before it: each bar with " +
    "its share of the first step and of the step before (the step's conversion).",
  query: "shoppingFunnel",
  variables: (period) => ({ input: { from: period.from, to: period.to } }),
  rows: (data) => {
    const funnel = unwrap(data.shoppingFunnel);
    return funnel.steps.length && funnel.steps[0].visitors > 0 ? funnel : null;
  },
  render: (funnel, el) => {
    const paid = funnel.steps[funnel.steps.length - 1];
    figures(el, [
      { label: "visitors", value: formatCount(funnel.visitors) },
      { label: "viewed a product", value: formatCount(funnel.steps[0].visitors) },
      { label: "paid", value: formatCount(paid.visitors) },
      { label: "conversion (paid / viewed)", value: formatRatio(funnel.overallConversionRate) },
    ]);
    return funnelChart(el, {
      label: "visitors",
      stages: funnel.steps.map((s) => ({
        label: FUNNEL_STEPS[s.step] ?? s.step,
        value: s.visitors,
      })),
      format: formatCount,
    });
  },
});

// Cohorts: at least a year of them, to the period's last month (at most the query's 36).
const COHORT_MIN_MONTHS = 12;
const COHORT_MAX_MONTHS = 36;

/** The cohorts a period shows: the months it spans, at least 12 and at most 36, ending with
 * its last month. */
export function cohortWindow(period) {
  const [fromYear, fromMonth] = period.from.split("-").map(Number);
  const [toYear, toMonth] = period.to.split("-").map(Number);
  const spanned = (toYear - fromYear) * 12 + (toMonth - fromMonth) + 1;
  const months = Math.min(COHORT_MAX_MONTHS, Math.max(COHORT_MIN_MONTHS, spanned));
  const first = toYear * 12 + (toMonth - 1) - (months - 1);
  const year = Math.floor(first / 12);
  const month = String((first % 12) + 1).padStart(2, "0");
  return { fromMonth: `${year}-${month}-01`, months };
}

panel({
  id: "cohort-retention",
  title: "Cohort retention",
  note:
    "Customers by the month of their first purchase (the row, with its size), and the share " +
    "of them who bought again each month after (the column: +1 is the next month). At least " +
    "the 12 months up to the period's end.",
  query: "cohortRetention",
  variables: (period) => ({ input: cohortWindow(period) }),
  rows: (data) => {
    const found = unwrap(data.cohortRetention);
    return found.cohorts.some((c) => c.size > 0) ? found.cohorts : null;
  },
  render: (cohorts, el) => {
    const longest = Math.max(0, ...cohorts.map((c) => c.retention.length));
    const offsets = Array.from({ length: longest }, (_, i) => i + 1);
    return heatmap(el, {
      corner: "cohort · customers",
      rowLabels: cohorts.map((c) => `${c.month.slice(0, 7)} · ${formatCount(c.size)}`),
      columnLabels: offsets.map((o) => `+${o}`),
      values: cohorts.map((c) =>
        offsets.map((o) => c.retention.find((r) => r.offset === o)?.share ?? null),
      ),
      format: formatRatio,
    });
  },
});

/** A satisfaction report: the period's figures, then CSAT per group (bars, each labelled with
 * its response rate) and NPS per group where the group has NPS answers. */
function renderSatisfaction(report, el) {
  const total = report.total;
  figures(el, [
    { label: "surveys sent", value: formatCount(total.sent) },
    { label: "response rate", value: formatRatio(total.responseRate) },
    { label: "CSAT (1–5)", value: formatNumber(total.csatAverage) },
    { label: "satisfied (4–5)", value: formatRatio(total.csatSatisfiedShare) },
    { label: "NPS", value: formatNumber(total.nps) },
  ]);
  const label = (g) => `${g.label} · ${formatRatio(g.responseRate)} answered`;
  const rated = report.groups.filter((g) => g.csatAverage !== null);
  if (rated.length) {
    barChart(el, {
      labels: rated.map(label),
      series: [{ label: "CSAT (1–5)", values: rated.map((g) => g.csatAverage) }],
      horizontal: true,
      format: formatNumber,
    });
  }
  const promoted = report.groups.filter((g) => g.nps !== null);
  if (promoted.length) {
    barChart(el, {
      labels: promoted.map(label),
      series: [{ label: "NPS", values: promoted.map((g) => g.nps), color: color(2) }],
      horizontal: true,
      format: formatNumber,
    });
  } else {
    aside(el, "NPS: no NPS answer in these groups (the periodic NPS survey is about no order).");
  }
}

function satisfactionPanel(id, title, note, by) {
  panel({
    id,
    title,
    note,
    query: "satisfaction",
    variables: (period) => ({ input: { from: period.from, to: period.to, by } }),
    rows: (data) => {
      const report = unwrap(data.satisfaction);
      return report.total.sent > 0 && report.groups.length ? report : null;
    },
    render: renderSatisfaction,
  });
}

satisfactionPanel(
  "satisfaction-carriers",
  "Satisfaction by carrier",
  "Surveys sent in the period (above: all of them); per carrier, the delivery surveys' CSAT " +
    "and the share answered.",
  "CARRIER",
);
satisfactionPanel(
  "satisfaction-channels",
  "Satisfaction by channel",
  "Surveys about an order sent in the period, by the channel the order came through: CSAT, " +
    "NPS and the share answered.",
  "CHANNEL",
);

function ruleState(rule) {
  if (!rule.enabled) return "paused";
  return rule.active ? "on" : "KPI not offered";
}

panel({
  id: "alert-rules",
  title: "Alert rules",
  note:
    "What raises an alert: a KPI's value of a day, week or month against a threshold or the " +
    "period before. The ABOVE and BELOW ones are drawn on the KPI trends.",
  query: "alerts",
  variables: () => ({ first: ALERTS_SHOWN }),
  rows: (data) => data.alertRules.nodes,
  render: (rules, el) =>
    table(el, {
      columns: [
        { label: "rule", value: (r) => r.name },
        { label: "KPI", value: (r) => r.kpiLabel ?? r.kpi },
        { label: "by", value: (r) => GRANULARITY_WORDS[r.granularity] ?? r.granularity },
        { label: "when", value: ruleCondition },
        { label: "state", value: ruleState },
      ],
      rows: rules,
      rowClass: (r) => (r.active ? null : "muted"),
    }),
});
