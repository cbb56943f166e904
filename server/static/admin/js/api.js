// GraphQL over HTTP to the server that served the page, with the staff token. The documents
// are files beside the page (queries/<name>.graphql): the same text any client would send,
// and checked against the schema by the test suite.

const ENDPOINT = document.querySelector('meta[name="shopgraph-graphql"]').content;

/** The token was refused (expired, revoked): the staff user must sign in again. */
export class SessionEnded extends Error {}

/** A request failed as a whole, or a panel's answer was an error. */
export class RequestFailed extends Error {}

const documents = new Map();

/** The text of queries/<name>.graphql (fetched once per page). */
export function loadDocument(name) {
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(name)) {
    return Promise.reject(new RequestFailed(`bad document name ${name}`));
  }
  if (!documents.has(name)) {
    const url = new URL(`../queries/${name}.graphql`, import.meta.url);
    const text = fetch(url, { cache: "no-cache" }).then((response) => {
      if (!response.ok) throw new RequestFailed(`document ${name}: HTTP ${response.status}`);
      return response.text();
    });
    // A failed fetch is tried again next time.
    text.catch(() => documents.delete(name));
    documents.set(name, text);
  }
  return documents.get(name);
}

/** POST a document; resolves to the whole answer ({data, errors}). */
export async function post(document, variables, token) {
  const headers = {
    "Content-Type": "application/json",
    Accept: "application/graphql-response+json, application/json",
  };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: "POST",
      headers,
      body: JSON.stringify({ query: document, variables }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new RequestFailed(`the server could not be reached (${error.message})`);
  }
  if (response.status === 401) throw new SessionEnded("the session has ended");
  let body;
  try {
    body = await response.json();
  } catch {
    throw new RequestFailed(`HTTP ${response.status}: not a GraphQL answer`);
  }
  return body;
}

/** The answer's errors in a line each: "CODE: message". */
export function describeErrors(errors) {
  return errors
    .map((e) => {
      const code = e.extensions && e.extensions.code;
      return code ? `${code}: ${e.message}` : e.message;
    })
    .join("\n");
}

/** Run a named document: its data, or RequestFailed with the errors' text. */
export async function query(name, variables, token) {
  const body = await post(await loadDocument(name), variables, token);
  if (body.errors && body.errors.length) throw new RequestFailed(describeErrors(body.errors));
  if (!body.data) throw new RequestFailed("no data in the answer");
  return body.data;
}

/** A union result: the success, or RequestFailed for a typed error (interface Error). */
export function unwrap(result) {
  if (result && typeof result.code === "string" && typeof result.message === "string") {
    const where = result.field ? ` (${result.field})` : "";
    throw new RequestFailed(`${result.code}: ${result.message}${where}`);
  }
  return result;
}
