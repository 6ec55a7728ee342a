import { randomBytes } from "node:crypto";
import { routes } from "@muster/contract";
import { MusterClient, Transport } from "@muster/sdk";

export const unique = () => randomBytes(5).toString("hex");

/** A fresh team with an owner and a member, each with an API key (SPEC §3's roles). */
export async function makeTeam(baseUrl: string, adminKey: string) {
  const admin = new MusterClient({ baseUrl, apiKey: adminKey });
  const id = unique();
  const { team } = await admin.teams.create({ name: `team-${id}` });
  const person = async (role: "owner" | "member") => {
    const { user } = await admin.users.create({ email: `${role}-${id}@example.com` });
    await admin.teams.members.add(team.id, { user_id: user.id, role });
    const { key } = await admin.apiKeys.create({ name: `${role} key`, user_id: user.id, team_id: team.id });
    return { user, key };
  };
  return { team, owner: await person("owner"), member: await person("member") };
}

/** What muster-agent does with a registration token, through the host routes: register, then heartbeat once. */
export async function bringOnline(baseUrl: string, registrationToken: string) {
  const credentials = await new Transport({ baseUrl }).call(routes.registerHost, {
    body: { token: registrationToken, address: "10.0.0.7:7070", arch: "x86_64", cpu_cores: 8, memory_mb: 16384, disk_gb: 200, hostname: "gpu-box" },
  });
  const asHost = new Transport({ baseUrl, authHeaders: () => ({ "x-host-token": credentials.token }) });
  await asHost.call(routes.heartbeat, { params: { id: credentials.host.id } });
  return credentials;
}
