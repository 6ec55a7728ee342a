import { Option, type Command } from "commander";
import { HostStatus, HostType } from "@muster/contract";
import type { Host, HostWithRegistrationToken } from "@muster/sdk";
import { usageError } from "../exit.js";
import { ago, clean, details, shellWord, table } from "../format.js";
import { collect, duration, literals } from "../parse.js";
import type { Io, Session } from "../session.js";
import { startSpinner } from "../spinner.js";
import { act, collectList, listOptions, type ListOptions } from "./common.js";
import { hostCommandCommand, hostCommandsCommand } from "./host-commands.js";
import { tagCommand } from "./tags.js";

const POLL_INTERVAL_MS = 1000;

export function hostsCommand(parent: Command, io: Io): Command {
  const hosts = parent.command("hosts").description("create, list, inspect and delete hosts");

  hosts
    .command("create")
    .description("create a host and print its one-time registration token (valid 1 hour)")
    .addOption(new Option("--type <type>", "regular hosts are admin-only").choices(literals(HostType)).default("byoc"))
    .option("--team <team_id>", "the team of a BYOC host (default: the key's team)")
    .option("--provider <name>", "who runs the machine, e.g. hetzner")
    .option("--zone <availability_zone>", "where it runs, e.g. fsn1")
    .option("--tag <tag>", "a tag; repeat for more", collect)
    .option("--wait", "wait until the host's agent has registered and the host is online")
    .option("--timeout <duration>", "with --wait: give up after this long (default: when the token expires)", duration)
    .option("--agent-address <ip:port>", "the address the agent will listen on, for the printed command")
    .addHelpText(
      "after",
      `
The printed muster-agent command uses the control plane URL this CLI talks to
(--url / MUSTER_URL): set it to an address the host can reach.

Examples:
  $ muster hosts create --tag gpu --wait
  $ TOKEN=$(muster hosts create --json | jq -r .registration_token)`,
    )
    .action(
      act(io, async (session, options: CreateOptions) => {
        if (options.timeout !== undefined && !options.wait) throw usageError("--timeout only applies with --wait");
        const client = session.client();
        const created = await client.hosts.create(
          {
            type: options.type,
            ...(options.team && { team_id: options.team }),
            ...(options.provider && { provider: options.provider }),
            ...(options.zone && { availability_zone: options.zone }),
            ...(options.tag && { tags: options.tag }),
          },
          session.call,
        );
        printToken(session, created, options.agentAddress, "Created");
        if (!options.wait) return;
        const untilExpiry = Date.parse(created.registration_token_expires_at) - Date.now();
        await waitOnline(session, created.host, options.timeout ?? Math.max(untilExpiry, 1000));
      }),
    );

  listOptions(
    hosts
      .command("list")
      .alias("ls")
      .description("list the hosts this key may see")
      .addOption(new Option("--status <status>").choices(literals(HostStatus)))
      .addOption(new Option("--type <type>").choices(literals(HostType)))
      .option("--tag <tag>", "only hosts with this tag")
      .option("--team <team_id>", "only this team's hosts")
      .option("--arch <arch>", "only hosts of this architecture: amd64, arm64, … (x86_64, aarch64 work too)"),
  ).action(
    act(io, async (session, options: ListHostsOptions) => {
      const client = session.client();
      const filters = {
        ...(options.status && { status: options.status }),
        ...(options.type && { type: options.type }),
        ...(options.tag && { tag: options.tag }),
        ...(options.team && { team_id: options.team }),
        ...(options.arch && { arch: options.arch }),
      };
      const items = await collectList(session, (limit) => client.hosts.list({ ...filters, limit }, session.call), options, "hosts");
      session.emit(items, () => (items.length === 0 ? "" : hostTable(items)));
    }),
  );

  hosts
    .command("get")
    .argument("<host_id>")
    .description("show one host")
    .action(
      act(io, async (session, id: string) => {
        const host = await session.client().hosts.get(id, session.call);
        session.emit(host, () => hostDetails(host));
      }),
    );

  hosts
    .command("delete")
    .alias("rm")
    .argument("<host_id>")
    .description("delete a host; its credentials stop working at once")
    .action(
      act(io, async (session, id: string) => {
        await session.client().hosts.delete(id, session.call);
        if (!session.json) session.out(`Deleted host ${id}\n`);
      }),
    );

  hosts
    .command("token")
    .argument("<host_id>")
    .description("issue a new registration token; the host's earlier unused one dies")
    .option("--agent-address <ip:port>", "the address the agent will listen on, for the printed command")
    .action(
      act(io, async (session, id: string, options: { agentAddress?: string }) => {
        const created = await session.client().hosts.regenerateToken(id, session.call);
        printToken(session, created, options.agentAddress, "New registration token for");
      }),
    );

  hosts
    .command("probe")
    .argument("<host_id>")
    .description("call the host's agent over mTLS from the control plane: reachable, latency, certificate")
    .action(
      act(io, async (session, id: string) => {
        const probe = await session.client().hosts.probe(id, session.call);
        session.emit(probe, () =>
          details([
            ["Host", probe.host_id],
            ["Reachable", probe.reachable ? "yes" : "no"],
            ["Latency", probe.latency_ms === null ? null : `${probe.latency_ms} ms`],
            ["TLS", probe.tls_version],
            ["Certificate", probe.certificate?.fingerprint_sha256],
            ["Expires", probe.certificate?.expires_at],
            ["Agent", probe.agent_version],
            ["Error", probe.error],
          ]),
        );
      }),
    );

  tagCommand(hosts, io);
  hostCommandCommand(hosts, io);
  hostCommandsCommand(hosts, io);
  return hosts;
}

interface CreateOptions {
  type: Host["type"];
  team?: string;
  provider?: string;
  zone?: string;
  tag?: string[];
  wait?: boolean;
  timeout?: number;
  agentAddress?: string;
}

interface ListHostsOptions extends ListOptions {
  status?: Host["status"];
  type?: Host["type"];
  tag?: string;
  team?: string;
  arch?: string;
}

/** The exact command that enrols the machine (SPEC §7). */
export function agentCommand(url: string, token: string, address: string | undefined): string {
  return ["muster-agent", "--control-plane", shellWord(url), "--register", token, "--address", address ? shellWord(address) : "<IP:PORT>"].join(" ");
}

function printToken(session: Session, created: HostWithRegistrationToken, address: string | undefined, verb: string): void {
  const command = agentCommand(session.url, created.registration_token, address);
  const { host } = created;
  session.emit({ ...created, agent_command: command }, () =>
    [
      `${verb} host ${host.id} (${host.type}${host.team_id ? `, team ${host.team_id}` : ""})`,
      "",
      `Registration token (one use, valid until ${created.registration_token_expires_at}; shown once):`,
      `  ${created.registration_token}`,
      "",
      "On the machine, run:",
      `  ${command}`,
      ...(address ? [] : ["  (with the IP:PORT the agent listens on)"]),
      "",
    ].join("\n"),
  );
}

async function waitOnline(session: Session, host: Host, timeoutMs: number): Promise<void> {
  const client = session.client();
  // The spinner is for a person: only on a terminal, never in --json output.
  const spinner = session.json ? null : startSpinner(session.io.stderr, waitingText(host));
  try {
    const online = await client.hosts.waitUntilOnline(host.id, {
      timeoutMs,
      pollIntervalMs: POLL_INTERVAL_MS,
      signal: session.io.signal,
      onPoll: (seen) => seen.status !== "online" && spinner?.update(waitingText(seen)),
    });
    spinner?.stop();
    session.emit(online, () => `✔ ${online.id} is online: ${clean(online.hostname)} at ${clean(online.address)}\n`);
  } catch (error) {
    spinner?.stop();
    throw error;
  }
}

function waitingText(host: Host): string {
  return `Waiting for ${host.id} to come online (${host.status})… press Ctrl-C to stop waiting`;
}

export function hostTable(hosts: Host[]): string {
  return table(
    ["id", "type", "status", "team", "address", "hostname", "tags", "last seen"],
    hosts.map((h) => [h.id, h.type, h.status, h.team_id, h.address, h.hostname, h.tags.join(","), ago(h.last_heartbeat_at)]),
  );
}

function hostDetails(h: Host): string {
  const specs = h.cpu_cores === null ? null : `${h.arch ?? "?"}, ${h.cpu_cores} cores, ${h.memory_mb} MB memory, ${h.disk_gb} GB disk`;
  return details([
    ["ID", h.id],
    ["Type", h.type],
    ["Status", h.status],
    ["Team", h.team_id],
    ["Provider", h.provider],
    ["Zone", h.availability_zone],
    ["Address", h.address],
    ["Hostname", h.hostname],
    ["OS", h.os],
    ["Specs", specs],
    ["Agent", h.agent_version],
    ["Tags", h.tags.join(", ")],
    ["Last heartbeat", h.last_heartbeat_at && `${h.last_heartbeat_at} (${ago(h.last_heartbeat_at)})`],
    ["Registered", h.registered_at],
    ["Created", `${h.created_at} by ${h.created_by}`],
  ]);
}
