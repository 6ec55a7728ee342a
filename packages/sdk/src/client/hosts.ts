import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { HostCommands } from "./commands.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf, QueryOf } from "./types.js";
import { waitForHostStatus, type WaitOptions } from "./wait.js";

type Tag = BodyOf<typeof routes.addHostTag>["tag"];

/** A host's tags: `client.hosts.tags`. */
export class HostTags {
  constructor(private readonly transport: Transport) {}

  /** Adds a tag; adding one the host already has is a no-op. */
  add(hostId: string, tag: Tag, options?: RequestOptions) {
    return this.transport.call(routes.addHostTag, { params: { id: hostId }, body: { tag } }, options);
  }

  remove(hostId: string, tag: Tag, options?: RequestOptions) {
    return this.transport.call(routes.removeHostTag, { params: { id: hostId, tag } }, options);
  }

  list(hostId: string, options?: RequestOptions) {
    return this.transport.call(routes.listHostTags, { params: { id: hostId } }, options);
  }
}

/** `client.hosts`: SPEC §4's host endpoints, scoped by the key's role (§3). */
export class Hosts {
  readonly tags: HostTags;
  readonly commands: HostCommands;

  constructor(private readonly transport: Transport) {
    this.tags = new HostTags(transport);
    this.commands = new HostCommands(transport);
  }

  /** Creates a host; the response carries its one-time registration token (valid 1 hour). */
  create(body: BodyOf<typeof routes.createHost>, options?: RequestOptions) {
    return this.transport.call(routes.createHost, { body }, options);
  }

  get(hostId: string, options?: RequestOptions) {
    return this.transport.call(routes.getHost, { params: { id: hostId } }, options);
  }

  /** Every host matching the filters, fetched page by page as it is iterated. */
  list(filters?: ListFilters<typeof routes.listHosts>, options?: RequestOptions) {
    return paginate(this.transport, routes.listHosts, filters, options);
  }

  /** One page; pass the previous page's `next_cursor` as `cursor` for the next. */
  listPage(query?: QueryOf<typeof routes.listHosts>, options?: RequestOptions) {
    return this.transport.call(routes.listHosts, { query }, options);
  }

  /** Deletes a host; its credentials stop working at once. */
  delete(hostId: string, options?: RequestOptions) {
    return this.transport.call(routes.deleteHost, { params: { id: hostId } }, options);
  }

  /** Issues a new registration token; the host's earlier unused token dies. */
  regenerateToken(hostId: string, options?: RequestOptions) {
    return this.transport.call(routes.regenerateHostToken, { params: { id: hostId } }, options);
  }

  /**
   * Calls the host's agent over mutual TLS from the control plane: whether it
   * answered, how fast, and the certificate it serves. Recorded on the host as `mtls_enabled`.
   */
  probe(hostId: string, options?: RequestOptions) {
    return this.transport.call(routes.probeHost, { params: { id: hostId } }, options);
  }

  /** Polls the host until its agent has registered and heartbeated. */
  waitUntilOnline(hostId: string, options?: WaitOptions) {
    return waitForHostStatus((signal) => this.get(hostId, { signal }), "online", options);
  }
}
