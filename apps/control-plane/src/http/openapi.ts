import { ERROR_STATUS, ErrorEnvelope, routes, type ErrorCode, type RouteDef } from "@muster/contract";
import type { TObject, TSchema } from "@sinclair/typebox";
import type { Context } from "hono";
import { OpenApiBuilder, type OpenAPIObject, type OperationObject, type ParameterObject, type SchemaObject } from "openapi3-ts/oas31";
import { requestOrigin } from "./client-address.js";
import type { AppEnv } from "./env.js";

const SECURITY: Record<RouteDef["auth"], OperationObject["security"]> = {
  api_key: [{ apiKey: [] }],
  host_token: [{ hostToken: [] }],
  body_secret: [],
  none: [],
};

/**
 * TypeBox schemas are JSON Schema already, which OpenAPI 3.1 takes as is. Named
 * shapes (those with a $id) are hoisted into components and referenced, so the
 * document names Host, User, … once.
 */
function hoist(schema: TSchema, components: Record<string, SchemaObject>): SchemaObject {
  const plain = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== "object") return node;
    const { $id, ...rest } = node as Record<string, unknown>;
    const walked = Object.fromEntries(Object.entries(rest).map(([key, value]) => [key, visit(value)]));
    if (typeof $id !== "string") return walked;
    components[$id] = walked as SchemaObject;
    return { $ref: `#/components/schemas/${$id}` };
  };
  return visit(plain) as SchemaObject;
}

function parameters(where: "path" | "query" | "header", schema: TObject | undefined, components: Record<string, SchemaObject>): ParameterObject[] {
  if (!schema) return [];
  const required = new Set(schema.required ?? []);
  return Object.entries(schema.properties).map(([name, property]) => ({
    name,
    in: where,
    required: where === "path" || required.has(name),
    schema: hoist(property, components),
  }));
}

/**
 * The errors any route may answer beyond its own: a refused query parameter
 * (every route refuses those it does not name), a body too large or not JSON,
 * and the server's own trouble.
 */
function errorsOf(route: RouteDef): ErrorCode[] {
  const body: ErrorCode[] = route.body ? ["unsupported_media_type"] : [];
  return [...new Set<ErrorCode>(["invalid_request", ...route.errors, ...body, "payload_too_large", "internal", "unavailable"])];
}

/** The repository names no licence yet; this is the one place to change when it does. */
const LICENSE = { name: "Proprietary", identifier: "LicenseRef-Muster-Proprietary" };

export function buildOpenApiDocument(version: string): OpenAPIObject {
  const components: Record<string, SchemaObject> = {};
  const builder = OpenApiBuilder.create()
    .addInfo({
      title: "Muster API",
      version,
      description: "Host enrollment and fleet control plane. Errors always have the ErrorEnvelope shape.",
      license: LICENSE,
    })
    .addSecurityScheme("apiKey", { type: "http", scheme: "bearer", description: "Operator API key" })
    .addSecurityScheme("hostToken", { type: "apiKey", in: "header", name: "X-Host-Token", description: "Host JWT" });

  const errorRef = hoist(ErrorEnvelope, components);
  for (const route of Object.values(routes) as RouteDef[]) {
    const success = route.response
      ? { description: "OK", content: { [route.responseType ?? "application/json"]: { schema: hoist(route.response, components) } } }
      : { description: "No content" };
    const errors = Object.fromEntries(
      errorsOf(route).map((code) => [String(ERROR_STATUS[code]), { description: code, content: { "application/json": { schema: errorRef } } }]),
    );
    const operation: OperationObject = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      security: SECURITY[route.auth],
      parameters: [
        ...parameters("path", route.params, components),
        ...parameters("query", route.query, components),
        ...parameters("header", route.headers, components),
      ],
      responses: { [String(route.status)]: success, ...errors },
    };
    if (route.body) {
      operation.requestBody = {
        required: !route.bodyOptional,
        content: { "application/json": { schema: hoist(route.body, components) } },
      };
    }
    builder.addPath(route.path, { [route.method]: operation });
  }
  for (const [name, schema] of Object.entries(components)) builder.addSchema(name, schema);
  // The builder starts every document with empty lists; `servers` is set per request, and tags are named by each operation.
  const spec = builder.getSpec();
  delete spec.servers;
  delete spec.tags;
  return spec;
}

/** The document as served: its one server is the address the caller reached, so "try it" calls go back there. */
export function withServerOf(c: Context<AppEnv>, document: OpenAPIObject): OpenAPIObject {
  return { ...document, servers: [{ url: requestOrigin(c, c.get("deps").config.trustedProxies) }] };
}
