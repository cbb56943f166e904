// Numbers as operators read them.

const count = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export function formatCount(value) {
  return value === null || value === undefined ? "–" : count.format(value);
}

export function formatNumber(value) {
  return value === null || value === undefined ? "–" : decimal.format(value);
}

export function formatRatio(value) {
  return value === null || value === undefined ? "–" : percent.format(value);
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
