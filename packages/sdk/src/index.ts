export * from "./errors.js";
export { Transport, type CallInput, type RequestOptions, type TransportOptions } from "./transport.js";
export * from "./client/index.js";
export * from "./agent/index.js";
