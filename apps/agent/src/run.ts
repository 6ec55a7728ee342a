import {
  AgentEndpoint,
  createMetricsSampler,
  CredentialsFileError,
  detectHostSpecs,
  FileCredentialStore,
  HostAgent,
  RegistrationError,
  type AgentExit,
} from "@muster/sdk";
import { splitAddress, type AgentConfig } from "./cli.js";
import { EXIT } from "./exit-codes.js";
import type { Logger } from "./log.js";
import { AGENT_VERSION } from "./version.js";

export interface RunIo {
  log: Logger;
  /** Calls `handler` on SIGTERM/SIGINT. */
  onSignal(handler: (signal: string) => void): void;
  fetch?: typeof fetch;
}

/**
 * The whole life of `muster-agent`: register if asked, then heartbeat until a
 * signal, a deletion or a refused refresh. Returns the exit status; logs why.
 */
export async function runAgent(config: AgentConfig, io: RunIo): Promise<number> {
  const { log } = io;
  const agent = new HostAgent({
    controlPlane: config.controlPlane,
    credentials: new FileCredentialStore(config.credentialsFile),
    specs: () => detectHostSpecs(),
    metrics: createMetricsSampler(),
    agentVersion: AGENT_VERSION,
    userAgent: `muster-agent/${AGENT_VERSION}`,
    logger: log,
    fetch: io.fetch,
  });

  let signalled: string | null = null;
  io.onSignal((signal) => {
    if (signalled) return;
    signalled = signal;
    log.info({ signal }, "stopping");
    void agent.stop();
  });

  log.info(
    { version: AGENT_VERSION, control_plane: config.controlPlane, credentials_file: config.credentialsFile, pid: process.pid },
    "muster-agent starting",
  );

  try {
    if (config.registrationToken) {
      await agent.register({ token: config.registrationToken, address: config.address! });
      if (config.registerOnly) {
        log.info({ host_id: agent.hostId }, "registered; exiting as --register-only asks");
        return EXIT.ok;
      }
    }
    if (signalled) return EXIT.ok;
    if (config.repin) await agent.repin();
    await agent.start();
  } catch (error) {
    if (error instanceof RegistrationError) {
      log.error({}, `registration failed: ${error.message}`);
      return EXIT.registration;
    }
    if (error instanceof CredentialsFileError) {
      const hint = error.problem === "missing" ? " (--register TOKEN --address IP:PORT)" : "";
      log.error({ problem: error.problem }, `${error.message}${hint}`);
      return EXIT.credentials;
    }
    if (signalled) return EXIT.ok;
    throw error;
  }

  // The endpoint's TLS set-up would hold the first heartbeat back: it starts once that heartbeat is answered, accepted or not.
  const endpoint = (await firstAnswer(agent)) ? await startEndpoint(agent, config, log) : null;
  const exit = await agent.done;
  await endpoint?.stop();
  return exitStatus(exit, log, config, agent.credentials?.address ?? config.address);
}

/**
 * What to do once the refresh token is refused (it expired during a long
 * offline spell, or was revoked): where a new registration token comes from
 * and the exact command that registers this machine again, as it runs now.
 */
export function reregistrationAdvice(hostId: string, config: AgentConfig, address: string | null): string {
  const command = [
    "muster-agent",
    `--control-plane ${config.controlPlane}`,
    "--register <NEW_TOKEN>",
    `--address ${address ?? "<IP:PORT>"}`,
    `--credentials-file ${config.credentialsFile}`,
  ].join(" ");
  return (
    `re-registration needed: the control plane no longer accepts this host's credentials. ` +
    `Get a new registration token for ${hostId} (an operator runs \`muster hosts token ${hostId}\`, or POST /v1/hosts/${hostId}/token), ` +
    `then run: ${command}`
  );
}

/** Resolves true once the first heartbeat is accepted or has failed, false if the agent stopped first. */
function firstAnswer(agent: HostAgent): Promise<boolean> {
  return new Promise((resolve) => {
    const answered = () => {
      offs.forEach((off) => off());
      resolve(true);
    };
    const offs = [agent.once("heartbeat", answered), agent.once("heartbeatFailed", answered)];
    void agent.done.then(() => {
      offs.forEach((off) => off());
      resolve(false);
    });
  });
}

/**
 * The mTLS endpoint the control plane calls (`POST /v1/hosts/{id}/probe`). It is
 * an extra: when the host has no certificate or the port is taken, the agent
 * says so and keeps heartbeating.
 */
async function startEndpoint(agent: HostAgent, config: AgentConfig, log: Logger): Promise<AgentEndpoint | null> {
  const credentials = agent.credentials!;
  if (!credentials.tls) {
    log.info({ host_id: credentials.host_id }, "no host certificate (the control plane issued none): the mTLS endpoint is off");
    return null;
  }
  // The address the control plane calls, and no other interface: the endpoint has no business on the rest.
  const listen = config.listen ?? (credentials.address ? splitAddress(credentials.address) : null);
  if (!listen) {
    log.warn({ host_id: credentials.host_id }, "no address to listen at (--listen IP:PORT): the mTLS endpoint is off");
    return null;
  }
  const endpoint = new AgentEndpoint({ agent, port: listen.port, host: listen.host, agentVersion: AGENT_VERSION, logger: log });
  try {
    const port = await endpoint.start();
    log.info({ host_id: credentials.host_id, listen: `${listen.host}:${port}` }, "mTLS endpoint listening");
    return endpoint;
  } catch (error) {
    log.warn({ host_id: credentials.host_id, err: (error as Error).message }, "cannot start the mTLS endpoint; heartbeating without it");
    return null;
  }
}

function exitStatus(exit: AgentExit, log: Logger, config: AgentConfig, address: string | null): number {
  switch (exit.reason) {
    case "stopped":
      return EXIT.ok;
    case "reregistration_required":
      log.error({ host_id: exit.hostId, exit_code: EXIT.reregister, reason: exit.message }, reregistrationAdvice(exit.hostId, config, address));
      return EXIT.reregister;
    case "host_deleted":
      log.error({ host_id: exit.hostId, exit_code: EXIT.deleted }, `host ${exit.hostId} was deleted in the control plane; its credentials are removed; exiting`);
      return EXIT.deleted;
    case "protocol_rejected":
      log.error({ host_id: exit.hostId, exit_code: EXIT.upgrade }, `the control plane refuses this agent: ${exit.message}`);
      return EXIT.upgrade;
    case "certificate_pin_mismatch":
      log.error({ host_id: exit.hostId, exit_code: EXIT.pinMismatch }, exit.message);
      return EXIT.pinMismatch;
  }
}
