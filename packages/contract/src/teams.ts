import { Type, type Static } from "@sinclair/typebox";
import { Body, Label, Timestamp } from "./common.js";
import { IdSchema } from "./ids.js";

export const Team = Type.Object(
  { id: IdSchema("team"), name: Type.String(), created_at: Timestamp },
  { $id: "Team" },
);
export type Team = Static<typeof Team>;

export const TeamRole = Type.Union([Type.Literal("owner"), Type.Literal("member")]);
export type TeamRole = Static<typeof TeamRole>;

export const Member = Type.Object(
  { team_id: IdSchema("team"), user_id: IdSchema("user"), role: TeamRole, created_at: Timestamp },
  { $id: "Member" },
);
export type Member = Static<typeof Member>;

export const CreateTeamBody = Body({ name: Label(100) });
export type CreateTeamBody = Static<typeof CreateTeamBody>;

export const AddMemberBody = Body({ user_id: IdSchema("user"), role: TeamRole });
export type AddMemberBody = Static<typeof AddMemberBody>;

export const TeamParams = Type.Object({ team_id: IdSchema("team") });
export const MemberParams = Type.Object({ team_id: IdSchema("team"), user_id: IdSchema("user") });

export const TeamResponse = Type.Object({ team: Team });
export const MemberResponse = Type.Object({ member: Member });
