/** Quotes a shell word only when it needs it. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:@=+,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command that enrolls a machine: the agent executable, where the control
 * plane is, the one-time token, and where the host's services listen.
 */
export function agentCommand(controlPlane: string, token: string, address: string): string {
  return ["./muster-agent", "--control-plane", controlPlane, "--register", token, "--address", address.trim() || "IP:PORT"]
    .map(shellWord)
    .join(" ");
}
