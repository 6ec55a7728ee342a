CREATE TABLE "certificate_authority" (
	"id" text PRIMARY KEY NOT NULL,
	"certificate" text NOT NULL,
	"private_key" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "host_certificates" (
	"serial" text PRIMARY KEY NOT NULL,
	"host_id" text NOT NULL,
	"fingerprint" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "cert_fingerprint" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "cert_expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "mtls_enabled" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "host_certificates" ADD CONSTRAINT "host_certificates_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "host_certificates_host_idx" ON "host_certificates" USING btree ("host_id");--> statement-breakpoint
CREATE INDEX "host_certificates_revoked_idx" ON "host_certificates" USING btree ("revoked_at","expires_at");