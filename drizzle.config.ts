import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: "./apps/control-plane/src/db/schema/index.ts",
  out: "./apps/control-plane/drizzle",
});
