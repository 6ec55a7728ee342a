import { Type, type Static } from "@sinclair/typebox";
import { Body, Label, Nullable, Timestamp } from "./common.js";
import { IdSchema } from "./ids.js";

export const ApiKey = Type.Object(
  {
    id: IdSchema("apiKey"),
    name: Type.String(),
    user_id: IdSchema("user"),
    team_id: Nullable(IdSchema("team")),
    start: Type.String({ description: "The first characters of the key, for display." }),
    created_at: Timestamp,
    last_used_at: Nullable(Timestamp),
    expires_at: Nullable(Timestamp),
  },
  { $id: "ApiKey" },
);
export type ApiKey = Static<typeof ApiKey>;

export const CreateApiKeyBody = Body({
  name: Label(100),
  user_id: Type.Optional(IdSchema("user")),
  team_id: Type.Optional(IdSchema("team")),
  expires_in_s: Type.Optional(
    Type.Integer({ minimum: 60, maximum: 10 * 365 * 24 * 3600, description: "Lifetime; omitted: never expires." }),
  ),
});
export type CreateApiKeyBody = Static<typeof CreateApiKeyBody>;

export const CreateApiKeyResponse = Type.Object({
  api_key: ApiKey,
  key: Type.String({ description: "The secret. Shown once; store it now." }),
});
export type CreateApiKeyResponse = Static<typeof CreateApiKeyResponse>;

export const ApiKeyParams = Type.Object({ id: IdSchema("apiKey") });
