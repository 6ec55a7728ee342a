export * from "./api-keys.js";
export * from "./commands.js";
export * from "./hosts.js";
export * from "./system.js";
export * from "./users.js";
export * from "./pki.js";
export * from "./events.js";
