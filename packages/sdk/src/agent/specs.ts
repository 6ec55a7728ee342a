import { createHmac } from "node:crypto";
import { readFileSync, statfsSync } from "node:fs";
import * as os from "node:os";
import { canonicalArch, type HeartbeatMetrics, type RegisterHostBody } from "@muster/contract";

/** What an agent reports about its machine when it registers. */
export type HostSpecs = Omit<RegisterHostBody, "token" | "address">;

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

const MACHINE_ID_FILES = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/**
 * The machine's specs as the kernel and the root file system see them:
 * architecture (`uname -m`, in Go's names: amd64, arm64, …), CPU cores, total
 * memory, root-disk size, hostname and OS; and, where systemd or D-Bus keep
 * one, an ID of the machine.
 */
export function detectHostSpecs(options: { rootPath?: string; machineIdFiles?: string[] } = {}): HostSpecs {
  const specs: HostSpecs = {
    arch: canonicalArch(label(os.machine(), 32) ?? os.arch()),
    cpu_cores: Math.max(1, os.cpus().length || os.availableParallelism()),
    memory_mb: Math.max(1, Math.floor(os.totalmem() / MIB)),
    disk_gb: diskTotalGb(options.rootPath ?? "/"),
  };
  const hostname = label(os.hostname(), 255);
  if (hostname) specs.hostname = hostname;
  const system = label(describeOs(), 255);
  if (system) specs.os = system;
  const machineId = appSpecificMachineId(options.machineIdFiles ?? MACHINE_ID_FILES);
  if (machineId) specs.machine_id = machineId;
  return specs;
}

/**
 * The machine ID is meant to stay private to the machine (machine-id(5)), so
 * what leaves it is an HMAC keyed by it, as systemd's app-specific IDs are:
 * stable for this machine, meaningless elsewhere. The control plane uses it to
 * recognise a registration retried by the same machine.
 */
function appSpecificMachineId(files: string[]): string | undefined {
  for (const file of files) {
    try {
      const id = readFileSync(file, "utf8").trim();
      if (/^[0-9a-f]{32}$/i.test(id)) return createHmac("sha256", id.toLowerCase()).update("muster-agent").digest("hex");
    } catch {
      // Not every system has it.
    }
  }
  return undefined;
}

function diskTotalGb(path: string): number {
  try {
    const stats = statfsSync(path);
    return Math.floor((stats.blocks * stats.bsize) / GIB);
  } catch {
    return 0;
  }
}

/** "Debian GNU/Linux 12 (bookworm); Linux 6.1.0-18-amd64", or the kernel alone where there is no os-release. */
function describeOs(): string {
  const kernel = `${os.type()} ${os.release()}`;
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      const pretty = /^PRETTY_NAME=(?:"([^"]*)"|(.*))$/m.exec(readFileSync(file, "utf8"));
      const name = pretty?.[1] ?? pretty?.[2];
      if (name) return `${name}; ${kernel}`;
    } catch {
      // Not every system has it.
    }
  }
  return kernel;
}

/** Printable, bounded text the contract's Label accepts, or undefined. */
function label(value: string, max: number): string | undefined {
  // eslint-disable-next-line no-control-regex
  const clean = value.replace(/[\u0000-\u001f]/g, "").trim().slice(0, max);
  return clean.length > 0 ? clean : undefined;
}

/**
 * Live figures for heartbeats: CPU use since the previous sample, memory and
 * root-disk use, load and uptime. Each call is cheap (no child processes).
 */
export function createMetricsSampler(options: { rootPath?: string } = {}): () => HeartbeatMetrics {
  let previous = cpuTimes();
  return () => {
    const current = cpuTimes();
    const busy = current.busy - previous.busy;
    const total = current.total - previous.total;
    previous = current;
    const metrics: HeartbeatMetrics = {
      memory_used_mb: Math.max(0, Math.floor((os.totalmem() - os.freemem()) / MIB)),
      load_1m: Math.max(0, os.loadavg()[0] ?? 0),
      uptime_s: Math.max(0, Math.floor(os.uptime())),
    };
    if (total > 0) metrics.cpu_percent = Math.min(100, Math.max(0, Math.round((busy / total) * 1000) / 10));
    try {
      const stats = statfsSync(options.rootPath ?? "/");
      metrics.disk_used_gb = Math.max(0, Math.floor(((stats.blocks - stats.bfree) * stats.bsize) / GIB));
    } catch {
      // Leave it out rather than report a wrong figure.
    }
    return metrics;
  };
}

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const { user, nice, sys, idle, irq } = cpu.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + idle + irq;
  }
  return { busy, total };
}
