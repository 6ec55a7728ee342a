import { Type, type Static } from "@sinclair/typebox";
import { Nullable } from "./common.js";
import { Team } from "./teams.js";
import { User } from "./users.js";

export const Role = Type.Union([Type.Literal("admin"), Type.Literal("owner"), Type.Literal("member")]);
export type Role = Static<typeof Role>;

export const MeResponse = Type.Object({ user: User, team: Nullable(Team), role: Role });
export type MeResponse = Static<typeof MeResponse>;
