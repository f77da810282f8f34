// The GitLab template run as a team adopting it would run it: through gitlab-ci-local, a real
// GitLab CI interpreter (pinned in tools/ci.json, installed on first use by test/support/ciTools.ts).
// - Which jobs each pipeline gets: a merge request, the default branch, a schedule.
// - audit, env:up, env:down and env:prune executed on a copy of this checkout, against a local
//   PostgreSQL server standing in for production's shared branch server (dataops:branches.server
//   in the copy's Pulumi.prod.yaml points at it), with a file state backend: what an up creates,
//   down and prune remove, and a refused up creates nothing.
// Every job runs with gitlab-ci-local's shell executor, on this machine's Node, not in the
// template's node:20-bookworm image: the docker executor needs images from a registry that this
// machine cannot reach. The jobs' scripts are the template's, unchanged; only CI/CD variables are set.
import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { toolsDir } from "../../local/tools";
import { findLeftovers, type Leftovers, type ServerAdmin, sweep } from "../../lifecycle/sweep";
import { environmentPrefix, stackNameForBranch } from "../../naming";
import { ensureGitlabCiLocal, type GitlabCiLocal } from "../support/ciTools";

const root = resolve(__dirname, "..", "..");
const log = (l: string) => process.stderr.write(`${l}\n`);
const B = { orders: "feature/gcl-orders", refused: "feature/gcl-refused", gone: "feature/gcl-gone" } as const;
const PASSPHRASE = "gitlab-ci-local-e2e";

let gcl: GitlabCiLocal;
let server: EmbeddedServer;
let admin: ServerAdmin;
let work: string; // temp folder: the project copy, its origin, the state backend
let project: string;
let state: string;

function git(args: string[], cwd = project): string {
    const r = spawnSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "CI", GIT_AUTHOR_EMAIL: "ci@example.invalid", GIT_COMMITTER_NAME: "CI", GIT_COMMITTER_EMAIL: "ci@example.invalid" } });
    if (r.status !== 0) throw new Error(`git ${args.join(" ")} failed in ${cwd}: ${r.stderr}`);
    return r.stdout.trim();
}

/** This checkout as a team's repository would hold it: the working tree's files (tracked and new, not ignored), committed on main, pushed to an origin. */
function makeProject(): void {
    project = join(work, "project");
    const files = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" }).stdout.split("\0").filter(Boolean);
    for (const f of files) {
        if (!existsSync(join(root, f))) continue; // deleted in the working tree
        mkdirSync(dirname(join(project, f)), { recursive: true });
        cpSync(join(root, f), join(project, f));
    }
    // The stand-in for production's shared branch server: the same config keys, pointing here.
    // 127.0.0.1, not "localhost": the CLI takes localhost:54329 for the embedded default and
    // would start that for the copy; a shared server is never started by the CLI.
    const prod = join(project, "Pulumi.prod.yaml");
    const before = readFileSync(prod, "utf8");
    const after = before.replace(
        /(\n {4}server:\n {6}host: )\S+\n {6}port: \d+\n {6}adminUser: \S+\n {6}sslMode: \S+\n/,
        `$1127.0.0.1\n      port: ${server.port}\n      adminUser: ${server.user}\n      sslMode: disable\n`,
    );
    if (after === before) throw new Error("Pulumi.prod.yaml: dataops:branches.server (host, port, adminUser, sslMode) not found where this test expects it");
    writeFileSync(prod, after);
    // The Python venvs (dbt, for env:up's dbt build) are not relocatable: the copy uses this
    // checkout's, installed from the same pins (npm run test:tools, or the first use).
    mkdirSync(join(project, ".dataops"), { recursive: true });
    symlinkSync(toolsDir(root), toolsDir(project));
    git(["init", "-q", "-b", "main"]);
    git(["add", "-A"]);
    git(["commit", "-q", "-m", "the project"]);
    const origin = join(work, "origin.git");
    git(["init", "-q", "--bare", "-b", "main", origin], work);
    git(["remote", "add", "origin", origin]);
    git(["push", "-q", "origin", "main"]);
    for (const b of Object.values(B)) git(["push", "-q", "origin", `main:refs/heads/${b}`]);
    git(["fetch", "-q", "origin"]);
    git(["remote", "set-head", "origin", "main"]);
}

function checkout(branch: string): void {
    git(["checkout", "-q", "-B", branch, `origin/${branch}`]);
}

type Pipeline = "mergeRequest" | "defaultBranch" | "schedule";

/** What GitLab sets for each kind of pipeline (gitlab-ci-local takes the rest from git: the branch checked out). */
function pipelineVariables(kind: Pipeline, branch: string): string[] {
    if (kind === "mergeRequest")
        return [
            "--variable", "CI_PIPELINE_SOURCE=merge_request_event",
            "--unset-variable", "CI_COMMIT_BRANCH", // GitLab does not set it in merge-request pipelines
            "--variable", `CI_MERGE_REQUEST_SOURCE_BRANCH_NAME=${branch}`,
            "--variable", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main",
            "--variable", "CI_MERGE_REQUEST_IID=12",
        ];
    return ["--variable", `CI_PIPELINE_SOURCE=${kind === "schedule" ? "schedule" : "push"}`];
}

function npmCache(): string {
    const r = spawnSync("npm", ["config", "get", "cache"], { encoding: "utf8" });
    return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : join(homedir(), ".npm");
}

/**
 * The project's CI/CD variables, as the template's header lists them. The secret ones go through
 * gitlab-ci-local's project variables file (mode 0600; on a command line they would show in `ps`);
 * the paths through --variable (the file would take a value naming a path for a file variable).
 */
function projectVariables(opts: { adminPassword: boolean }): string[] {
    const secrets: Record<string, string> = { PULUMI_CONFIG_PASSPHRASE: PASSPHRASE };
    if (opts.adminPassword) secrets.DATAOPS_SERVER_ADMIN_PASSWORD = server.password;
    const file = join(work, "project-variables.yml");
    writeFileSync(file, Object.entries(secrets).map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`).join(""), { mode: 0o600 });
    const plain: Record<string, string> = {
        PULUMI_BACKEND_URL: `file://${state}`,
        // The runner's caches: npm's, and Pulumi's home with the engine (scripts/engine.mjs built it
        // there for this run; a runner would restore it from the cache the template declares).
        npm_config_cache: npmCache(),
        PULUMI_HOME: process.env.PULUMI_HOME ?? join(homedir(), ".pulumi"),
    };
    return ["--variables-file", file, ...Object.entries(plain).flatMap(([k, v]) => ["--variable", `${k}=${v}`])];
}

interface Run {
    readonly code: number | null;
    readonly out: string;
}

/** gitlab-ci-local in the project copy; its output goes to stderr as it comes, and is returned. */
function gitlabCiLocal(args: string[]): Promise<Run> {
    const env: NodeJS.ProcessEnv = {};
    // The jobs see the project's variables only, not this test run's.
    for (const [k, v] of Object.entries(process.env)) if (!/^(PULUMI_|DATAOPS_|CI_|GITLAB_|GCL_|npm_)/.test(k) && k !== "CI") env[k] = v;
    env.GCL_IGNORE_PREDEFINED_VARS = "CI_PIPELINE_SOURCE,CI_COMMIT_BRANCH,CI_MERGE_REQUEST_SOURCE_BRANCH_NAME,CI_MERGE_REQUEST_TARGET_BRANCH_NAME,CI_MERGE_REQUEST_IID";
    const child = spawn(gcl.node, [gcl.script, "--home", join(work, "gcl-home"), "--no-color", "--max-job-name-padding", "0", ...args], { cwd: project, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const take = (b: Buffer) => {
        out += b.toString("utf8");
        process.stderr.write(b);
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    return new Promise((resolve, reject) => {
        child.on("error", reject);
        child.on("close", (code) => resolve({ code, out }));
    });
}

async function runJob(job: string, kind: Pipeline, branch: string, opts: { adminPassword: boolean }): Promise<Run> {
    checkout(branch);
    rmSync(join(project, "dataops-summary.md"), { force: true });
    return gitlabCiLocal(["--force-shell-executor", "--manual", job, ...pipelineVariables(kind, branch), ...projectVariables(opts), job]);
}

/** The jobs a pipeline gets (when:never left out), in the order gitlab-ci-local lists them. */
async function jobList(kind: Pipeline, branch: string): Promise<string[]> {
    checkout(branch);
    const r = await gitlabCiLocal(["--list-csv", ...pipelineVariables(kind, branch)]);
    if (r.code !== 0) throw new Error(`gitlab-ci-local --list-csv failed (exit ${r.code})`);
    const lines = r.out.split("\n");
    const header = lines.findIndex((l) => l.startsWith("name;stage;"));
    if (header < 0) throw new Error(`gitlab-ci-local --list-csv printed no job table:\n${r.out}`);
    return lines.slice(header + 1).filter((l) => l.includes(";")).map((l) => l.split(";")[0]);
}

/** Every file of the state backend that belongs to the branch's stack (its state, history, backups, locks). */
function stateFiles(branch: string): string[] {
    const stack = stackNameForBranch(branch);
    const found: string[] = [];
    const walk = (dir: string) => {
        if (!existsSync(dir)) return;
        for (const e of readdirSync(dir, { withFileTypes: true })) {
            const p = join(dir, e.name);
            if (e.name === stack || e.name.startsWith(`${stack}.`)) found.push(relative(state, p));
            else if (e.isDirectory()) walk(p);
        }
    };
    walk(state);
    return found.sort();
}

/** The branch's stack in the file backend: its state file (what `pulumi stack ls` lists). */
function stackFiles(branch: string): string[] {
    const stack = stackNameForBranch(branch);
    return stateFiles(branch).filter((f) => f.startsWith(join(".pulumi", "stacks")) && (f.endsWith(`${stack}.json`) || f.endsWith(`${stack}.json.gz`)));
}

function leftovers(branch: string): Promise<Leftovers> {
    return findLeftovers(admin, environmentPrefix(stackNameForBranch(branch)));
}

const NOTHING: Leftovers = { databases: [], roles: [] };

/** What an earlier, interrupted run of this file left on the shared stand-in. */
async function sweepBranches(): Promise<void> {
    for (const b of Object.values(B)) await sweep(admin, environmentPrefix(stackNameForBranch(b)));
}

beforeAll(async () => {
    gcl = await ensureGitlabCiLocal(root, log);
    log(`gitlab-ci: ${gcl.how}`);
    server = await ensureEmbeddedServer(root, log);
    admin = { host: server.host, port: server.port, user: server.user, password: server.password, sslMode: "disable" };
    await sweepBranches();
    work = mkdtempSync(join(tmpdir(), "dataops-gitlab-ci-"));
    state = join(work, "state");
    mkdirSync(state);
    makeProject();
});

afterAll(async () => {
    if (admin) await sweepBranches();
    if (work) rmSync(work, { recursive: true, force: true });
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("the GitLab pipelines, as gitlab-ci-local builds them", () => {
    it("GIVEN a merge request WHEN its pipeline is built THEN it gets the tests, the audit and the branch environment's up and (manual) down", async () => {
        expect(await jobList("mergeRequest", B.orders)).toEqual(["test", "audit", "env:up", "env:down"]);
    });

    it("GIVEN a push to the default branch WHEN its pipeline is built THEN it gets the tests, the audit and production's preview and up", async () => {
        expect(await jobList("defaultBranch", "main")).toEqual(["test", "audit", "prod:preview", "prod:up"]);
    });

    it("GIVEN a schedule on the default branch WHEN its pipeline is built THEN it only prunes", async () => {
        expect(await jobList("schedule", "main")).toEqual(["env:prune"]);
    });
});

describe("the merge request's jobs, run with the shell executor against a stand-in for the shared branch server", () => {
    it("GIVEN a merge request WHEN audit runs THEN it passes", async () => {
        const r = await runJob("audit", "mergeRequest", B.orders, { adminPassword: true });
        expect(r.out).toContain("audit: clean");
        expect({ code: r.code, passed: /PASS\s+audit/.test(r.out) }).toEqual({ code: 0, passed: true });
    });

    it("GIVEN no DATAOPS_SERVER_ADMIN_PASSWORD WHEN env:up runs THEN the job fails, its summary says why, and nothing is created", async () => {
        const r = await runJob("env:up", "mergeRequest", B.refused, { adminPassword: false });
        expect(r.code).not.toBe(0);
        expect(r.out).toMatch(/FAIL\s+env:up/);
        expect(r.out).toContain("DATAOPS_SERVER_ADMIN_PASSWORD is not set");
        expect(readFileSync(join(project, "dataops-summary.md"), "utf8")).toContain("DATAOPS_SERVER_ADMIN_PASSWORD is not set");
        expect(stateFiles(B.refused)).toEqual([]);
        expect(await leftovers(B.refused)).toEqual(NOTHING);
    });

    it("GIVEN the admin password WHEN env:up runs THEN the environment is up on the shared server, with its summary", async () => {
        const r = await runJob("env:up", "mergeRequest", B.orders, { adminPassword: true });
        expect({ code: r.code, passed: /PASS\s+env:up/.test(r.out) }).toEqual({ code: 0, passed: true });
        const stack = stackNameForBranch(B.orders);
        expect(stackFiles(B.orders).length).toBeGreaterThan(0);
        const made = await leftovers(B.orders);
        expect(made.databases.length).toBeGreaterThan(0);
        expect(made.roles.length).toBeGreaterThan(0);
        const summary = readFileSync(join(project, "dataops-summary.md"), "utf8");
        expect(summary).toContain(stack);
        expect(summary).toContain("dbt build");
        // No token in this test: the note is not posted, and that does not fail the job.
        expect(r.out).toContain("DATAOPS_GITLAB_TOKEN is not set");
    });

    it("GIVEN the environment WHEN env:down runs THEN no stack, database or role of the branch is left", async () => {
        const r = await runJob("env:down", "mergeRequest", B.orders, { adminPassword: true });
        expect({ code: r.code, passed: /PASS\s+env:down/.test(r.out) }).toEqual({ code: 0, passed: true });
        expect(stackFiles(B.orders)).toEqual([]);
        expect(await leftovers(B.orders)).toEqual(NOTHING);
        // The engine's backup of the removed stack file (<stack>.json.bak) may remain: removing the
        // backend's history of destroyed branches is issue #16's; shown here, not asserted.
        log(`gitlab-ci: what the backend still holds of ${stackNameForBranch(B.orders)} after env:down: ${JSON.stringify(stateFiles(B.orders))}`);
    });

    it("GIVEN an environment whose branch was deleted WHEN the scheduled env:prune runs THEN it is destroyed and nothing of it is left", async () => {
        const up = await runJob("env:up", "mergeRequest", B.gone, { adminPassword: true });
        expect(up.code).toBe(0);
        expect(stackFiles(B.gone).length).toBeGreaterThan(0);
        git(["push", "-q", "origin", "--delete", B.gone]);
        const r = await runJob("env:prune", "schedule", "main", { adminPassword: true });
        expect({ code: r.code, passed: /PASS\s+env:prune/.test(r.out) }).toEqual({ code: 0, passed: true });
        expect(stackFiles(B.gone)).toEqual([]);
        expect(await leftovers(B.gone)).toEqual(NOTHING);
    });
});
