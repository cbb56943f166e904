// The page's URL hash holds what a view shows, so that it can be shared as a link: the period
// (from, to, by) and any panel's own choice (e.g. forecast=category:digital). Each part writes
// its keys and leaves the others be.

// Written first, in this order, so that a link reads the same whoever wrote it last.
const FIRST = ["from", "to", "by"];

/** The hash's keys and values. */
export function readHash(hash = location.hash) {
  return new URLSearchParams(hash.replace(/^#/, ""));
}

// Encoded as a URL's fragment needs, with ":" and "," kept readable.
function encode(text) {
  return encodeURIComponent(text).replace(/%3A/gi, ":").replace(/%2C/gi, ",");
}

/** The hash with `changes` applied (a null value drops its key). */
export function hashWith(changes, hash = location.hash) {
  const params = readHash(hash);
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined) params.delete(key);
    else params.set(key, value);
  }
  const keys = [...new Set([...FIRST.filter((k) => params.has(k)), ...params.keys()])];
  return `#${keys.map((k) => `${encode(k)}=${encode(params.get(k))}`).join("&")}`;
}

/** Write `changes` into the page's URL (no new history entry). */
export function writeHash(changes) {
  history.replaceState(null, "", hashWith(changes));
}
