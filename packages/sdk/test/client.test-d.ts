import type { Static } from "@sinclair/typebox";
import { describe, expectTypeOf, it } from "vitest";
import type * as contract from "@muster/contract";
import type { ErrorCode, RouteResponse, routes } from "@muster/contract";
import type {
  MusterApiError,
  MusterClient,
  MusterConnectionError,
  MusterError,
  Host,
  Paginator,
} from "../src/index.js";

/*
 * The SDK's types must be the contract's: each check below compares what a
 * client method takes or returns with the contract's schema (Static<>) or its
 * route table (RouteResponse<>), never with a shape written out here.
 */
declare const client: MusterClient;
type Routes = typeof routes;
type Page<T> = { items: T[]; next_cursor: string | null };

describe("MusterClient types come from the contract", () => {
  it("hosts", () => {
    expectTypeOf(client.hosts.create).parameter(0).toEqualTypeOf<Static<typeof contract.CreateHostBody>>();
    expectTypeOf(client.hosts.create).returns.resolves.toEqualTypeOf<RouteResponse<Routes["createHost"]>>();
    expectTypeOf(client.hosts.create).returns.resolves.toEqualTypeOf<Static<typeof contract.HostWithRegistrationToken>>();
    expectTypeOf(client.hosts.get).returns.resolves.toEqualTypeOf<Static<typeof contract.Host>>();
    expectTypeOf(client.hosts.regenerateToken).returns.resolves.toEqualTypeOf<RouteResponse<Routes["regenerateHostToken"]>>();
    expectTypeOf(client.hosts.delete).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(client.hosts.waitUntilOnline).returns.resolves.toEqualTypeOf<Static<typeof contract.Host>>();
    expectTypeOf<Host>().toEqualTypeOf<Static<typeof contract.Host>>();
  });

  it("host tags", () => {
    expectTypeOf(client.hosts.tags.add).parameter(1).toEqualTypeOf<Static<typeof contract.AddTagBody>["tag"]>();
    expectTypeOf(client.hosts.tags.add).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(client.hosts.tags.remove).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(client.hosts.tags.list).returns.resolves.toEqualTypeOf<Static<typeof contract.TagList>>();
  });

  it("lists: an async iterator of the contract's items, and whole pages", () => {
    expectTypeOf(client.hosts.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.Host>>>();
    expectTypeOf(client.hosts.list).parameter(0).toEqualTypeOf<Omit<Static<typeof contract.ListHostsQuery>, "cursor"> | undefined>();
    expectTypeOf(client.hosts.listPage).parameter(0).toEqualTypeOf<Static<typeof contract.ListHostsQuery> | undefined>();
    expectTypeOf(client.hosts.listPage).returns.resolves.toEqualTypeOf<RouteResponse<Routes["listHosts"]>>();
    expectTypeOf(client.hosts.listPage).returns.resolves.toEqualTypeOf<Page<Static<typeof contract.Host>>>();
    expectTypeOf(client.users.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.User>>>();
    expectTypeOf(client.teams.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.Team>>>();
    expectTypeOf(client.apiKeys.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.ApiKey>>>();
    expectTypeOf(client.audit.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.AuditEntry>>>();
    expectTypeOf(client.audit.list).parameter(0).toEqualTypeOf<Omit<Static<typeof contract.ListAuditQuery>, "cursor"> | undefined>();
    expectTypeOf(client.users.listPage).returns.resolves.toEqualTypeOf<RouteResponse<Routes["listUsers"]>>();
    expectTypeOf(client.teams.listPage).returns.resolves.toEqualTypeOf<RouteResponse<Routes["listTeams"]>>();
    expectTypeOf(client.apiKeys.listPage).returns.resolves.toEqualTypeOf<RouteResponse<Routes["listApiKeys"]>>();
    expectTypeOf(client.audit.listPage).returns.resolves.toEqualTypeOf<RouteResponse<Routes["listAudit"]>>();
    expectTypeOf(client.hosts.commands.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.Command>>>();
    expectTypeOf(client.hosts.commands.list).parameter(1).toEqualTypeOf<Omit<Static<typeof contract.ListCommandsQuery>, "cursor"> | undefined>();
    expectTypeOf(client.hosts.commands.listPage).returns.resolves.toEqualTypeOf<Page<Static<typeof contract.Command>>>();

    const iterate = async () => {
      for await (const host of client.hosts.list({ tag: "gpu" })) expectTypeOf(host).toEqualTypeOf<Static<typeof contract.Host>>();
      for await (const page of client.hosts.list().pages()) expectTypeOf(page.items).toEqualTypeOf<Static<typeof contract.Host>[]>();
      expectTypeOf(await client.teams.list().toArray()).toEqualTypeOf<Static<typeof contract.Team>[]>();
    };
    expectTypeOf(iterate).toBeFunction();
  });

  it("users, teams, members, API keys, me", () => {
    expectTypeOf(client.users.create).parameter(0).toEqualTypeOf<Static<typeof contract.CreateUserBody>>();
    expectTypeOf(client.users.create).returns.resolves.toEqualTypeOf<Static<typeof contract.UserResponse>>();
    expectTypeOf(client.teams.create).parameter(0).toEqualTypeOf<Static<typeof contract.CreateTeamBody>>();
    expectTypeOf(client.teams.create).returns.resolves.toEqualTypeOf<Static<typeof contract.TeamResponse>>();
    expectTypeOf(client.teams.members.add).parameter(1).toEqualTypeOf<Static<typeof contract.AddMemberBody>>();
    expectTypeOf(client.teams.members.add).returns.resolves.toEqualTypeOf<Static<typeof contract.MemberResponse>>();
    expectTypeOf(client.teams.members.remove).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(client.apiKeys.create).parameter(0).toEqualTypeOf<Static<typeof contract.CreateApiKeyBody>>();
    expectTypeOf(client.apiKeys.create).returns.resolves.toEqualTypeOf<Static<typeof contract.CreateApiKeyResponse>>();
    expectTypeOf(client.apiKeys.revoke).returns.resolves.toEqualTypeOf<undefined>();
    expectTypeOf(client.me).returns.resolves.toEqualTypeOf<Static<typeof contract.MeResponse>>();
  });

  it("refuses what the contract refuses", () => {
    // @ts-expect-error: not a host type
    void client.hosts.create({ type: "vm" });
    // @ts-expect-error: unknown fields are rejected by the API, so by the types too
    void client.hosts.create({ type: "byoc", colour: "red" });
    // @ts-expect-error: not a status
    void client.hosts.list({ status: "dead" });
    // @ts-expect-error: the iterator owns the cursor
    void client.hosts.list({ cursor: "abc" });
    // @ts-expect-error: role is required
    void client.teams.members.add("team-x", { user_id: "usr-x" });
    // @ts-expect-error: not a role
    void client.teams.members.add("team-x", { user_id: "usr-x", role: "admin" });
    // @ts-expect-error: audit has no status filter
    void client.audit.list({ status: "online" });
    // @ts-expect-error: not a command status
    void client.hosts.commands.list("host-x", { status: "online" });
    // @ts-expect-error: an idempotency key is a string
    void client.hosts.commands.send("host-x", { type: "ping" }, { idempotencyKey: 42 });
  });

  it("every call takes a signal and a timeout", () => {
    const options = { signal: AbortSignal.timeout(1), timeoutMs: 5 };
    void client.me(options);
    void client.hosts.get("host-x", options);
    void client.hosts.list({}, options);
    void client.hosts.tags.remove("host-x", "gpu", options);
    void client.teams.members.remove("team-x", "usr-x", options);
    void client.apiKeys.revoke("key-x", options);
    void client.audit.listPage({}, options);
  });

  it("errors are typed", () => {
    expectTypeOf<MusterApiError>().toMatchTypeOf<MusterError>();
    expectTypeOf<MusterConnectionError>().toMatchTypeOf<MusterError>();
    expectTypeOf<MusterApiError["code"]>().toEqualTypeOf<ErrorCode>();
    expectTypeOf<MusterApiError["status"]>().toEqualTypeOf<number>();
    expectTypeOf<MusterApiError["requestId"]>().toEqualTypeOf<string | null>();
    expectTypeOf<MusterConnectionError["timedOut"]>().toEqualTypeOf<boolean>();
  });

  it("events.watch yields the contract's events, narrowed by the types asked for", () => {
    type Event = Static<typeof contract.MusterEvent>;
    expectTypeOf(client.events.watch()).toEqualTypeOf<AsyncGenerator<Event, void, undefined>>();
    const offline = client.events.watch({ types: ["host.offline"] });
    expectTypeOf(offline).toEqualTypeOf<AsyncGenerator<Extract<Event, { type: "host.offline" }>, void, undefined>>();
    type Yielded = ReturnType<typeof client.events.watch<"command.*" | "host.deleted">> extends AsyncGenerator<infer T> ? T : never;
    expectTypeOf<Yielded["type"]>().toEqualTypeOf<"command.queued" | "command.delivered" | "command.succeeded" | "command.failed" | "command.expired" | "host.deleted">();
    expectTypeOf<Extract<Event, { type: "host.online" }>["data"]>().toEqualTypeOf<Static<typeof contract.Host>>();
    expectTypeOf<Extract<Event, { type: "command.failed" }>["data"]>().toEqualTypeOf<Static<typeof contract.Command>>();
    // @ts-expect-error: not an event type
    void client.events.watch({ types: ["host.exploded"] });
  });

  it("webhooks", () => {
    expectTypeOf(client.webhooks.create).parameter(0).toEqualTypeOf<Static<typeof contract.CreateWebhookBody>>();
    expectTypeOf(client.webhooks.create).returns.resolves.toEqualTypeOf<Static<typeof contract.CreateWebhookResponse>>();
    expectTypeOf(client.webhooks.list).returns.toEqualTypeOf<Paginator<Static<typeof contract.Webhook>>>();
    expectTypeOf(client.webhooks.deliveries).returns.toEqualTypeOf<Paginator<Static<typeof contract.WebhookDelivery>>>();
    expectTypeOf(client.webhooks.delete).returns.resolves.toEqualTypeOf<undefined>();
  });
});
