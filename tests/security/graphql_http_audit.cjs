// Runs the graphql-http server audit against a live shopgraph and prints the results as JSON.
// Usage: node graphql_http_audit.cjs http://127.0.0.1:PORT/graphql
"use strict";
const { auditServer } = require("graphql-http");

async function main() {
  const url = process.argv[2];
  const results = await auditServer({ url });
  const out = [];
  for (const result of results) {
    const entry = { id: result.id, name: result.name, status: result.status };
    if (result.status !== "ok") {
      entry.reason = result.reason;
      entry.httpStatus = result.response.status;
      entry.contentType = result.response.headers.get("content-type");
      try {
        entry.body = await result.response.text();
      } catch (err) {
        entry.body = String(err);
      }
    }
    out.push(entry);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
