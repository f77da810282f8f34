// `dataops dev up|down`: the embedded default. A real PostgreSQL from npm, a file
// state backend in .dataops/, the current branch's stack on the `server` target.
import { join } from "node:path";
import type { OutputMap } from "@pulumi/pulumi/automation";
import type { EnvironmentSummary } from "../components/dataPlatform";
import { localDir, stopEmbeddedServer } from "../local/embedded";
import { branchStack, ensureLocalServer, localContext, workspace } from "../local/workspace";
import { isBranchStack, stackNameForBranch } from "../naming";

export interface DevIo {
    out(line: string): void;
    err(line: string): void;
}

export async function devUp(root: string, branch: string, io: DevIo): Promise<EnvironmentSummary> {
    const stackName = stackNameForBranch(branch);
    io.out(`dataops: bringing up ${stackName} (branch ${branch}) on the embedded PostgreSQL`);
    const ctx = await localContext(root, io.err);
    const server = await ensureLocalServer(root, io.out);
    const stack = await branchStack(ctx, stackName, branch, server);
    const result = await stack.up({ onOutput: (text) => process.stdout.write(text), color: "never" });
    const summary = summaryOf(result.outputs);
    printSummary(root, summary, ctx.pulumi.command, io);
    return summary;
}

export async function devDown(root: string, branch: string, io: DevIo, opts: { keepServer?: boolean } = {}): Promise<void> {
    const stackName = stackNameForBranch(branch);
    const ctx = await localContext(root, io.err);
    const ws = await workspace(ctx);
    const stacks = (await ws.listStacks()).map((s) => s.name);
    if (stacks.includes(stackName)) {
        // The server must be up for the environment's database and roles to be dropped.
        const server = await ensureLocalServer(root, io.out);
        const stack = await branchStack(ctx, stackName, branch, server);
        io.out(`dataops: destroying ${stackName}`);
        await stack.destroy({ onOutput: (text) => process.stdout.write(text), color: "never" });
        await ws.removeStack(stackName);
        io.out(`dataops: ${stackName} destroyed and its stack removed`);
    } else {
        io.out(`dataops: ${stackName} has no stack here; nothing to destroy`);
    }
    const others = stacks.filter((s) => s !== stackName && isBranchStack(s));
    if (opts.keepServer || others.length > 0) {
        io.out(`dataops: the embedded server keeps running${others.length > 0 ? ` for ${others.join(", ")}` : ""}`);
        return;
    }
    if (await stopEmbeddedServer(root)) io.out("dataops: embedded PostgreSQL stopped (its data stays in .dataops/pg)");
}

function summaryOf(outputs: OutputMap): EnvironmentSummary {
    const env = outputs.environment;
    if (!env) throw new Error("the stack has no `environment` output");
    return env.value as EnvironmentSummary;
}

function printSummary(root: string, s: EnvironmentSummary, pulumi: string, io: DevIo): void {
    const state = join(localDir(root), "state");
    io.out("");
    io.out(`Environment ${s.stack} (${s.kind}${s.branch ? `, branch ${s.branch}` : ""}) — PostgreSQL ${s.engineVersion} on ${s.host}:${s.port}`);
    io.out(`  database  ${s.database}`);
    io.out(`  schemas   ${s.schemas.join(", ")}`);
    io.out(`  roles     ${Object.entries(s.roles).map(([k, v]) => `${k}=${v}`).join(", ")}`);
    for (const [name, u] of Object.entries(s.users)) io.out(`  user      ${name}: ${u.url}`);
    for (const [name, l] of Object.entries(s.loaders)) io.out(`  loader    ${name} (${l.tool}, ${l.mode}): ${l.url}`);
    io.out(`  built     dataops-environments ${s.build.projectVersion}, commit ${s.build.commit}`);
    if (s.ttl) io.out(`  ttl       ${s.ttl} after the last up`);
    io.out("Passwords are stack secrets; to show them:");
    io.out(`  PULUMI_BACKEND_URL=file://${state} PULUMI_CONFIG_PASSPHRASE_FILE=${join(localDir(root), "passphrase")} \\`);
    io.out(`    ${pulumi} stack output --show-secrets -s ${s.stack} userPasswords   (or loaderConnections)`);
}
