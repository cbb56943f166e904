// The staff session: the access token of staffLogin, kept in sessionStorage (this tab only,
// gone when it closes). Staff tokens are short-lived and the API gives staff no refresh
// token: when one expires the dashboard asks to sign in again.

import { loadDocument, post, query, unwrap } from "./api.js";

const KEY = "shopgraph.admin.session";

function expiryOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

/** The stored session ({token, staff, expiresAt}), or null when none or expired. */
export function current() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    session = null;
  }
  if (!session || typeof session.token !== "string") return null;
  if (session.expiresAt !== null && session.expiresAt <= Date.now()) {
    clear();
    return null;
  }
  return session;
}

export function clear() {
  sessionStorage.removeItem(KEY);
}

function store(token, staff) {
  const session = { token, staff, expiresAt: expiryOf(token) };
  sessionStorage.setItem(KEY, JSON.stringify(session));
  return session;
}

/** Sign in with staffLogin: the session, or an Error whose message says why not. */
export async function signIn(email, password) {
  const data = await query("staffLogin", { input: { email, password } }, null);
  const result = unwrap(data.staffLogin);
  return store(result.accessToken, result.staff);
}

/** End the session on the server (the token stops working) and here. */
export async function signOut(session) {
  clear();
  if (!session) return;
  try {
    await post(await loadDocument("logout"), {}, session.token);
  } catch {
    // Signed out here whatever the server says; an expired token is already dead.
  }
}
