import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { QueryOf } from "./types.js";

/** `client.audit`: newest first; admins see everything, owners their team's. */
export class Audit {
  constructor(private readonly transport: Transport) {}

  list(filters?: ListFilters<typeof routes.listAudit>, options?: RequestOptions) {
    return paginate(this.transport, routes.listAudit, filters, options);
  }

  listPage(query?: QueryOf<typeof routes.listAudit>, options?: RequestOptions) {
    return this.transport.call(routes.listAudit, { query }, options);
  }
}
