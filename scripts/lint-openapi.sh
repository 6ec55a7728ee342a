#!/usr/bin/env bash
# Lints the OpenAPI document the control plane serves with Redocly CLI (pinned),
# under redocly.yaml (recommended-strict: a warning fails too). Needs the npm registry once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REDOCLY_CLI_VERSION=2.77.0

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# A deployment's own origin, as a client that reached it would see it in `servers`.
pnpm --silent --filter @muster/control-plane exec tsx scripts/openapi.ts https://muster.internal > "$out/openapi.json"
npx --yes "@redocly/cli@$REDOCLY_CLI_VERSION" lint --config redocly.yaml "$out/openapi.json"
