import { Type, type Static } from "@sinclair/typebox";
import { Body, Label, Timestamp, Nullable } from "./common.js";
import { IdSchema } from "./ids.js";

export const User = Type.Object(
  {
    id: IdSchema("user"),
    email: Type.String(),
    name: Nullable(Type.String()),
    is_admin: Type.Boolean(),
    created_at: Timestamp,
  },
  { $id: "User" },
);
export type User = Static<typeof User>;

export const CreateUserBody = Body({
  email: Type.String({ format: "email", maxLength: 254 }),
  name: Type.Optional(Label(200)),
  is_admin: Type.Optional(Type.Boolean()),
});
export type CreateUserBody = Static<typeof CreateUserBody>;

export const UserResponse = Type.Object({ user: User });
