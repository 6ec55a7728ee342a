import { randomBytes } from "node:crypto";
import { routes } from "@muster/contract";
import { MusterClient } from "../src/client/index.js";
import { Transport } from "../src/transport.js";

export const unique = () => randomBytes(5).toString("hex");

/** A fresh team with an owner and a member, each with their own key and client (SPEC §3's roles). */
export async function makeTeam(baseUrl: string, admin: MusterClient) {
  const id = unique();
  const { team } = await admin.teams.create({ name: `team-${id}` });
  const people = async (role: "owner" | "member") => {
    const { user } = await admin.users.create({ email: `${role}-${id}@example.com`, name: `${role} ${id}` });
    await admin.teams.members.add(team.id, { user_id: user.id, role });
    const { key } = await admin.apiKeys.create({ name: `${role} key`, user_id: user.id, team_id: team.id });
    return { user, key, client: new MusterClient({ baseUrl, apiKey: key }) };
  };
  return { team, owner: await people("owner"), member: await people("member") };
}

/** Does what an agent does, through the host routes: register with the token, then heartbeat once. */
export async function bringOnline(baseUrl: string, registrationToken: string) {
  const anonymous = new Transport({ baseUrl });
  const credentials = await anonymous.call(routes.registerHost, {
    body: { token: registrationToken, address: "127.0.0.1:7070", arch: "x86_64", cpu_cores: 4, memory_mb: 8192, disk_gb: 100, hostname: "worker-1" },
  });
  const asHost = new Transport({ baseUrl, authHeaders: () => ({ "x-host-token": credentials.token }) });
  await asHost.call(routes.heartbeat, { params: { id: credentials.host.id } });
  return credentials;
}
