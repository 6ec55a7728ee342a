import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf, QueryOf } from "./types.js";

/** `client.apiKeys`: operator keys. The secret is returned by `create` only. */
export class ApiKeys {
  constructor(private readonly transport: Transport) {}

  /** Admins may create keys for anyone; others for themselves, in their own team. */
  create(body: BodyOf<typeof routes.createApiKey>, options?: RequestOptions) {
    return this.transport.call(routes.createApiKey, { body }, options);
  }

  list(filters?: ListFilters<typeof routes.listApiKeys>, options?: RequestOptions) {
    return paginate(this.transport, routes.listApiKeys, filters, options);
  }

  listPage(query?: QueryOf<typeof routes.listApiKeys>, options?: RequestOptions) {
    return this.transport.call(routes.listApiKeys, { query }, options);
  }

  /** The key stops working at once. */
  revoke(keyId: string, options?: RequestOptions) {
    return this.transport.call(routes.revokeApiKey, { params: { id: keyId } }, options);
  }
}
