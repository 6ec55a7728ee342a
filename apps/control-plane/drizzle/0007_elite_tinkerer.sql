DROP INDEX "host_certificates_crl_idx";--> statement-breakpoint
ALTER TABLE "signing_keys" ALTER COLUMN "secret" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "certificate_authority" ALTER COLUMN "private_key" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "sealed_secret" text;--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "kek_id" text;--> statement-breakpoint
ALTER TABLE "signing_keys" ADD COLUMN "retires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "certificate_authority" ADD COLUMN "sealed_private_key" text;--> statement-breakpoint
ALTER TABLE "certificate_authority" ADD COLUMN "kek_id" text;--> statement-breakpoint
ALTER TABLE "certificate_authority" ADD COLUMN "state" text DEFAULT 'active' NOT NULL;--> statement-breakpoint
ALTER TABLE "host_certificates" ADD COLUMN "ca_id" text DEFAULT 'ca' NOT NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "certificate_authority_state_idx" ON "certificate_authority" USING btree ("state");--> statement-breakpoint
CREATE INDEX "host_certificates_crl_idx" ON "host_certificates" USING btree ("ca_id","serial") WHERE "host_certificates"."revoked_at" is not null;