import { Type, type Static } from "@sinclair/typebox";
import { Body, Nullable, Timestamp } from "./common.js";

export const SigningKey = Type.Object({
  kid: Type.String({ description: "The `kid` in the header of the host JWTs it signs" }),
  created_at: Timestamp,
  retires_at: Nullable(Timestamp, "null for the key that signs now; for an earlier key, when it stops verifying (its last tokens have expired by then)"),
});
export type SigningKey = Static<typeof SigningKey>;

export const SigningKeys = Type.Object(
  {
    current: SigningKey,
    retiring: Type.Array(SigningKey, { description: "Earlier keys that still verify the tokens they signed, until retires_at" }),
  },
  { $id: "SigningKeys" },
);
export type SigningKeys = Static<typeof SigningKeys>;

/**
 * The CA rotation's phases, after Teleport's at Muster's scale: `standby`
 * (one CA), `rotating` (a new CA signs, both are trusted, agents pick up the
 * bundle at their next refresh); completing the rotation retires the old CA
 * and returns to `standby`.
 */
export const CA_PHASES = ["standby", "rotating"] as const;
export type CaPhase = (typeof CA_PHASES)[number];

export const CaSummary = Type.Object({
  id: Type.String({ description: "ca-… (the first CA the control plane made is `ca`)" }),
  fingerprint_sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
  created_at: Nullable(Timestamp, "null for a CA given as files"),
  expires_at: Timestamp,
});
export type CaSummary = Static<typeof CaSummary>;

export const CaStatus = Type.Object(
  {
    phase: Type.Union(CA_PHASES.map((phase) => Type.Literal(phase))),
    source: Type.Union([Type.Literal("database"), Type.Literal("files")], {
      description: "database: made and kept (sealed) by the control plane, rotatable here; files: MUSTER_CA_CERT_FILE / MUSTER_CA_KEY_FILE",
    }),
    active: CaSummary,
    previous: Nullable(CaSummary, "during a rotation: the CA being replaced, still trusted"),
    rotation_started_at: Nullable(Timestamp),
    hosts_on_previous_ca: Type.Integer({ minimum: 0, description: "Hosts whose newest certificate is of the previous CA: they move at their next refresh" }),
    online_hosts_on_previous_ca: Type.Integer({
      minimum: 0,
      description: "Of those, the online ones; completing the rotation waits for them unless forced",
    }),
  },
  { $id: "CaStatus" },
);
export type CaStatus = Static<typeof CaStatus>;

export const RotateCaBody = Body({
  action: Type.Union([Type.Literal("start"), Type.Literal("complete")], {
    description: "start: a new CA signs from now on, both are trusted; complete: retire the previous CA",
  }),
  force: Type.Optional(
    Type.Boolean({
      description:
        "complete even though online hosts still hold certificates of the previous CA: they are made to refresh (their host tokens stop working, their refresh tokens do not)",
    }),
  ),
});
export type RotateCaBody = Static<typeof RotateCaBody>;
