import { PROTOCOL_VERSION } from "@muster/contract";
import type { Config } from "../config.js";
import { DomainError, invalid } from "../errors.js";

/** The protocol header's value: a version number. */
const VERSION = /^\d{1,6}$/;

type ProtocolConfig = Pick<Config, "minProtocolVersion" | "agentUpgradeUrl">;

/** The sentence a too-old agent shows its operator, the same on the channel and on HTTP. */
export function tooOldMessage(config: ProtocolConfig, version: number): string {
  return (
    `this agent speaks protocol ${version}, but the control plane needs ${config.minProtocolVersion} or newer ` +
    `(it speaks ${PROTOCOL_VERSION}): upgrade muster-agent, see ${config.agentUpgradeUrl}`
  );
}

export function isTooOld(config: ProtocolConfig, version: number): boolean {
  return version < config.minProtocolVersion;
}

/** Whether a protocol header lets a request through as it is (the heartbeat lane's check; the app explains refusals). */
export function acceptsProtocolHeader(config: ProtocolConfig, raw: string | undefined): boolean {
  return raw === undefined || (VERSION.test(raw) && !isTooOld(config, Number(raw)));
}

/**
 * The protocol header of HTTP register and heartbeat. Absent is accepted, as
 * SPEC §5 defines those calls without it (curl, agents older than the channel);
 * a version below the minimum is refused so an old agent cannot slip in over HTTP.
 */
export function checkProtocolHeader(config: ProtocolConfig, raw: string | undefined): number | null {
  if (raw === undefined) return null;
  if (!VERSION.test(raw)) throw invalid("X-Muster-Protocol: expected the agent's protocol version, a whole number");
  const version = Number(raw);
  if (isTooOld(config, version)) throw new DomainError("upgrade_required", tooOldMessage(config, version));
  return version;
}
