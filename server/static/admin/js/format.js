// Numbers and moments as operators read them (moments in the shop's time zone).

import { UTC_OFFSET_MINUTES } from "./config.js";

const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const signed = new Intl.NumberFormat(undefined, {
  maximumFractionDigits: 2,
  signDisplay: "exceptZero",
});
const change = new Intl.NumberFormat(undefined, {
  style: "percent",
  maximumFractionDigits: 1,
  signDisplay: "exceptZero",
});

export function formatCount(value) {
  return value === null || value === undefined ? "–" : count.format(value);
}

export function formatNumber(value) {
  return value === null || value === undefined ? "–" : decimal.format(value);
}

export function formatRatio(value) {
  return value === null || value === undefined ? "–" : percent.format(value);
}

/** A relative change, signed: "+12.5%", "-3%", "0%". */
export function formatChange(value) {
  return value === null || value === undefined ? "–" : change.format(value);
}

/** A difference, signed: "+0.25", "-12", "0". */
export function formatDifference(value) {
  return value === null || value === undefined ? "–" : signed.format(value);
}

/** A Money or MoneyTotal ({amount: "12.34", currency}). */
export function formatMoney(money) {
  if (!money) return "–";
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency: money.currency,
    }).format(Number(money.amount));
  } catch {
    return `${money.amount} ${money.currency}`;
  }
}

/** A value of a KPI unit (COUNT, MONEY in minor units, RATIO 0-1, SCORE). */
export function formatUnit(value, unit, currency = "CNY") {
  if (value === null || value === undefined) return "–";
  switch (unit) {
    case "MONEY":
      return formatMoney({ amount: String(value / 100), currency });
    case "RATIO":
      return formatRatio(value);
    case "COUNT":
      return formatCount(value);
    default:
      return formatNumber(value);
  }
}

// An ISO moment as the shop's clock reads it: "2026-11-29T14:03:07" (no offset).
function shopClock(moment) {
  const time = Date.parse(moment);
  if (Number.isNaN(time)) return null;
  return new Date(time + UTC_OFFSET_MINUTES * 60_000).toISOString().slice(0, 19);
}

/** The shop day of an ISO moment: "2026-11-29". */
export function formatShopDay(moment) {
  const clock = moment ? shopClock(moment) : null;
  return clock ? clock.slice(0, 10) : "–";
}

/** An ISO moment on the shop's clock, to the minute: "2026-11-29 14:03". */
export function formatShopTime(moment) {
  const clock = moment ? shopClock(moment) : null;
  return clock ? `${clock.slice(0, 10)} ${clock.slice(11, 16)}` : "–";
}
