// `dataops <command>`: exit 0 on success, 1 when an operation failed, 2 on a usage
// error or a refusal. Messages say what to do next.
import { parseArgs } from "node:util";
import { stackNameForBranch } from "../naming";
import { BRANCH_SOURCES, currentBranch } from "../config/git";
import { projectRoot as findProjectRoot } from "../config/root";
import { devDown } from "./dev";
import { destroy, isRefusal, type LifecycleIo, ls, parseData, parseDatabase, parseSeconds, parseTarget, prune, up, UsageError } from "./lifecycle";
import { AUDIT_SUMMARY, AUDIT_USAGE, runAudit } from "../audit";
import { dbtCommand, driftCommand, envCommand, loadCommand, parseFormat, parseIdentity } from "./tools";
import { Advised, failureLines } from "../lifecycle/failure";

/** 130: cancelled by a signal, as shells report a command ended by Ctrl-C. */
export const EXIT = { ok: 0, failed: 1, usage: 2, cancelled: 130 } as const;

export interface Io {
    out(line: string): void;
    err(line: string): void;
    env: Readonly<Record<string, string | undefined>>;
    cwd: string;
    /** The clock (tests pass a fake one). @default the system clock */
    now?(): Date;
    /** Whether a person can answer a prompt. @default process.stdin.isTTY */
    interactive?: boolean;
    /** Aborted when the operation must stop (the installed command: SIGINT or SIGTERM). */
    signal?: AbortSignal;
    /** The stack's program, to run in-process (see cli/lifecycle.ts). */
    program?: LifecycleIo["program"];
}

export const defaultIo: Io = {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    env: process.env,
    cwd: process.cwd(),
};

/**
 * Ctrl-C or a cancelled CI job (SIGINT, SIGTERM) must not kill the CLI under a running engine:
 * that leaves the engine's provider processes running and its state half-written. The first
 * signal asks the engine to stop cleanly (it saves its state; the next run goes on from there);
 * a second one exits at once.
 */
export function cancelOnSignals(log: (line: string) => void): { signal: AbortSignal; dispose(): void } {
    const controller = new AbortController();
    const onSignal = (name: NodeJS.Signals) => {
        const code = name === "SIGINT" ? 130 : 143;
        if (controller.signal.aborted) process.exit(code);
        log(`dataops: ${name}: cancelling; the engine stops after the operations under way and saves its state (again to exit at once)`);
        controller.abort();
        // With no engine operation under way nothing listens to the abort: do not outlive the signal.
        setTimeout(() => process.exit(code), 60_000).unref();
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    return {
        signal: controller.signal,
        dispose: () => {
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
        },
    };
}

function lifecycleIo(io: Io) {
    return { ...io, now: io.now ?? (() => new Date()), interactive: io.interactive ?? process.stdin.isTTY === true, signal: io.signal, program: io.program };
}

function branchOf(given: string | undefined, io: Io, command: string): string {
    if (given === "") throw new UsageError("--branch is empty");
    const branch = given ?? currentBranch(io.env, io.cwd);
    if (!branch) throw new UsageError(`no branch found (not in CI, no current git branch); give one: dataops ${command} --branch B`);
    return branch;
}

interface Command {
    summary: string;
    usage: string;
    run(args: string[], io: Io): Promise<number>;
}


const commands: Record<string, Command> = {
    "stack-name": {
        summary: "Print the Pulumi stack name of a branch",
        usage: [
            "dataops stack-name [BRANCH]",
            "",
            "Prints the stack name (br-…) for BRANCH, or for the current branch taken from",
            `CI variables (${BRANCH_SOURCES.join(", ")}) or git.`,
        ].join("\n"),
        async run(args, io) {
            const { positionals } = parse(args, {}, 1);
            if (positionals[0] === "") throw new UsageError("BRANCH is empty (give a branch name, or none to use the current branch)");
            const branch = positionals[0] ?? currentBranch(io.env, io.cwd);
            if (!branch) {
                io.err("dataops stack-name: no branch found: not in CI, and git has no current branch (detached HEAD or not a repository).");
                io.err("Give one: dataops stack-name BRANCH");
                return EXIT.usage;
            }
            io.out(stackNameForBranch(branch));
            return EXIT.ok;
        },
    },
    dev: {
        summary: "Bring the current branch's environment up or down on the embedded PostgreSQL",
        usage: [
            "dataops dev up [--branch B]",
            "dataops dev down [--branch B] [--keep-server]",
            "",
            "up: starts a PostgreSQL from npm (data in .dataops/pg), obtains the Pulumi engine,",
            "selects or creates the branch's stack (file backend in .dataops/state) and runs the",
            "update with live progress; safe to run again. down: destroys the environment, removes",
            "its stack and stops the server when no other branch environment uses it.",
        ].join("\n"),
        async run(args, io) {
            const parsed = parse(args, { branch: { type: "string" }, "keep-server": { type: "boolean" } }, 1);
            const positionals = parsed.positionals;
            const values = parsed.values as { branch?: string; "keep-server"?: boolean };
            const action = positionals[0];
            if (action !== "up" && action !== "down") throw new UsageError(`expected up or down, given ${action === undefined ? "nothing" : JSON.stringify(action)}`);
            const branch = values.branch ?? currentBranch(io.env, io.cwd);
            if (!branch) {
                io.err(`dataops dev ${action}: no branch found (not in CI, no current git branch); give one with --branch B`);
                return EXIT.usage;
            }
            const root = projectRoot();
            if (action === "up") return up(root, branch, { lockTimeout: 600, json: false, embedded: true }, lifecycleIo(io));
            await devDown(root, branch, { ...io, signal: io.signal }, { keepServer: values["keep-server"] === true });
            return EXIT.ok;
        },
    },
    up: {
        summary: "Create or update the branch's environment",
        usage: [
            "dataops up [--branch B] [--target server|docker|aws] [--data empty|schema|sample|clone] [--from DATABASE] [--embedded] [--refresh] [--summary-file FILE] [--lock-timeout SECONDS] [--json]",
            "",
            "Selects or creates the branch's stack, tags it (branch, commit, author, created-at,",
            "expires-at renewed from the TTL policy), recovers an interrupted update, waits while",
            "another update holds the stack (default 600 s), runs the update with live progress and",
            "prints the environment. --summary-file writes Markdown for a merge-request comment.",
            "--target must be allowed by production's branches.allowedTargets. On the server target the",
            "environment goes to production's branches.server (admin password: DATAOPS_SERVER_ADMIN_PASSWORD),",
            "or to the embedded local PostgreSQL when there is none or --embedded is given.",
            "--refresh reads the server first, so the update also repairs drift (see dataops drift).",
            "--data chooses what a new environment starts with, among production's branches.allowedData;",
            "--from names the database to copy on the embedded server (on a shared server it is always",
            "production's branches.templateDatabase). Both apply when the environment is created.",
        ].join("\n"),
        async run(args, io) {
            const { values } = parse(args, { branch: { type: "string" }, target: { type: "string" }, data: { type: "string" }, from: { type: "string" }, embedded: { type: "boolean" }, refresh: { type: "boolean" }, "summary-file": { type: "string" }, "lock-timeout": { type: "string" }, json: { type: "boolean" } }, 0);
            const v = values as { branch?: string; target?: string; data?: string; from?: string; embedded?: boolean; refresh?: boolean; "summary-file"?: string; "lock-timeout"?: string; json?: boolean };
            const target = parseTarget(v.target);
            const data = parseData(v.data);
            const from = parseDatabase(v.from);
            const lockTimeout = parseSeconds(v["lock-timeout"], 600, "--lock-timeout");
            return up(projectRoot(), branchOf(v.branch, io, "up"), { target, data, from, summaryFile: v["summary-file"], lockTimeout, json: v.json === true, embedded: v.embedded === true, refresh: v.refresh === true }, lifecycleIo(io));
        },
    },
    destroy: {
        summary: "Destroy the branch's environment and remove its stack",
        usage: [
            "dataops destroy [--branch B] [--yes]",
            "",
            "Idempotent: a branch without a stack exits 0. Refuses prod, dev and any stack not",
            "created for a branch (exit 2). Without --yes it asks, or refuses when nobody can answer.",
        ].join("\n"),
        async run(args, io) {
            const { values } = parse(args, { branch: { type: "string" }, yes: { type: "boolean" } }, 0);
            const v = values as { branch?: string; yes?: boolean };
            return destroy(projectRoot(), branchOf(v.branch, io, "destroy"), v.yes === true, lifecycleIo(io));
        },
    },
    prune: {
        summary: "Destroy branch environments whose TTL passed or whose branch is gone",
        usage: [
            "dataops prune [--dry-run] [--remote ORIGIN | --branches-from FILE] [--json]",
            "",
            "Lists each branch stack to prune with its reason and destroys it unless --dry-run.",
            "A stack tagged dataops:keep=true is listed as kept. Without --remote or",
            "--branches-from, only expiry is checked.",
        ].join("\n"),
        async run(args, io) {
            const { values } = parse(args, { "dry-run": { type: "boolean" }, remote: { type: "string" }, "branches-from": { type: "string" }, json: { type: "boolean" } }, 0);
            const v = values as { "dry-run"?: boolean; remote?: string; "branches-from"?: string; json?: boolean };
            if (v.remote !== undefined && v["branches-from"] !== undefined) throw new UsageError("give only one of --remote and --branches-from");
            return prune(projectRoot(), { dryRun: v["dry-run"] === true, remote: v.remote, branchesFrom: v["branches-from"], json: v.json === true }, lifecycleIo(io));
        },
    },
    env: {
        summary: "Print how to reach the branch's environment as one identity (libpq variables)",
        usage: [
            "dataops env (--user NAME | --loader NAME | --admin) [--branch B] [--format dotenv|json|shell]",
            "",
            "Prints PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD (and PGSSLMODE) for a user of",
            "dataops:access.users, a loader's login role or the warehouse admin. A loader also gets",
            "DATAOPS_SCHEMA (its raw schema) and TARGET_POSTGRES_* for a Singer target. The password",
            "is decrypted from the stack's secrets for this. --format shell prints export lines:",
            '  eval "$(npx dataops env --user alice --format shell)" && psql',
        ].join("\n"),
        async run(args, io) {
            const { values } = parse(args, { user: { type: "string" }, loader: { type: "string" }, admin: { type: "boolean" }, branch: { type: "string" }, format: { type: "string" } }, 0);
            const v = values as { user?: string; loader?: string; admin?: boolean; branch?: string; format?: string };
            const id = parseIdentity(v);
            const format = parseFormat(v.format);
            return envCommand(projectRoot(), branchOf(v.branch, io, "env"), id, format, io);
        },
    },
    load: {
        summary: "Load a loader's sample data into the branch's environment, as the loader's role",
        usage: [
            "dataops load [LOADER...] [--branch B] [--force]",
            "",
            "Runs each loader (all when none is named) as a Singer tap piped into target-postgres",
            "(both pinned, from PyPI, installed into .dataops/tools on first use), connected as the",
            "loader's own role and writing its raw schema. The source is the loader's sample data:",
            "CSV files in loaders/samples/LOADER/, one stream a file. A second run updates what the",
            "first loaded. Branch modes: sample loads at most 1000 rows a stream; paused is refused",
            "unless --force (without names, paused loaders are skipped); live loads everything.",
        ].join("\n"),
        async run(args, io) {
            const { values, positionals } = parse(args, { branch: { type: "string" }, force: { type: "boolean" } }, 100);
            const v = values as { branch?: string; force?: boolean };
            return loadCommand(projectRoot(), branchOf(v.branch, io, "load"), positionals, v.force === true, io);
        },
    },
    dbt: {
        summary: "Run the pinned dbt on the project's dbt/ folder against the branch's environment",
        usage: [
            "dataops dbt [--user NAME] [--branch B] [--] DBT_ARGS...",
            "",
            "Runs dbt (pinned, from PyPI, installed into .dataops/tools on first use) in dbt/ with its",
            "profile, connected as NAME (default: the one user whose role writes, e.g. the transformer).",
            "Everything after the options goes to dbt: dataops dbt build, dataops dbt snapshot,",
            "dataops dbt -- docs generate. Exit 0 when dbt succeeds, 1 when it fails.",
        ].join("\n"),
        async run(args, io) {
            const { user, branch, rest } = splitDbtArgs(args);
            if (rest.length === 0) throw new UsageError("give a dbt command, e.g. dataops dbt build");
            return dbtCommand(projectRoot(), branchOf(branch, io, "dbt"), user, rest, io);
        },
    },
    audit: {
        summary: AUDIT_SUMMARY,
        usage: AUDIT_USAGE,
        run: (args, io) => runAudit(projectRoot(), args, io),
    },
    drift: {
        summary: "Show what was changed in the branch's environment outside the pipeline (exit 1 when anything was)",
        usage: [
            "dataops drift [--branch B] [--json | --markdown]",
            "",
            "Compares the environment as its last update left it with the server now: roles and their",
            "attributes and memberships, the database, schemas, grants on the database, the schemas and",
            "every table and sequence in them, and default privileges. Lists each drifted object with what",
            "was expected and what was found. Exit 0 when there is none, 1 when there is, 2 when the branch",
            "has no environment. Repair with dataops up --refresh. --markdown is for a merge-request note.",
        ].join("\n"),
        async run(args, io) {
            const { values } = parse(args, { branch: { type: "string" }, json: { type: "boolean" }, markdown: { type: "boolean" } }, 0);
            const v = values as { branch?: string; json?: boolean; markdown?: boolean };
            if (v.json && v.markdown) throw new UsageError("give only one of --json and --markdown");
            return driftCommand(projectRoot(), branchOf(v.branch, io, "drift"), v.json ? "json" : v.markdown ? "markdown" : "text", io);
        },
    },
    ls: {
        summary: "List environments with branch, target, age, expiry, last update and resources",
        usage: "dataops ls [--json]",
        async run(args, io) {
            const { values } = parse(args, { json: { type: "boolean" } }, 0);
            return ls(projectRoot(), (values as { json?: boolean }).json === true, lifecycleIo(io));
        },
    },
};

/** `dataops dbt`'s own options come first; the first other word (or everything after --) is dbt's. */
export function splitDbtArgs(args: readonly string[]): { user?: string; branch?: string; rest: string[] } {
    const out: { user?: string; branch?: string; rest: string[] } = { rest: [] };
    let i = 0;
    for (; i < args.length; i++) {
        const a = args[i];
        if (a === "--") {
            i++;
            break;
        }
        const m = /^--(user|branch)(?:=(.*))?$/.exec(a);
        if (!m) break;
        const value = m[2] ?? args[++i];
        if (value === undefined || value === "") throw new UsageError(`--${m[1]} needs a value`);
        out[m[1] as "user" | "branch"] = value;
    }
    out.rest = args.slice(i);
    return out;
}

/** The project folder (where Pulumi.yaml is), whatever the caller's working directory. */
export function projectRoot(): string {
    return findProjectRoot(__dirname);
}

function parse(args: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>["options"], maxPositionals: number) {
    let parsed;
    try {
        parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
    if (parsed.positionals.length > maxPositionals)
        throw new UsageError(`expected at most ${maxPositionals} argument(s), given ${parsed.positionals.length}: ${parsed.positionals.join(" ")}`);
    return parsed;
}

function help(): string {
    const width = Math.max(...Object.keys(commands).map((c) => c.length));
    return [
        "dataops: DataOps environments as code",
        "",
        "Usage: dataops <command> [options]   (dataops <command> --help for details)",
        "",
        "Commands:",
        ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    ].join("\n");
}

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
    const [name, ...rest] = argv;
    if (name === undefined) {
        io.err(help());
        return EXIT.usage;
    }
    if (name === "--help" || name === "-h" || name === "help") {
        io.out(help());
        return EXIT.ok;
    }
    const command = commands[name];
    if (!command) {
        io.err(`dataops: unknown command "${name}" (allowed: ${Object.keys(commands).join(", ")})`);
        io.err("Run dataops --help for the list.");
        return EXIT.usage;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
        io.out(command.usage);
        return EXIT.ok;
    }
    try {
        return await command.run(rest, io);
    } catch (e) {
        if (e instanceof UsageError) {
            io.err(`dataops ${name}: ${e.message}`);
            io.err(`Usage: ${command.usage.split("\n")[0]}`);
            return EXIT.usage;
        }
        if (isRefusal(e)) {
            io.err(`dataops ${name}: refused: ${(e as Error).message}`);
            return EXIT.usage;
        }
        if (io.signal?.aborted) {
            io.err(`dataops ${name}: cancelled. The engine saved its state; run the same command again to go on from there.`);
            return EXIT.cancelled;
        }
        // The engine's output was shown live: its error lines once, then what to do.
        const lines = failureLines(e instanceof Advised ? e.cause : e);
        io.err(`dataops ${name}: ${lines[0]}`);
        for (const l of lines.slice(1)) io.err(`  ${l}`);
        if (e instanceof Advised && e.advice) io.err(e.advice);
        return EXIT.failed;
    }
}
