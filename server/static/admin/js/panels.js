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
//     rows: (data) => data.shopKpis,      // null or [] shows "no data"
//     render: (rows, el, period) => lineChart(el, kpiLineSpec(rows[0])),
//   });
//
// A panel whose query fails shows the error in its place; the others go on.

import { unwrap } from "./api.js";
import { barChart, heatmap, lineChart, table } from "./charts.js";
import { formatCount, formatMoney, formatNumber, formatRatio, formatUnit } from "./format.js";

export const PANELS = [];

export function panel(definition) {
  for (const key of ["id", "title", "query", "variables", "rows", "render"]) {
    if (!(key in definition)) throw new Error(`panel ${definition.id}: no ${key}`);
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
 * last year, with an optional alert threshold. */
export function kpiLineSpec(kpi, { threshold = null, currency = "CNY" } = {}) {
  const format = (value) => formatUnit(value, kpi.unit, currency);
  return {
    labels: kpi.points.map((p) => p.start),
    series: [
      { label: kpi.label, values: kpi.points.map((p) => p.value) },
      { label: "previous period", values: kpi.points.map((p) => p.previous), dashed: true },
      { label: "last year", values: kpi.points.map((p) => p.lastYear), dashed: true },
    ],
    threshold: threshold === null ? null : { label: "threshold", value: threshold },
    format,
  };
}

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
