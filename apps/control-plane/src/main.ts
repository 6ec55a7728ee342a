// First, before any other module loads: V8's settings for starting (young-generation.ts).
import "./young-generation.js";

await import("./serve.js");
