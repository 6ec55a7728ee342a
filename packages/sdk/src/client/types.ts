import type { RouteDef, RouteResponse } from "@muster/contract";
import type { Static, TSchema } from "@sinclair/typebox";

/*
 * The SDK declares no request or response shape of its own: every type a
 * method takes or returns is read off the contract's route table here, so a
 * field renamed in the contract breaks the SDK's type check at once.
 */

/** The JSON body a route takes. */
export type BodyOf<R extends RouteDef> = R["body"] extends TSchema ? Static<R["body"]> : never;

/** The query string a route takes (filters, `limit`, `cursor`). */
export type QueryOf<R extends RouteDef> = R["query"] extends TSchema ? Static<R["query"]> : never;

/** The success body of a route (`undefined` for 204). */
export type ResponseOf<R extends RouteDef> = RouteResponse<R>;
