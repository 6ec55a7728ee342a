/**
 * Prints the OpenAPI document as the control plane serves it to a client that
 * reached it at the origin given (`servers` is set per request), for outside linters.
 */
import { VERSION } from "../src/app.js";
import { buildOpenApiDocument } from "../src/http/openapi.js";

const origin = process.argv[2];
if (!origin) {
  process.stderr.write("usage: tsx scripts/openapi.ts ORIGIN   (e.g. https://muster.internal)\n");
  process.exit(2);
}
process.stdout.write(`${JSON.stringify({ ...buildOpenApiDocument(VERSION), servers: [{ url: origin }] }, null, 2)}\n`);
