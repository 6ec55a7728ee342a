#!/usr/bin/env bash
# Installs muster-agent on this machine, registers the host once, and hands it
# over to systemd. Run as root from a folder holding muster-agent,
# muster-agent.service and this script:
#
#   sudo ./install.sh --control-plane https://muster.example.com --register TOKEN --address 10.0.0.7:7070
#
# The flags may come from the environment instead (MUSTER_CONTROL_PLANE,
# MUSTER_REGISTRATION_TOKEN, MUSTER_ADDRESS), which keeps the token out of `ps`.
# Run again without a token to upgrade the binary and keep the saved credentials;
# with a token, the host is registered again and the old credentials replaced.
#
# Options: --binary PATH (default: ./muster-agent beside this script),
#          --no-start (install and register, but leave starting to you).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
control_plane=${MUSTER_CONTROL_PLANE:-}
token=${MUSTER_REGISTRATION_TOKEN:-}
address=${MUSTER_ADDRESS:-}
binary=$here/muster-agent
unit=$here/muster-agent.service
start=yes

user=muster-agent
bin_path=/usr/local/bin/muster-agent
state_dir=/var/lib/muster-agent
credentials=$state_dir/credentials.json
config_dir=/etc/muster-agent
unit_path=/etc/systemd/system/muster-agent.service

die() { echo "install.sh: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case $1 in
    --control-plane) control_plane=${2:?--control-plane needs a URL}; shift 2 ;;
    --register) token=${2:?--register needs a token}; shift 2 ;;
    --address) address=${2:?--address needs IP:PORT}; shift 2 ;;
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run me as root (sudo)"
[ -n "$control_plane" ] || die "--control-plane URL (or MUSTER_CONTROL_PLANE) is required"
[ -f "$binary" ] || die "no muster-agent binary at $binary (use --binary PATH)"
[ -f "$unit" ] || die "no muster-agent.service beside this script ($unit)"
if [ -z "$token" ] && [ ! -s "$credentials" ]; then
  die "this host has no saved credentials: give --register TOKEN and --address IP:PORT"
fi
[ -z "$token" ] || [ -n "$address" ] || die "--address IP:PORT (or MUSTER_ADDRESS) is required with --register"
case $control_plane in *$'\n'*|*' '*) die "--control-plane must be a URL" ;; esac

"$binary" --version >/dev/null || die "$binary does not run on this machine"

if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "$state_dir" --shell /usr/sbin/nologin "$user"
  say "created the system user $user"
fi

install -m 0755 "$binary" "$bin_path.new" && mv -f "$bin_path.new" "$bin_path"
install -d -m 0755 "$config_dir"
printf 'MUSTER_CONTROL_PLANE=%s\n' "$control_plane" > "$config_dir/agent.env.new"
chmod 0644 "$config_dir/agent.env.new" && mv -f "$config_dir/agent.env.new" "$config_dir/agent.env"
install -d -m 0700 -o "$user" -g "$user" "$state_dir"
say "installed $("$bin_path" --version)"

if [ -n "$token" ]; then
  # Registered as the service user, so the credentials file is the service's from the start.
  # The token travels in the environment, not on a command line other users can read.
  MUSTER_REGISTRATION_TOKEN=$token MUSTER_ADDRESS=$address \
    runuser -u "$user" -- "$bin_path" --control-plane "$control_plane" --credentials-file "$credentials" \
    --register-only --log-format text || die "registration failed (see above); nothing was started"
else
  say "keeping the saved credentials in $credentials"
fi

install -m 0644 "$unit" "$unit_path"
if [ "$start" = yes ]; then
  systemctl daemon-reload
  systemctl enable muster-agent.service >/dev/null
  systemctl restart muster-agent.service
  say "muster-agent is running; follow it with: journalctl -u muster-agent -f"
else
  say "installed; start it with: systemctl daemon-reload && systemctl enable --now muster-agent"
fi
