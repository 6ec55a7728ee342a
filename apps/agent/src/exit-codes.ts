/** What `muster-agent`'s exit status means; the systemd unit keeps the final ones from restarting it. */
export const EXIT = {
  /** Stopped by SIGTERM/SIGINT, or `--register-only` done. */
  ok: 0,
  /** Something unexpected; retrying may help. */
  internal: 1,
  /** Wrong flags or environment. */
  usage: 2,
  /** No credentials, or a credentials file that cannot be read, parsed or written. */
  credentials: 3,
  /** The registration was refused or could not reach the control plane; nothing was saved. */
  registration: 4,
  /** The control plane refused the refresh token: register again with a new token. */
  reregister: 5,
  /** The host was deleted in the control plane; the credentials are gone. */
  deleted: 6,
  /** The control plane needs a newer agent (protocol too old): upgrade muster-agent. */
  upgrade: 7,
  /** The control plane presented a certificate with another key than the pinned one. */
  pinMismatch: 8,
} as const;
