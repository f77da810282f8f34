// `dataops up | destroy | prune | ls`: the branch lifecycle, as CI runs it.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline/promises";
import { BRANCH_DATA, type BranchData, TARGETS, type Target } from "../config/schema";
import { branchServers, checkUp, destroyStack, type InlineProgram, listEnvironments, productionConfig, Refused, upBranch } from "../lifecycle/environments";
import { findLeftovers, sweep } from "../lifecycle/sweep";
import { age, isBranchEnvironment, selectForPrune, TAG } from "../lifecycle/policy";
import { shellQuote } from "../lifecycle/connection";
import { adviceFor, Advised, type FailureContext, failureSummaryMarkdown } from "../lifecycle/failure";
import { ConfigError } from "../config/errors";
import type { ServerConnection } from "../config/schema";
import { provenanceText, summaryMarkdown } from "../lifecycle/summary";
import { EmbeddedRefused, localDir } from "../local/embedded";
import { EngineRefused, localContext, sqlEngineChoice } from "../local/workspace";
import { environmentPrefix, PG_IDENTIFIER_MAX, stackNameForBranch } from "../naming";
import { identifierRule, isIdentifier } from "../config/rules";
import { currentCommit } from "../config/git";

export interface LifecycleIo {
    /** Loads the stack's program to run in-process (bin/dataops.js gives the compiled stack.ts). @default the language host runs index.ts */
    program?: () => InlineProgram;
    out(line: string): void;
    err(line: string): void;
    env: Readonly<Record<string, string | undefined>>;
    cwd: string;
    now(): Date;
    interactive: boolean;
    /** Aborted on SIGINT or SIGTERM: the running engine operation is cancelled cleanly. */
    signal?: AbortSignal;
}

export class UsageError extends Error {}

/** A refusal: nothing was changed, and the command exits 2 saying why (a usage error is handled apart). */
export function isRefusal(e: unknown): boolean {
    return e instanceof Refused || e instanceof ConfigError || e instanceof EmbeddedRefused || e instanceof EngineRefused;
}

function author(env: LifecycleIo["env"], cwd: string): string {
    const fromCi = env.GITLAB_USER_LOGIN ?? env.GITHUB_ACTOR;
    if (fromCi) return fromCi;
    try {
        return execFileSync("git", ["config", "user.email"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() || userInfo().username;
    } catch {
        return userInfo().username;
    }
}

/** "PostgreSQL 16.14 (pinned 16.4)": what runs, and what the config pins. */
export function postgresVersion(s: { engineVersion: string; serverVersion?: string | null }): string {
    return s.serverVersion ? `PostgreSQL ${s.serverVersion} (pinned ${s.engineVersion})` : `PostgreSQL ${s.engineVersion} (pinned)`;
}

export function parseTarget(value: string | undefined): Target | undefined {
    if (value === undefined) return undefined;
    if (!(TARGETS as readonly string[]).includes(value)) throw new UsageError(`--target: allowed ${TARGETS.join(" | ")}, given "${value}"`);
    return value as Target;
}

export function parseData(value: string | undefined): BranchData | undefined {
    if (value === undefined) return undefined;
    if (!(BRANCH_DATA as readonly string[]).includes(value)) throw new UsageError(`--data: allowed ${BRANCH_DATA.join(" | ")}, given "${value}"`);
    return value as BranchData;
}

/** A database name for --from: checked here, so it reaches SQL only as a valid identifier. */
export function parseDatabase(value: string | undefined): string | undefined {
    if (value === undefined) return undefined;
    if (!isIdentifier(value, PG_IDENTIFIER_MAX)) throw new UsageError(`--from: a database name (${identifierRule(PG_IDENTIFIER_MAX)}), given "${value}"`);
    return value;
}

export function parseSeconds(value: string | undefined, fallback: number, flag: string): number {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0 || n > 86_400) throw new UsageError(`${flag}: a whole number of seconds from 0 to 86400, given "${value}"`);
    return n;
}

export type UpArgs = { target?: Target; data?: BranchData; from?: string; summaryFile?: string; lockTimeout: number; json: boolean; embedded?: boolean; refresh?: boolean };

export async function up(root: string, branch: string, o: UpArgs, io: LifecycleIo): Promise<number> {
    try {
        return await upAndReport(root, branch, o, io);
    } catch (e) {
        // A merge request hears about a failed update too: what failed and what to do.
        const context = failureContext(root, branch, o);
        if (o.summaryFile) writeFileSync(o.summaryFile, failureSummaryMarkdown(stackNameForBranch(branch), e, context));
        if (e instanceof UsageError || isRefusal(e) || io.signal?.aborted) throw e;
        throw new Advised(e, adviceFor(e, context));
    }
}

/** Where a failed up was going, for its advice: production's shared branch server unless it ran embedded. */
function failureContext(root: string, branch: string, o: Pick<UpArgs, "target" | "embedded">): FailureContext {
    let server: ServerConnection | undefined;
    try {
        const policy = productionConfig(root).branches;
        server = !o.embedded && (o.target ?? policy.target) === "server" ? policy.server : undefined;
    } catch {
        server = undefined; // production's file is what failed: nothing more to name
    }
    return { command: "up", branch, branchServer: server };
}

async function upAndReport(root: string, branch: string, o: UpArgs, io: LifecycleIo): Promise<number> {
    checkUp(root, { branch, target: o.target, data: o.data, from: o.from, embedded: o.embedded }); // refuse before anything changes
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    io.err(`dataops: up ${stackNameForBranch(branch)} (branch ${branch})`);
    const outcome = await upBranch(ctx, {
        branch,
        target: o.target,
        data: o.data,
        from: o.from,
        commit: currentCommit(io.env, root),
        author: author(io.env, io.cwd),
        lockTimeoutSeconds: o.lockTimeout,
        now: io.now,
        serverAdminPassword: io.env.DATAOPS_SERVER_ADMIN_PASSWORD,
        embedded: o.embedded,
        onOutput: o.json ? undefined : (t) => process.stderr.write(t),
        log: io.err,
        signal: io.signal,
        refresh: o.refresh,
        program: io.program?.(),
        sqlEngine: sqlEngineChoice(io.env),
    });
    if (o.summaryFile) writeFileSync(o.summaryFile, summaryMarkdown(outcome));
    if (o.json) io.out(JSON.stringify({ stack: outcome.stack, changes: outcome.changes, tags: outcome.tags, recovered: outcome.recovered, environment: outcome.summary }, null, 2));
    else {
        const s = outcome.summary;
        io.out(`${outcome.stack}: ready — ${postgresVersion(s)} on ${s.host}:${s.port}, expires ${outcome.tags[TAG.expiresAt]}`);
        io.out(`  database  ${s.database}`);
        io.out(`  schemas   ${s.schemas.join(", ")}`);
        io.out(`  roles     ${Object.entries(s.roles).map(([k, v]) => `${k}=${v}`).join(", ")}`);
        for (const [u, x] of Object.entries(s.users)) io.out(`  user      ${u}: ${x.url}`);
        for (const [l, x] of Object.entries(s.loaders)) io.out(`  loader    ${l} (${x.tool}, ${x.mode}): ${x.url}`);
        if (s.data) io.out(`  data      ${provenanceText(s.data)}`);
        io.out(`  built     dataops-environments ${s.build.projectVersion}, commit ${s.build.commit}`);
        // Passwords are stack secrets: say how to read them, never print them.
        const backend = ctx.envVars.PULUMI_BACKEND_URL ?? "";
        const local = backend.startsWith("file://") && ctx.envVars.PULUMI_CONFIG_PASSPHRASE !== undefined;
        const env = local ? `PULUMI_BACKEND_URL=${backend} PULUMI_CONFIG_PASSPHRASE_FILE=${join(localDir(root), "passphrase")} ` : "";
        io.out(`Passwords: ${env}${ctx.pulumi.command} stack output --show-secrets -s ${outcome.stack} userPasswords   (or loaderConnections)`);
        io.out(`Load sample data: npx dataops load --branch ${shellQuote(branch)}    Build: npx dataops dbt --branch ${shellQuote(branch)} build`);
        io.out(`Connect: npx dataops env --branch ${shellQuote(branch)} --user NAME --format shell`);
        io.out(`Destroy it with: npx dataops destroy --branch ${shellQuote(branch)} --yes`);
    }
    return 0;
}

export async function destroy(root: string, branch: string, yes: boolean, io: LifecycleIo): Promise<number> {
    const name = stackNameForBranch(branch);
    if (!yes) {
        if (!io.interactive) throw new Refused(`destroying ${name} needs --yes in a non-interactive shell`);
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(`Destroy ${name} and all its data? Type the stack name to confirm: `);
        rl.close();
        if (answer.trim() !== name) throw new Refused(`not confirmed; ${name} was left as it is`);
    }
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    const r = await destroyStack(ctx, name, io.err, (t) => process.stderr.write(t), 600, io.signal);
    if (r.destroyed) {
        io.out(`${name}: destroyed and removed`);
        return 0;
    }
    // No stack: never made, already destroyed, or its state was lost. The environment's objects
    // carry its name prefix; look for them where branches run, list them, and remove them.
    const swept = await sweepLostEnvironment(root, name, io);
    io.out(swept ? `${name}: its state was lost; removed its objects by name` : `${name}: no such stack; nothing to destroy`);
    return 0;
}

async function sweepLostEnvironment(root: string, name: string, io: LifecycleIo): Promise<boolean> {
    const servers = await branchServers(root, io.env, io.err);
    let any = false;
    for (const server of servers) {
        // A server that cannot be reached now (one an up never reached either) holds nothing this run could check.
        const left = await findLeftovers(server, environmentPrefix(name)).catch((e: unknown) => {
            io.err(`dataops: could not check ${server.host}:${server.port} for objects of ${name} (${String((e as Error).message ?? e).split("\n")[0]}); if it is reachable later, dataops destroy --branch B removes them by name`);
            return { databases: [], roles: [] };
        });
        const names = [...left.databases.map((d) => `database ${d}`), ...left.roles.map((r) => `role ${r}`)];
        if (names.length === 0) continue;
        any = true;
        io.err(`dataops: ${name} has no stack, but ${server.host}:${server.port} still holds its objects:`);
        for (const n of names) io.err(`  ${n}`);
        await sweep(server, environmentPrefix(name));
    }
    return any;
}

export function liveBranches(o: { remote?: string; branchesFrom?: string }, cwd: string): Set<string> | undefined {
    if (o.branchesFrom !== undefined) {
        if (!existsSync(o.branchesFrom)) throw new UsageError(`--branches-from: no such file "${o.branchesFrom}"`);
        return new Set(readFileSync(o.branchesFrom, "utf8").split("\n").map((l) => l.trim()).filter(Boolean));
    }
    if (o.remote === undefined) return undefined;
    let text: string;
    try {
        text = execFileSync("git", ["ls-remote", "--heads", o.remote], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
        throw new Error(`--remote ${o.remote}: git ls-remote failed (${(e as Error).message.split("\n")[0]}); nothing was pruned`);
    }
    return new Set(text.split("\n").filter(Boolean).map((l) => l.split("\t")[1].replace(/^refs\/heads\//, "")));
}

export async function prune(root: string, o: { dryRun: boolean; remote?: string; branchesFrom?: string; json: boolean }, io: LifecycleIo): Promise<number> {
    const live = liveBranches(o, io.cwd); // read before anything is destroyed: a failure here changes nothing
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    const decisions = selectForPrune(await listEnvironments(ctx, io.err, { details: false }), io.now(), live);
    const results: Array<(typeof decisions)[number] & { done: boolean; error?: string }> = [];
    let failed = false;
    for (const d of decisions) {
        if (d.action === "keep" || o.dryRun) {
            results.push({ ...d, done: false });
            continue;
        }
        try {
            await destroyStack(ctx, d.stack, io.err, undefined, 600, io.signal);
            results.push({ ...d, done: true });
        } catch (e) {
            failed = true;
            results.push({ ...d, done: false, error: (e as Error).message });
        }
    }
    if (o.json) io.out(JSON.stringify(results, null, 2));
    else if (results.length === 0) io.out("prune: nothing to prune");
    else
        for (const r of results)
            io.out(`${r.action === "keep" ? "kept     " : o.dryRun ? "would destroy" : r.done ? "destroyed" : "FAILED   "} ${r.stack}: ${r.detail}${r.error ? ` — ${r.error}` : ""}`);
    return failed ? 1 : 0;
}

export async function ls(root: string, json: boolean, io: LifecycleIo): Promise<number> {
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    const stacks = await listEnvironments(ctx, io.err);
    const now = io.now();
    const rows = stacks.map((s) => ({
        stack: s.name,
        branch: s.tags[TAG.branch] ?? null,
        kind: isBranchEnvironment(s) ? "branch" : "other",
        target: s.tags[TAG.target] ?? null,
        createdAt: s.tags[TAG.createdAt] ?? null,
        expiresAt: s.tags[TAG.expiresAt] ?? null,
        keep: s.tags[TAG.keep] === "true",
        postgres: s.tags[TAG.postgres] ?? null,
        data: s.tags[TAG.data] ?? null,
        lastUpdate: s.lastUpdate ?? null,
        resourceCount: s.resourceCount ?? null,
    }));
    if (json) {
        io.out(JSON.stringify(rows, null, 2));
        return 0;
    }
    io.out(["STACK", "BRANCH", "TARGET", "AGE", "EXPIRES", "LAST UPDATE", "RESOURCES", "POSTGRES", "DATA"].join("\t"));
    for (const r of rows)
        io.out([r.stack, r.branch ?? "-", r.target ?? "-", age(r.createdAt ?? undefined, now), `${r.expiresAt ?? "-"}${r.keep ? " (kept)" : ""}`, r.lastUpdate ?? "-", String(r.resourceCount ?? "-"), r.postgres ?? "-", r.data ?? "empty"].join("\t"));
    return 0;
}
