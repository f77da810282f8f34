// `dataops env | load | dbt`: the tools a data team runs, pointed at a branch's
// environment with no hand glue. Connection details come from the stack's outputs;
// passwords are decrypted only to be handed to the tool (or printed by `env`, which
// is what it is asked for).
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SAMPLE_ROWS } from "../config/environment";
import { connectionVariables, type EnvironmentOutputs, FORMATS, type Format, formatVariables, type Identity, UnknownIdentity } from "../lifecycle/connection";
import { environmentOutputs, Refused } from "../lifecycle/environments";
import { driftMarkdown, driftText, environmentDrift } from "../lifecycle/drift";
import { ensureEmbeddedAt, localDir } from "../local/embedded";
import { runSinger } from "../local/singer";
import { ensureTool } from "../local/tools";
import { localContext } from "../local/workspace";
import { UsageError } from "./lifecycle";

export interface ToolsIo {
    out(line: string): void;
    err(line: string): void;
    env: Readonly<Record<string, string | undefined>>;
}

async function outputsFor(root: string, branch: string, io: ToolsIo): Promise<EnvironmentOutputs> {
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    const outputs = await environmentOutputs(ctx, branch);
    const s = outputs.environment;
    // The embedded server may have been stopped (a reboot, npm run down of another branch).
    await ensureEmbeddedAt(root, s.host, s.port, io.err);
    return outputs;
}

function variables(o: EnvironmentOutputs, id: Identity): Record<string, string> {
    try {
        return connectionVariables(o, id);
    } catch (e) {
        if (e instanceof UnknownIdentity) throw new UsageError(e.message);
        throw e;
    }
}

export function parseFormat(value: string | undefined): Format {
    if (value === undefined) return "dotenv";
    if (!(FORMATS as readonly string[]).includes(value)) throw new UsageError(`--format: allowed ${FORMATS.join(" | ")}, given "${value}"`);
    return value as Format;
}

/** Exactly one of --user NAME, --loader NAME, --admin. */
export function parseIdentity(v: { user?: string; loader?: string; admin?: boolean }): Identity {
    const given = [v.user !== undefined, v.loader !== undefined, v.admin === true].filter(Boolean).length;
    if (given !== 1) throw new UsageError(`give exactly one of --user NAME, --loader NAME or --admin (given ${given})`);
    if (v.user !== undefined) {
        if (v.user === "") throw new UsageError("--user is empty (give a user name from dataops:access.users)");
        return { kind: "user", name: v.user };
    }
    if (v.loader !== undefined) {
        if (v.loader === "") throw new UsageError("--loader is empty (give a loader name from dataops:loaders)");
        return { kind: "loader", name: v.loader };
    }
    return { kind: "admin" };
}

export async function envCommand(root: string, branch: string, id: Identity, format: Format, io: ToolsIo): Promise<number> {
    const outputs = await outputsFor(root, branch, io);
    io.out(formatVariables(variables(outputs, id), format));
    return 0;
}

/** `dataops drift`: exit 0 when the environment is as its last update left it, 1 when not. */
export async function driftCommand(root: string, branch: string, format: "text" | "json" | "markdown", io: ToolsIo): Promise<number> {
    const ctx = await localContext(root, io.err, io.env as NodeJS.ProcessEnv);
    const stackOutputs = await environmentOutputs(ctx, branch);
    const s = stackOutputs.environment;
    await ensureEmbeddedAt(root, s.host, s.port, io.err);
    const report = await environmentDrift(ctx, branch);
    if (format === "json") io.out(JSON.stringify({ stack: report.stack, engine: report.engine, drifted: report.differences.length > 0, differences: report.differences }, null, 2));
    else if (format === "markdown") io.out(driftMarkdown(report));
    else for (const line of driftText(report)) io.out(line);
    return report.differences.length > 0 ? 1 : 0;
}

/** Where a loader's sample source is: CSV files, one stream a file. */
export function sampleFolder(root: string, loader: string): string {
    return join(root, "loaders", "samples", loader);
}

export interface LoadPlan {
    readonly run: Array<{ loader: string; mode: string; limit?: number }>;
    readonly skipped: Array<{ loader: string; reason: string }>;
}

/**
 * Which loaders to run and how. Named loaders must exist; a paused one is refused unless
 * forced, before anything runs. With no names, every loader runs except the paused ones,
 * which are listed as skipped.
 */
export function planLoad(modes: Readonly<Record<string, string>>, names: readonly string[], force: boolean): LoadPlan {
    const known = Object.keys(modes).sort();
    const unknown = names.filter((n) => !known.includes(n));
    if (unknown.length > 0) throw new UsageError(`no loader named ${unknown.join(", ")} in this environment (loaders: ${known.join(", ") || "none"})`);
    const paused = names.filter((n) => modes[n] === "paused");
    if (paused.length > 0 && !force)
        throw new Refused(
            `${paused.join(", ")} ${paused.length === 1 ? "is" : "are"} paused in branch environments (a branch must not hammer the source); run it anyway with --force`,
        );
    const chosen = names.length > 0 ? names : known;
    const plan: LoadPlan = { run: [], skipped: [] };
    for (const loader of chosen) {
        const mode = modes[loader];
        if (mode === "paused" && !force) plan.skipped.push({ loader, reason: `paused in branch environments (dataops load ${loader} --force runs it)` });
        else plan.run.push({ loader, mode, limit: mode === "sample" ? SAMPLE_ROWS : undefined });
    }
    return plan;
}

export async function loadCommand(root: string, branch: string, names: readonly string[], force: boolean, io: ToolsIo): Promise<number> {
    const outputs = await outputsFor(root, branch, io);
    const s = outputs.environment;
    const plan = planLoad(Object.fromEntries(Object.entries(s.loaders).map(([n, l]) => [n, l.mode])), names, force);
    for (const { loader } of plan.run) {
        const folder = sampleFolder(root, loader);
        if (!existsSync(folder) || !readdirSync(folder).some((f) => f.endsWith(".csv")))
            throw new Refused(`loader ${loader} has no sample source: put its streams as CSV files in loaders/samples/${loader}/ (one file a stream)`);
    }
    for (const { loader, reason } of plan.skipped) io.out(`skipped ${loader}: ${reason}`);
    if (plan.run.length === 0) return 0;
    const tap = await ensureTool(root, "tap-csv-folder", io.err);
    const target = await ensureTool(root, "target-postgres", io.err);
    for (const { loader, mode, limit } of plan.run) {
        const c = outputs.loaderConnections[loader];
        const vars = connectionVariables(outputs, { kind: "loader", name: loader });
        io.err(`dataops: loading ${loader} into ${c.database}.${c.schema} as ${c.user} (${mode}${limit !== undefined ? `, at most ${limit} rows a stream` : ""})`);
        const result = await runSinger({
            tap,
            tapConfig: { path: sampleFolder(root, loader), read_mode: "one_stream_per_file", filesystem: "local" },
            target,
            targetConfig: {
                host: c.host,
                port: c.port,
                user: c.user,
                password: c.password,
                database: c.database,
                default_target_schema: c.schema,
                // A second run updates the rows it loaded before instead of adding them again.
                load_method: "upsert",
                ...(s.sslMode && s.sslMode !== "disable" ? { ssl_enable: true, ssl_mode: s.sslMode } : {}),
            },
            limit,
            workDir: join(localDir(root), "run"),
            env: { ...vars, ...(limit !== undefined ? { DATAOPS_SAMPLE_ROWS: String(limit) } : {}), DATAOPS_LOADER: loader, DATAOPS_LOADER_MODE: mode },
            log: io.err,
        }).catch((e: Error) => {
            throw new Error(`loader ${loader}: ${e.message}`);
        });
        const streams = Object.entries(result.records).map(([stream, n]) => `${stream} ${n}${result.dropped[stream] ? ` (${result.dropped[stream]} more left out: sample)` : ""}`);
        io.out(`loaded ${loader}: ${streams.join(", ") || "no rows"}`);
    }
    return 0;
}

/** The user dbt runs as by default: the one user whose roles write (the transformer's). */
export function defaultDbtUser(o: EnvironmentOutputs): string {
    const writers = Object.entries(o.environment.users).filter(([, u]) => u.writes).map(([n]) => n);
    if (writers.length === 1) return writers[0];
    const users = Object.keys(o.environment.users);
    throw new UsageError(
      writers.length === 0
          ? `no user of ${o.environment.stack} has a role that writes; give --user NAME (users: ${users.join(", ") || "none"})`
          : `several users can run dbt (${writers.join(", ")}); give --user NAME`,
    );
}

export async function dbtCommand(root: string, branch: string, user: string | undefined, args: readonly string[], io: ToolsIo): Promise<number> {
    const outputs = await outputsFor(root, branch, io);
    const name = user ?? defaultDbtUser(outputs);
    const vars = variables(outputs, { kind: "user", name });
    const dbt = await ensureTool(root, "dbt", io.err);
    const project = join(root, "dbt");
    io.err(`dataops: dbt ${args.join(" ")} as ${name} (${vars.PGUSER}) on ${vars.PGDATABASE}`);
    return new Promise((resolve, reject) => {
        const child = spawn(dbt, [...args], {
            cwd: project,
            env: { ...process.env, ...io.env, ...vars, DBT_PROFILES_DIR: project, DBT_PROJECT_DIR: project, DBT_SEND_ANONYMOUS_USAGE_STATS: "false", DBT_USE_COLORS: process.stdout.isTTY ? "true" : "false" },
            stdio: ["ignore", "pipe", "pipe"],
        });
        const forward = (write: (l: string) => void) => {
            let rest = "";
            return (b: Buffer) => {
                const lines = (rest + b.toString()).split("\n");
                rest = lines.pop() ?? "";
                for (const l of lines) write(l);
            };
        };
        child.stdout.on("data", forward(io.out));
        child.stderr.on("data", forward(io.err));
        child.on("error", reject);
        child.on("close", (code) => resolve(code === 0 ? 0 : 1));
    });
}
