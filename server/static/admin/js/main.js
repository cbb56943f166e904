// The dashboard: sign-in, the period, and every panel of the registry loaded side by side.

import { RequestFailed, SessionEnded, query } from "./api.js";
import { clear, status } from "./charts.js";
import { PANELS } from "./panels.js";
import { readHash, writeHash } from "./hash.js";
import { fromHash, mountPicker } from "./period.js";
import * as sessions from "./session.js";

const $ = (id) => document.getElementById(id);
const state = {
  session: null,
  period: fromHash(location.hash),
  // The panels' own choices (control.param → text), kept in the URL hash beside the period.
  choices: new Map(),
  generation: 0,
  timers: [],
};
const sections = new Map();

function buildPanels() {
  const container = $("panels");
  for (const definition of PANELS) {
    const section = document.createElement("section");
    section.className = definition.wide ? "panel wide" : "panel";
    section.dataset.panel = definition.id;
    section.dataset.state = "idle";
    const title = document.createElement("h2");
    title.textContent = definition.title;
    section.append(title);
    if (definition.note) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = definition.note;
      section.append(note);
    }
    let form = null;
    if (definition.control) {
      const { param } = definition.control;
      state.choices.set(param, readHash().get(param));
      form = document.createElement("form");
      form.className = "panel-controls";
      definition.control.build(form, (text) => choose(definition, text));
      section.append(form);
    }
    const body = document.createElement("div");
    body.className = "panel-body";
    section.append(body);
    container.append(section);
    sections.set(definition.id, { section, body, form, load: 0 });
  }
}

// A panel's own choice changed: kept in the URL, and that panel alone loads again.
function choose(definition, text) {
  const { param } = definition.control;
  state.choices.set(param, text);
  writeHash({ [param]: text });
  if (state.session) loadPanel(definition, state.generation, new Map());
}

// Run a document once per refresh, however many panels ask it.
function shared(requests, name, variables) {
  const key = `${name} ${JSON.stringify(variables)}`;
  if (!requests.has(key)) requests.set(key, query(name, variables, state.session.token));
  return requests.get(key);
}

async function loadPanel(definition, generation, requests) {
  const entry = sections.get(definition.id);
  const { section, body, form } = entry;
  // A later load of this panel (a new choice) makes this one stale.
  const load = ++entry.load;
  const stale = () => generation !== state.generation || load !== entry.load;
  section.dataset.state = "loading";
  try {
    const ask = (name, variables = {}) => shared(requests, name, variables);
    let choice = null;
    if (definition.control) {
      const text = state.choices.get(definition.control.param) ?? null;
      choice = await definition.control.resolve(text, { ask, form });
      if (stale()) return;
    }
    const variables = await definition.variables(state.period, { ask, choice });
    if (stale()) return;
    // Panels asking the same question share one request.
    const data = await shared(requests, definition.query, variables);
    if (stale()) return;
    const rows = definition.rows(data);
    clear(body);
    if (rows === null || rows === undefined || (Array.isArray(rows) && rows.length === 0)) {
      status(body, "no data");
      section.dataset.state = "empty";
      return;
    }
    definition.render(rows, body, state.period, actions(definition, generation));
    section.dataset.state = "ready";
  } catch (error) {
    if (stale()) return;
    if (error instanceof SessionEnded) {
      endSession("Your session has ended: sign in again.");
      return;
    }
    clear(body);
    const text =
      error instanceof RequestFailed ? error.message : `this panel failed: ${error.message}`;
    status(body, text, "error");
    section.dataset.state = "error";
  }
}

// What a panel's own buttons may do: run a document (a mutation) as the signed-in staff
// member, and load that panel again to show what changed.
function actions(definition, generation) {
  return {
    act: async (name, variables = {}) => {
      if (generation !== state.generation || !state.session) {
        throw new RequestFailed("the dashboard has moved on: try again");
      }
      try {
        return await query(name, variables, state.session.token);
      } catch (error) {
        if (error instanceof SessionEnded) endSession("Your session has ended: sign in again.");
        throw error;
      }
    },
    reload: () => {
      if (generation === state.generation && state.session) {
        return loadPanel(definition, generation, new Map());
      }
      return Promise.resolve();
    },
  };
}

function refresh() {
  state.generation += 1;
  const requests = new Map();
  return Promise.all(PANELS.map((p) => loadPanel(p, state.generation, requests)));
}

function clearTimers() {
  for (const timer of state.timers) clearTimeout(timer);
  state.timers = [];
}

// Staff tokens cannot be refreshed: warn a minute before the end, then ask to sign in again.
function watchExpiry(session) {
  clearTimers();
  if (session.expiresAt === null) return;
  const left = session.expiresAt - Date.now();
  const note = $("session-note");
  note.textContent = "";
  state.timers.push(
    setTimeout(() => {
      note.textContent = "session ends in a minute";
    }, Math.max(0, left - 60_000)),
  );
  state.timers.push(setTimeout(() => endSession("Your session has ended: sign in again."), left));
}

function showSignIn(message = "") {
  state.generation += 1;
  state.session = null;
  clearTimers();
  for (const { section, body } of sections.values()) {
    clear(body);
    section.dataset.state = "idle";
  }
  $("dashboard").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-message").textContent = message;
  $("email").focus();
}

function showDashboard(session) {
  state.session = session;
  $("who-name").textContent = session.staff ? session.staff.name || session.staff.email : "";
  $("who-role").textContent = session.staff ? session.staff.role : "";
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("dashboard").hidden = false;
  watchExpiry(session);
  refresh();
}

function endSession(message) {
  sessions.clear();
  showSignIn(message);
}

function wireSignIn() {
  const form = $("sign-in-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    $("sign-in-message").textContent = "";
    try {
      const session = await sessions.signIn($("email").value.trim(), $("password").value);
      $("password").value = "";
      showDashboard(session);
    } catch (error) {
      $("sign-in-message").textContent = error.message;
    } finally {
      button.disabled = false;
    }
  });
  $("sign-out").addEventListener("click", async () => {
    const session = state.session;
    showSignIn("Signed out.");
    await sessions.signOut(session);
  });
}

buildPanels();
wireSignIn();
mountPicker($("period"), state.period, (period) => {
  state.period = period;
  if (state.session) refresh();
});
const stored = sessions.current();
if (stored) showDashboard(stored);
else showSignIn();
