CREATE TABLE "host_commands" (
	"id" text PRIMARY KEY NOT NULL,
	"host_id" text NOT NULL,
	"type" text NOT NULL,
	"payload" jsonb,
	"status" text NOT NULL,
	"timeout_s" integer NOT NULL,
	"result" jsonb,
	"error" text,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"delivered_at" timestamp with time zone,
	"completed_at" timestamp with time zone,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "protocol_version" integer;--> statement-breakpoint
ALTER TABLE "host_commands" ADD CONSTRAINT "host_commands_host_id_hosts_id_fk" FOREIGN KEY ("host_id") REFERENCES "public"."hosts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "host_commands" ADD CONSTRAINT "host_commands_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "host_commands_host_status_idx" ON "host_commands" USING btree ("host_id","status","created_at");--> statement-breakpoint
CREATE INDEX "host_commands_status_expires_idx" ON "host_commands" USING btree ("status","expires_at");