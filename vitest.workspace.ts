/** The one list of test projects; the root vitest.config.ts reads it. */
export default ["packages/contract", "packages/sdk", "apps/control-plane", "apps/agent", "apps/cli", "apps/console"];
