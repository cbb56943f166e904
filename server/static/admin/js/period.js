// The period every panel shows: the shop days from `from` to `to` (both included) and how a
// series is cut (DAY, WEEK, MONTH). Kept in the page's URL (#from=…&to=…&by=…, beside the
// panels' own choices) so that a view can be shared as a link.

import { UTC_OFFSET_MINUTES, offsetText } from "./config.js";
import { readHash, writeHash } from "./hash.js";

export const GRANULARITIES = ["DAY", "WEEK", "MONTH"];
// The longest period the server's series take (server/services/periods.py).
export const MAX_DAYS = 1096;
const DAY_MS = 86_400_000;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

function parseDay(text) {
  if (!ISO_DAY.test(text)) return null;
  const time = Date.parse(`${text}T00:00:00Z`);
  return Number.isNaN(time) ? null : time;
}

function dayOf(time) {
  return new Date(time).toISOString().slice(0, 10);
}

export function addDays(day, days) {
  return dayOf(parseDay(day) + days * DAY_MS);
}

/** Today in the shop's time zone. */
export function shopToday() {
  return dayOf(Date.now() + UTC_OFFSET_MINUTES * 60_000);
}

/** A period, with what queries take: its moments (the first day's start, and the start of the
 * day after the last: an exclusive end) in the shop's time zone. */
export function makePeriod(from, to, granularity) {
  const offset = offsetText();
  return {
    from,
    to,
    granularity,
    days: Math.round((parseDay(to) - parseDay(from)) / DAY_MS) + 1,
    fromMoment: `${from}T00:00:00${offset}`,
    toMoment: `${addDays(to, 1)}T00:00:00${offset}`,
  };
}

/** Why from/to/granularity make no period, or null when they do. */
export function problem(from, to, granularity) {
  const start = parseDay(from);
  const end = parseDay(to);
  if (start === null) return "from: not a day (YYYY-MM-DD)";
  if (end === null) return "to: not a day (YYYY-MM-DD)";
  if (end < start) return "to must not be before from";
  if ((end - start) / DAY_MS + 1 > MAX_DAYS) return `a period spans at most ${MAX_DAYS} days`;
  if (!GRANULARITIES.includes(granularity)) return "by: DAY, WEEK or MONTH";
  return null;
}

/** The last `days` days up to today, by day up to 90 days, by week up to a year. */
export function lastDays(days) {
  const to = shopToday();
  const granularity = days <= 90 ? "DAY" : days <= 366 ? "WEEK" : "MONTH";
  return makePeriod(addDays(to, 1 - days), to, granularity);
}

export function fromHash(hash) {
  const params = readHash(hash);
  const from = params.get("from");
  const to = params.get("to");
  const granularity = params.get("by") || "DAY";
  if (from && to && problem(from, to, granularity) === null) {
    return makePeriod(from, to, granularity);
  }
  return lastDays(30);
}

/** The period's keys of the URL hash. */
export function hashKeys(period) {
  return { from: period.from, to: period.to, by: period.granularity };
}

/** Wire the period form: `onChange(period)` runs for every new valid period. */
export function mountPicker(form, initial, onChange) {
  const from = form.querySelector("#period-from");
  const to = form.querySelector("#period-to");
  const granularity = form.querySelector("#period-granularity");
  const message = form.querySelector("#period-message");

  function show(period) {
    from.value = period.from;
    to.value = period.to;
    granularity.value = period.granularity;
    message.textContent = "";
  }

  function choose(period) {
    show(period);
    writeHash(hashKeys(period));
    onChange(period);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const wrong = problem(from.value, to.value, granularity.value);
    if (wrong) {
      message.textContent = wrong;
      return;
    }
    choose(makePeriod(from.value, to.value, granularity.value));
  });
  for (const button of form.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => choose(lastDays(Number(button.dataset.preset))));
  }
  show(initial);
}
