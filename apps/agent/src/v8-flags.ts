import { setFlagsFromString } from "node:v8";

/*
 * Imported first by main.ts, so these apply before any other module runs. An
 * agent idles for days and does a few small things a second: its code stays
 * in V8's interpreter, so the optimising compilers' own code (several MiB of
 * the executable) is never paged in. Measured: 3.6 MiB less resident memory
 * after a minute, no difference in start-up (docs/benchmarks.md). Node 20's
 * single executables take no V8 flags at build time (`execArgv` came later),
 * and these two are honoured when set at run time.
 */
setFlagsFromString("--no-opt");
setFlagsFromString("--no-sparkplug");
