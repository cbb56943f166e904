// What the page was served with: the shop's time zone, as minutes east of UTC.

const meta = document.querySelector('meta[name="shopgraph-utc-offset-minutes"]');
export const UTC_OFFSET_MINUTES = Number(meta ? meta.content : 0) || 0;

/** The offset as ISO 8601 writes it, e.g. "+08:00". */
export function offsetText(minutes = UTC_OFFSET_MINUTES) {
  const sign = minutes < 0 ? "-" : "+";
  const whole = Math.abs(minutes);
  const hours = String(Math.floor(whole / 60)).padStart(2, "0");
  return `${sign}${hours}:${String(whole % 60).padStart(2, "0")}`;
}
