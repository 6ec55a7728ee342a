import { ensureBuilt as ensureExecutable } from "../../../scripts/ensure-built.js";

/** dist/muster-agent, or with `arm64` dist/muster-agent-linux-arm64, built first when missing or older than its sources. */
export function ensureBuilt(options: { arm64?: boolean } = {}): string {
  return ensureExecutable({ app: "agent", name: "muster-agent", ...options });
}
