// Installs, ahead of the tests, every tool the tests install on first use: the CI-template
// checkers (tools/ci.json) and the Python tools the templates' jobs run (tools/python.json).
// For a run without network afterwards (e.g. tests in a private network namespace); `npm test`
// does the same on its own when needed.
//
//   npm run test:tools
import { resolve } from "node:path";
import { ensureTool, toolPins } from "../local/tools";
import { ensureActionlint, ensureGitlabCiLocal } from "../test/support/ciTools";

async function main(): Promise<void> {
    const root = resolve(__dirname, "..");
    const log = (l: string) => process.stderr.write(`${l}\n`);
    log((await ensureActionlint(root, log)).how);
    log((await ensureGitlabCiLocal(root, log)).how);
    for (const name of Object.keys(toolPins(root).tools)) log(`${name}: ${await ensureTool(root, name, log)}`);
}

main().catch((e: unknown) => {
    process.stderr.write(`test tools: ${(e as Error).message}\n`);
    process.exit(1);
});
