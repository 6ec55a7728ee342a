ALTER TABLE "api_keys" ADD COLUMN "parent_key_id" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "last_probe" jsonb;--> statement-breakpoint
ALTER TABLE "host_certificates" ADD COLUMN "superseded_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "api_keys_parent_idx" ON "api_keys" USING btree ("parent_key_id");--> statement-breakpoint
CREATE INDEX "host_certificates_crl_idx" ON "host_certificates" USING btree ("serial") WHERE "host_certificates"."revoked_at" is not null;