import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * A TCP load balancer in front of several control planes, as haproxy runs in
 * `mode tcp`: each connection goes whole to one backend (WebSocket upgrades
 * included), a backend that refuses the connection is skipped for the next
 * one, and a backend's death resets the connections it carried. Tests mark a
 * backend down (every connection to it reset, as `kill -9` does, and none
 * sent to it), or its open connections frozen (bytes stop flowing on them, as
 * with a hung process or a flow a NAT dropped, while new connections work),
 * so faults land at exactly the moment a test wants.
 */
export class TcpBalancer {
  private readonly server: Server;
  private readonly backends: { port: number; down: boolean; links: Set<Link> }[];
  private next = 0;

  private constructor(
    ports: number[],
    private readonly policy: "roundrobin" | "first",
  ) {
    this.backends = ports.map((port) => ({ port, down: false, links: new Set() }));
    this.server = createServer((client) => this.accept(client));
  }

  /**
   * Listens on a loopback port in front of `ports`: `roundrobin` spreads new
   * connections over the backends that are up; `first` sends each to the first
   * one up (one active plane, the others standing by).
   */
  static async start(ports: number[], policy: "roundrobin" | "first" = "roundrobin"): Promise<TcpBalancer> {
    const balancer = new TcpBalancer(ports, policy);
    balancer.server.listen(0, "127.0.0.1");
    await once(balancer.server, "listening");
    return balancer;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resets every connection to backend `index` and sends it no more, until `up`. */
  down(index: number): void {
    const backend = this.backends[index]!;
    backend.down = true;
    for (const link of backend.links) link.reset();
  }

  up(index: number): void {
    this.backends[index]!.down = false;
  }

  /** Stops carrying bytes on the connections open to backend `index` now, towards it (`upstream`) or both ways: what is sent on them is lost. */
  freeze(index: number, direction: "upstream" | "both"): void {
    for (const link of this.backends[index]!.links) link.frozen = direction;
  }

  /** Connections open to backend `index` now. */
  connections(index: number): number {
    return this.backends[index]!.links.size;
  }

  async close(): Promise<void> {
    for (const backend of this.backends) for (const link of backend.links) link.reset();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    client.pause();
    client.on("error", () => client.destroy());
    const order = this.candidates();
    const tryNext = (): void => {
      const index = order.shift();
      if (index === undefined) return void client.destroy();
      const backend = this.backends[index]!;
      const upstream = connect(backend.port, "127.0.0.1");
      upstream.once("error", () => (upstream.destroy(), tryNext()));
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        if (backend.down || client.destroyed) return void upstream.destroy();
        const link = new Link(client, upstream);
        backend.links.add(link);
        link.closed.then(() => backend.links.delete(link));
      });
    };
    tryNext();
  }

  /** The backends up, in the order this connection tries them. */
  private candidates(): number[] {
    const up = this.backends.map((backend, index) => (backend.down ? -1 : index)).filter((index) => index >= 0);
    if (this.policy === "first" || up.length === 0) return up;
    const start = this.next++ % up.length;
    return [...up.slice(start), ...up.slice(0, start)];
  }
}

/** One client connection and its backend connection, copying bytes both ways unless frozen; either end closing closes both. */
class Link {
  readonly closed: Promise<void>;
  frozen: "none" | "upstream" | "both" = "none";
  private ended = false;

  constructor(
    private readonly client: Socket,
    private readonly upstream: Socket,
  ) {
    client.on("data", (chunk) => {
      if (this.frozen === "none") upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (this.frozen !== "both") client.write(chunk);
    });
    const end = () => this.reset();
    client.on("close", end);
    upstream.on("close", end);
    upstream.on("error", end);
    this.closed = new Promise((resolve) => upstream.once("close", () => resolve()));
    client.resume();
  }

  /** Drops both connections at once, as a dead process's kernel does (RST, no goodbye). */
  reset(): void {
    if (this.ended) return;
    this.ended = true;
    this.client.resetAndDestroy();
    this.upstream.resetAndDestroy();
  }
}
