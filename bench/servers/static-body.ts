import { createServer } from "node:http";

/**
 * The machine's limit for the revocation-list benchmark: node:http sending a
 * buffer of BODY_BYTES from memory on every GET, and /healthz, nothing else.
 */
const body = Buffer.alloc(Number(process.env.BODY_BYTES), "a");
createServer((req, res) => {
  if (req.url === "/healthz") return void res.writeHead(200, { "Content-Type": "application/json" }).end('{"status":"ok"}');
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": String(body.length) }).end(body);
}).listen(Number(process.env.PORT), "127.0.0.1", () => process.stdout.write("ready\n"));
