import { Type, type Static } from "@sinclair/typebox";

export const Health = Type.Object({ status: Type.Literal("ok") }, { $id: "Health" });
export type Health = Static<typeof Health>;

export const Readiness = Type.Object(
  {
    status: Type.Literal("ready"),
    checks: Type.Record(Type.String(), Type.Literal("ok"), { description: "each backing store by name (database, kv)" }),
  },
  { $id: "Readiness" },
);
export type Readiness = Static<typeof Readiness>;

export const MetricsText = Type.String({ description: "Prometheus text exposition format 0.0.4" });
