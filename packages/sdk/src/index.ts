export * from "./errors.js";
export { Transport, type CallInput, type RequestOptions, type TransportOptions } from "./transport.js";
