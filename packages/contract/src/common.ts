import { Type, type TSchema } from "@sinclair/typebox";

export const Timestamp = Type.String({ format: "date-time", description: "RFC 3339, UTC" });

export function Nullable<T extends TSchema>(schema: T, description?: string) {
  return Type.Union([schema, Type.Null()], description === undefined ? {} : { description });
}

/** Request bodies reject fields they do not name (SPEC §1). */
export function Body<T extends Parameters<typeof Type.Object>[0]>(properties: T) {
  return Type.Object(properties, { additionalProperties: false });
}

export const PAGE_LIMIT_DEFAULT = 100;
export const PAGE_LIMIT_MAX = 500;

export const PageQuery = {
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT }),
  ),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
};

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    next_cursor: Nullable(Type.String()),
  });
}

/** Free-text labels (names, providers, zones): printable, bounded; no C0/C1 controls, which can drive terminals. */
export function Label(maxLength: number, description?: string) {
  return Type.String({ minLength: 1, maxLength, pattern: "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", ...(description ? { description } : {}) });
}
