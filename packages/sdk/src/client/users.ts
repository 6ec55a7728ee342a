import { routes } from "@muster/contract";
import type { RequestOptions, Transport } from "../transport.js";
import { paginate, type ListFilters } from "./pagination.js";
import type { BodyOf, QueryOf } from "./types.js";

/** `client.users` (admin keys only). */
export class Users {
  constructor(private readonly transport: Transport) {}

  create(body: BodyOf<typeof routes.createUser>, options?: RequestOptions) {
    return this.transport.call(routes.createUser, { body }, options);
  }

  list(filters?: ListFilters<typeof routes.listUsers>, options?: RequestOptions) {
    return paginate(this.transport, routes.listUsers, filters, options);
  }

  listPage(query?: QueryOf<typeof routes.listUsers>, options?: RequestOptions) {
    return this.transport.call(routes.listUsers, { query }, options);
  }
}
