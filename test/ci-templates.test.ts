// The CI templates (GitLab: .gitlab-ci.yml + ci/gitlab/; GitHub: .github/workflows/dataops-*.yml):
// which jobs run in which pipelines, the branch environment's lifecycle, production gating, no
// inline secrets, the GitLab note poster against a fake API, and actionlint on the workflows
// (test/e2e/gitlab-ci.test.ts runs the GitLab pipeline itself through gitlab-ci-local).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { dataopsConfigSchema } from "../config/schema";
import { readStackFile } from "../config/stackFiles";
import { ensureActionlint } from "./support/ciTools";

const GITLAB_ROOT = ".gitlab-ci.yml";
const GITLAB_TEMPLATE = "ci/gitlab/dataops.gitlab-ci.yml";
const POST_SUMMARY = "ci/gitlab/post-summary.sh";
const GH_REVIEW = ".github/workflows/dataops-review.yml";
const GH_MAIN = ".github/workflows/dataops-main.yml";
const AUDIT_GUARD = "grep -Eq '^  audit( |$)'";

// ---------- typed access to parsed YAML ----------

type Mapping = Record<string, unknown>;

function isMapping(v: unknown): v is Mapping {
    return typeof v === "object" && v !== null && !Array.isArray(v);
}

function mapping(v: unknown, what: string): Mapping {
    if (!isMapping(v)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(v)}`);
    return v;
}

function list(v: unknown, what: string): unknown[] {
    if (!Array.isArray(v)) throw new Error(`${what}: expected a list, got ${JSON.stringify(v)}`);
    return v;
}

function strings(v: unknown, what: string): string[] {
    if (v === undefined) return [];
    if (typeof v === "string") return [v];
    return list(v, what).map((s, i) => {
        if (typeof s !== "string") throw new Error(`${what}[${i}]: expected a string, got ${JSON.stringify(s)}`);
        return s;
    });
}

function loadYaml(file: string): Mapping {
    const doc: unknown = parse(readFileSync(file, "utf8"));
    return mapping(doc, file);
}

// ---------- GitLab: jobs with `extends` resolved, rules evaluated ----------

const GITLAB_KEYWORDS = new Set(["default", "include", "stages", "variables", "workflow", "image", "services", "cache", "before_script", "after_script", "spec"]);

/** GitLab's `extends`: hashes merge deeply, everything else (lists too) is replaced. */
function deepMerge(base: Mapping, over: Mapping): Mapping {
    const out: Mapping = { ...base };
    for (const [k, v] of Object.entries(over)) {
        const b = out[k];
        out[k] = isMapping(b) && isMapping(v) ? deepMerge(b, v) : v;
    }
    return out;
}

function resolveJob(doc: Mapping, name: string, seen: string[] = []): Mapping {
    if (seen.includes(name)) throw new Error(`extends cycle: ${[...seen, name].join(" -> ")}`);
    const job = mapping(doc[name], `job ${name}`);
    let merged: Mapping = {};
    for (const parent of strings(job.extends, `${name}.extends`)) merged = deepMerge(merged, resolveJob(doc, parent, [...seen, name]));
    const own: Mapping = { ...job };
    delete own.extends;
    return deepMerge(merged, own);
}

/** The pipeline GitLab builds from the root file with the local template included. */
function gitlabPipeline(): { root: Mapping; template: Mapping; stages: string[]; jobs: Map<string, Mapping> } {
    const root = loadYaml(GITLAB_ROOT);
    const template = loadYaml(GITLAB_TEMPLATE);
    const merged: Mapping = { ...template, ...root };
    delete merged.include;
    const stages = strings(merged.stages, "stages");
    const jobs = new Map<string, Mapping>();
    for (const name of Object.keys(merged)) {
        if (GITLAB_KEYWORDS.has(name) || name.startsWith(".")) continue;
        jobs.set(name, resolveJob(merged, name));
    }
    return { root, template, stages, jobs };
}

type Vars = Readonly<Record<string, string | undefined>>;

/** `rules:if` expressions as these templates use them: `$A == "x"`, `$A != $B`, joined by && and ||. */
function evalIf(expr: string, vars: Vars): boolean {
    if (/[()]/.test(expr)) throw new Error(`rules:if with parentheses is not supported by this test: ${expr}`);
    const operand = (token: string): string | null => {
        if (token.startsWith("$")) return vars[token.slice(1)] ?? null;
        const quoted = /^"(.*)"$|^'(.*)'$/.exec(token);
        if (quoted) return quoted[1] ?? quoted[2] ?? "";
        if (token === "null") return null;
        throw new Error(`rules:if operand not understood by this test: ${token} (in ${expr})`);
    };
    const term = (t: string): boolean => {
        const cmp = /^(\S+)\s*(==|!=)\s*(\S+)$/.exec(t);
        if (cmp) {
            const equal = operand(cmp[1]) === operand(cmp[3]);
            return cmp[2] === "==" ? equal : !equal;
        }
        if (/^\$\w+$/.test(t)) return Boolean(vars[t.slice(1)]);
        throw new Error(`rules:if term not understood by this test: ${t} (in ${expr})`);
    };
    return expr.split("||").some((alt) => alt.split("&&").every((t) => term(t.trim())));
}

interface RuleOutcome {
    readonly when: string; // "never" when the job is not in the pipeline
    readonly allowFailure?: unknown;
}

function evalRules(rules: unknown, vars: Vars, what: string): RuleOutcome {
    if (rules === undefined) return { when: "on_success" };
    for (const [i, r] of list(rules, what).entries()) {
        const rule = mapping(r, `${what}[${i}]`);
        if (rule.if !== undefined && typeof rule.if !== "string") throw new Error(`${what}[${i}].if is not a string`);
        if (rule.if === undefined || evalIf(rule.if, vars)) {
            return { when: typeof rule.when === "string" ? rule.when : "on_success", allowFailure: rule.allow_failure };
        }
    }
    return { when: "never" };
}

// The pipelines a project sees (GitLab's predefined variables for each).
const PIPELINES: Readonly<Record<string, Vars>> = {
    mergeRequest: {
        CI_PIPELINE_SOURCE: "merge_request_event",
        CI_DEFAULT_BRANCH: "main",
        CI_COMMIT_REF_NAME: "feature/orders",
        CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: "feature/orders",
        CI_MERGE_REQUEST_IID: "12",
    },
    defaultBranch: { CI_PIPELINE_SOURCE: "push", CI_DEFAULT_BRANCH: "main", CI_COMMIT_BRANCH: "main", CI_COMMIT_REF_NAME: "main" },
    schedule: { CI_PIPELINE_SOURCE: "schedule", CI_DEFAULT_BRANCH: "main", CI_COMMIT_BRANCH: "main", CI_COMMIT_REF_NAME: "main" },
    featurePush: { CI_PIPELINE_SOURCE: "push", CI_DEFAULT_BRANCH: "main", CI_COMMIT_BRANCH: "feature/orders", CI_COMMIT_REF_NAME: "feature/orders" },
};

/** In which pipelines a job runs, and how ("on_success", "manual"; never-runs are left out). */
function whereJobRuns(job: Mapping, name: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [pipeline, vars] of Object.entries(PIPELINES)) {
        const { when } = evalRules(job.rules, vars, `${name}.rules`);
        if (when !== "never") out[pipeline] = when;
    }
    return out;
}

function scriptOf(job: Mapping, name: string): string {
    return [...strings(job.before_script, `${name}.before_script`), ...strings(job.script, `${name}.script`)].join("\n");
}

// ---------- durations: production's TTL ("72h", "7d") and GitLab's auto_stop_in ("3 days") ----------

const UNIT_HOURS: ReadonlyArray<[RegExp, number]> = [
    [/^(s|secs?|seconds?)$/, 1 / 3600],
    [/^(m|mins?|minutes?)$/, 1 / 60],
    [/^(h|hrs?|hours?)$/, 1],
    [/^(d|days?)$/, 24],
    [/^(w|wks?|weeks?)$/, 168],
];

function hours(duration: string): number {
    const parts = [...duration.trim().toLowerCase().matchAll(/(\d+(?:\.\d+)?)\s*([a-z]+)/g)];
    const rest = duration.toLowerCase().replace(/(\d+(?:\.\d+)?)\s*([a-z]+)/g, "").replace(/[\s,]|and/g, "");
    if (parts.length === 0 || rest !== "") throw new Error(`not a duration: ${JSON.stringify(duration)}`);
    return parts.reduce((sum, [, n, unit]) => {
        const found = UNIT_HOURS.find(([re]) => re.test(unit));
        if (!found) throw new Error(`unknown unit ${JSON.stringify(unit)} in ${JSON.stringify(duration)}`);
        return sum + Number(n) * found[1];
    }, 0);
}

/** Production's branch TTL: the committed `dataops:branches.ttl`, else the policy's default. */
function productionTtl(): string {
    const prod = loadYaml("Pulumi.prod.yaml");
    const branches = isMapping(prod.config) ? prod.config["dataops:branches"] : undefined;
    if (isMapping(branches) && typeof branches.ttl === "string") return branches.ttl;
    return dataopsConfigSchema.parse(readStackFile("Pulumi.prod.yaml").values).branches.ttl;
}

// ---------- secrets: only references, never values ----------

const SECRET_KEY = /(^|[_-])(password|passphrase|secret|secrets|token|access_key|private_key|api_key)$/i;
const SECRET_TEXT: ReadonlyArray<[string, RegExp]> = [
    ["an AWS access key id", /AKIA[0-9A-Z]{16}/],
    ["a PEM block", /-----BEGIN/],
    ["a GitLab token", /glpat-[0-9A-Za-z_-]{16,}/],
    ["a GitHub token", /\bgh[pousr]_[0-9A-Za-z]{30,}/],
    ["a literal password/passphrase/secret/token assignment", /(password|passphrase|secret|token)\s*=\s*(?![\s"']*\$)[^\s"'$]/i],
    ["a literal token header or key", /token:\s*(?!["']?\$)[^\s"']/i],
];

/** A value that only refers to a secret: $VAR, ${VAR}, ${{ secrets.X }} / ${{ vars.X }}. */
function isReference(value: string): boolean {
    return /^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?$/.test(value) || /^\$\{\{\s*(secrets|vars)\.[A-Za-z0-9_]+\s*\}\}$/.test(value);
}

function secretFindings(doc: unknown, where: string): string[] {
    const findings: string[] = [];
    const visit = (v: unknown, path: string, key: string | undefined, underPermissions: boolean): void => {
        if (typeof v === "string") {
            if (key !== undefined && !underPermissions && SECRET_KEY.test(key) && !isReference(v)) findings.push(`${path}: ${key} is a literal, not a variable reference`);
            for (const [what, re] of SECRET_TEXT) if (re.test(v)) findings.push(`${path}: contains ${what}`);
        } else if (Array.isArray(v)) {
            v.forEach((item, i) => visit(item, `${path}[${i}]`, undefined, underPermissions));
        } else if (isMapping(v)) {
            for (const [k, child] of Object.entries(v)) visit(child, `${path}.${k}`, k, underPermissions || k === "permissions");
        }
    };
    visit(doc, where, undefined, false);
    return findings;
}

// ---------- GitHub workflows ----------

interface Workflow {
    readonly on: Mapping;
    readonly jobs: Mapping;
    readonly doc: Mapping;
}

function workflow(file: string): Workflow {
    const doc = loadYaml(file);
    return { doc, on: mapping(doc.on, `${file}: on`), jobs: mapping(doc.jobs, `${file}: jobs`) };
}

function ghJob(w: Workflow, name: string): Mapping {
    return mapping(w.jobs[name], `job ${name}`);
}

function steps(job: Mapping, what: string): Mapping[] {
    return list(job.steps, `${what}.steps`).map((s, i) => mapping(s, `${what}.steps[${i}]`));
}

function runs(job: Mapping, what: string): string {
    return steps(job, what)
        .map((s) => (typeof s.run === "string" ? s.run : ""))
        .join("\n");
}

function uses(job: Mapping, what: string): Mapping[] {
    return steps(job, what).filter((s) => typeof s.uses === "string");
}

function needsOf(job: Mapping, what: string): string[] {
    return strings(job.needs, `${what}.needs`);
}

// ---------- the GitLab note poster against a fake GitLab API ----------

interface SeenRequest {
    readonly method: string;
    readonly path: string;
    readonly query: URLSearchParams;
    readonly token: string | undefined;
    readonly body: string;
}

interface Note {
    readonly id: number;
    readonly body: string;
    readonly system: boolean;
}

const NOTES_PATH = "/api/v4/projects/7/merge_requests/3/notes";

async function runPostSummary(opts: { pages: Note[][]; writeStatus?: number; env?: Record<string, string>; summary: string }): Promise<{ code: number | null; out: string; requests: SeenRequest[] }> {
    const requests: SeenRequest[] = [];
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
            const url = new URL(req.url ?? "/", "http://localhost");
            const token = req.headers["private-token"];
            requests.push({ method: req.method ?? "", path: url.pathname, query: url.searchParams, token: Array.isArray(token) ? token[0] : token, body: Buffer.concat(chunks).toString("utf8") });
            res.setHeader("Content-Type", "application/json");
            if (req.method === "GET" && url.pathname === NOTES_PATH) {
                const page = Number(url.searchParams.get("page") ?? "1");
                res.end(JSON.stringify(opts.pages[page - 1] ?? []));
            } else if ((req.method === "PUT" && url.pathname.startsWith(`${NOTES_PATH}/`)) || (req.method === "POST" && url.pathname === NOTES_PATH)) {
                res.statusCode = opts.writeStatus ?? 200;
                res.end(JSON.stringify({ id: 1 }));
            } else {
                res.statusCode = 404;
                res.end(JSON.stringify({ message: "404 Not found" }));
            }
        });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const dir = mkdtempSync(join(tmpdir(), "dataops-post-summary-"));
    try {
        const { port } = server.address() as AddressInfo;
        const file = join(dir, "dataops-summary.md");
        writeFileSync(file, opts.summary);
        const env: Record<string, string> = {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            HOME: dir,
            NO_PROXY: "127.0.0.1,localhost",
            no_proxy: "127.0.0.1,localhost",
            CI_API_V4_URL: `http://127.0.0.1:${port}/api/v4`,
            CI_PROJECT_ID: "7",
            CI_MERGE_REQUEST_IID: "3",
            DATAOPS_GITLAB_TOKEN: "fake-token-for-the-fake-api",
            ...opts.env,
        };
        const child = spawn("sh", [POST_SUMMARY, file], { env, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
        child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
        const code = await new Promise<number | null>((resolve, reject) => {
            child.on("error", reject);
            child.on("close", resolve);
        });
        return { code, out, requests };
    } finally {
        server.close();
        rmSync(dir, { recursive: true, force: true });
    }
}

const MARKER = "<!-- dataops-summary -->";
const SUMMARY = '## Environment `br-feature-orders`\n\n| object | state |\n| --- | --- |\n| database "analytics" | created |\n';

// ======================================================================================

describe("GitLab template", () => {
    it("GIVEN .gitlab-ci.yml WHEN read THEN it includes the local dataops template and defines no jobs or variables of its own", () => {
        const root = loadYaml(GITLAB_ROOT);
        const include = list(root.include, "include").map((x, i) => mapping(x, `include[${i}]`));
        expect(include).toContainEqual({ local: GITLAB_TEMPLATE });
        expect(root.variables).toBeUndefined();
        expect(Object.keys(root).filter((k) => !GITLAB_KEYWORDS.has(k))).toEqual([]);
    });

    it("GIVEN the pipeline WHEN its stages are read THEN they are test, review, deploy, maintenance and every job's stage is one of them", () => {
        const { stages, jobs } = gitlabPipeline();
        expect(stages).toEqual(["test", "review", "deploy", "maintenance"]);
        expect([...jobs.keys()].sort()).toEqual(["audit", "env:down", "env:prune", "env:up", "prod:preview", "prod:up", "test"]);
        for (const [name, job] of jobs) expect({ name, stageKnown: stages.includes(String(job.stage ?? "test")) }).toEqual({ name, stageKnown: true });
    });

    it("GIVEN each kind of pipeline WHEN rules are evaluated THEN every job runs exactly where it should", () => {
        const { jobs } = gitlabPipeline();
        const where = Object.fromEntries([...jobs].map(([name, job]) => [name, whereJobRuns(job, name)]));
        expect(where).toEqual({
            test: { mergeRequest: "on_success", defaultBranch: "on_success" },
            audit: { mergeRequest: "on_success", defaultBranch: "on_success" },
            "env:up": { mergeRequest: "on_success" },
            "env:down": { mergeRequest: "manual" },
            "prod:preview": { defaultBranch: "on_success" },
            "prod:up": { defaultBranch: "on_success" },
            "env:prune": { schedule: "on_success" },
        });
    });

    it("GIVEN the root workflow rules WHEN evaluated THEN merge requests, the default branch and schedules get pipelines, a bare branch push does not", () => {
        const { root } = gitlabPipeline();
        const workflow = mapping(root.workflow, "workflow");
        const created = Object.entries(PIPELINES)
            .filter(([, vars]) => evalRules(workflow.rules, vars, "workflow.rules").when !== "never")
            .map(([p]) => p);
        expect(created).toEqual(["mergeRequest", "defaultBranch", "schedule"]);
    });

    it("GIVEN env:up WHEN read THEN it brings up the MR's environment, posts the summary, and stops through env:down after auto_stop_in", () => {
        const job = gitlabPipeline().jobs.get("env:up");
        if (!job) throw new Error("env:up is missing");
        expect(job.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }]);
        const env = mapping(job.environment, "env:up.environment");
        expect(env.name).toBe("review/$CI_COMMIT_REF_SLUG");
        expect(env.on_stop).toBe("env:down");
        expect(typeof env.auto_stop_in).toBe("string");
        const script = scriptOf(job, "env:up");
        expect(script).toContain("npm ci");
        expect(script).toContain("npx dataops up --summary-file dataops-summary.md");
        // A note that cannot be posted warns; it never turns a good deploy into a failed one.
        expect(script).toContain(`sh ${POST_SUMMARY} dataops-summary.md || echo "WARNING - the summary could not be posted`);
        // An environment starts empty (branches.data): the loaders' sample data goes in before dbt builds.
        expect(script.indexOf("npx dataops up")).toBeLessThan(script.indexOf("npx dataops load"));
        expect(script.indexOf("npx dataops load")).toBeLessThan(script.indexOf("sh ci/dbt-build.sh"));
        // Every line before the note is posted tolerates failure (GitLab stops a script at the first failing line).
        const lines = strings(job.script, "env:up.script");
        const post = lines.findIndex((l) => l.includes(POST_SUMMARY));
        for (const line of lines.slice(0, post)) expect({ line, tolerant: /\|\| (status=\$\?|echo|\{ status=\$\?)|^status=0$|^if \[ "\$status" -eq 0 \]/m.test(line) }).toEqual({ line, tolerant: true });
        // The summary is posted before the job reports up's exit status.
        expect(script.indexOf(POST_SUMMARY)).toBeLessThan(script.indexOf('exit "$status"'));
    });

    it("GIVEN env:down WHEN read THEN it stops the same environment, manually on MR pipelines without blocking them, and destroys the branch", () => {
        const { jobs } = gitlabPipeline();
        const down = jobs.get("env:down");
        const up = jobs.get("env:up");
        if (!down || !up) throw new Error("env:up or env:down is missing");
        const env = mapping(down.environment, "env:down.environment");
        expect(env).toEqual({ name: mapping(up.environment, "env:up.environment").name, action: "stop" });
        expect(evalRules(down.rules, PIPELINES.mergeRequest, "env:down.rules")).toEqual({ when: "manual", allowFailure: true });
        expect(mapping(down.variables ?? {}, "env:down.variables").GIT_STRATEGY).toBeUndefined();
        // The branch comes from the same CI variables as up's, never from a variable of its own.
        expect(scriptOf(down, "env:down")).toContain("npx dataops destroy --yes");
        expect(scriptOf(down, "env:down")).not.toContain("--branch");
        // An update and the destroy of one branch never overlap.
        expect(down.resource_group).toBe(up.resource_group);
        expect(up.resource_group).toBeDefined();
    });

    it("GIVEN auto_stop_in WHEN compared with Pulumi.prod.yaml THEN it equals production's branch TTL", () => {
        const up = gitlabPipeline().jobs.get("env:up");
        if (!up) throw new Error("env:up is missing");
        const autoStop = mapping(up.environment, "env:up.environment").auto_stop_in;
        if (typeof autoStop !== "string") throw new Error("env:up.environment.auto_stop_in is not a string");
        const ttl = productionTtl();
        expect({ autoStopIn: autoStop, hours: hours(autoStop) }).toEqual({ autoStopIn: autoStop, hours: hours(ttl) });
        // The converter itself.
        expect([hours("72h"), hours("3 days"), hours("7d"), hours("1 week"), hours("1 day 12 hours"), hours("90 min")]).toEqual([72, 72, 168, 168, 36, 1.5]);
    });

    it("GIVEN the production jobs WHEN read THEN prod:up runs pulumi up after prod:preview, on the default branch only, one at a time", () => {
        const { jobs } = gitlabPipeline();
        const preview = jobs.get("prod:preview");
        const up = jobs.get("prod:up");
        if (!preview || !up) throw new Error("prod:preview or prod:up is missing");
        expect(needsOf(up, "prod:up")).toEqual(["prod:preview"]);
        expect(needsOf(preview, "prod:preview")).toEqual(expect.arrayContaining(["test", "audit"]));
        expect(up.resource_group).toBe("production");
        expect(mapping(up.environment, "prod:up.environment").name).toBe("production");
        expect(scriptOf(preview, "prod:preview")).toContain("pulumi preview --stack prod");
        // A new state backend has no production stack: the first run creates it.
        expect(scriptOf(preview, "prod:preview")).toContain("pulumi stack select --create prod");
        expect(scriptOf(up, "prod:up")).toContain("pulumi up --stack prod --yes");
        for (const [name, job] of [["prod:preview", preview], ["prod:up", up]] as const) {
            expect(scriptOf(job, name)).toContain('export PATH="$(node scripts/engine.mjs ensure --print-path):$PATH"');
            expect(Object.keys(whereJobRuns(job, name))).toEqual(["defaultBranch"]);
        }
    });

    it("GIVEN env:prune WHEN read THEN it runs on schedules only, with full history and every branch of origin fetched", () => {
        const job = gitlabPipeline().jobs.get("env:prune");
        if (!job) throw new Error("env:prune is missing");
        expect(job.rules).toEqual([{ if: '$CI_PIPELINE_SOURCE == "schedule" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH' }]);
        // A schedule of another branch prunes nothing.
        expect(whereJobRuns(job, "env:prune")).toEqual({ schedule: "on_success" });
        expect(evalRules(job.rules, { ...PIPELINES.schedule, CI_COMMIT_BRANCH: "release", CI_COMMIT_REF_NAME: "release" }, "env:prune.rules")).toEqual({ when: "never" });
        expect(String(mapping(job.variables, "env:prune.variables").GIT_DEPTH)).toBe("0");
        const script = scriptOf(job, "env:prune");
        expect(script).toContain("git fetch --prune origin");
        expect(script).toContain("npx dataops prune --remote origin");
        expect(script.indexOf("git fetch --prune origin")).toBeLessThan(script.indexOf("npx dataops prune"));
    });

    it("GIVEN every job WHEN read THEN it uses node:20-bookworm, installs with npm ci and skips Pulumi's update check", () => {
        for (const [name, job] of gitlabPipeline().jobs) {
            expect({ name, image: job.image }).toEqual({ name, image: "node:20-bookworm" });
            expect(scriptOf(job, name)).toContain("npm ci");
            expect({ name, skip: mapping(job.variables, `${name}.variables`).PULUMI_SKIP_UPDATE_CHECK }).toEqual({ name, skip: "true" });
        }
    });

    it("GIVEN the test job WHEN read THEN it gets what node:20-bookworm lacks for the tests' tools before npm test, and caches those tools", () => {
        const job = gitlabPipeline().jobs.get("test");
        if (!job) throw new Error("test is missing");
        const script = scriptOf(job, "test");
        // python3's venv (the Go wheel and dbt install into venvs) and rsync (gitlab-ci-local), when missing.
        expect(script).toContain("python3 -c 'import ensurepip' 2>/dev/null || missing=\"$missing python3-venv\"");
        expect(script).toContain("command -v rsync >/dev/null 2>&1 || missing=\"$missing rsync\"");
        expect(script.indexOf("apt-get install")).toBeLessThan(script.indexOf("npm test"));
        const caches = list(job.cache, "test.cache").map((c, i) => mapping(c, `test.cache[${i}]`));
        expect(caches.map((c) => c.paths)).toEqual([[".npm/"], [".cache/pulumi/"], [".dataops/tools/"]]);
        expect(mapping(caches[2].key, "test.cache[2].key").files).toEqual(["tools/ci.json", "tools/python.json"]);
    });

    it("GIVEN the audit job WHEN read THEN it runs `dataops audit` only once the CLI lists it", () => {
        const job = gitlabPipeline().jobs.get("audit");
        if (!job) throw new Error("audit is missing");
        const script = scriptOf(job, "audit");
        expect(script).toContain(AUDIT_GUARD);
        expect(script).toContain("npx dataops audit");
    });

    it("GIVEN post-summary.sh WHEN checked with sh -n THEN it parses", () => {
        const r = spawnSync("sh", ["-n", POST_SUMMARY], { encoding: "utf8" });
        expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
    });
});

describe("GitLab note poster (post-summary.sh) against a fake GitLab API", () => {
    const notes = (n: number, from: number): Note[] => Array.from({ length: n }, (_, i) => ({ id: from + i, body: `comment ${from + i}`, system: false }));

    it("GIVEN an earlier summary note WHEN posting THEN that note is updated (system notes quoting the marker are ignored)", async () => {
        const r = await runPostSummary({
            pages: [[...notes(2, 1), { id: 40, body: `changed the description ${MARKER}`, system: true }, { id: 42, body: `${MARKER}\nold`, system: false }]],
            summary: SUMMARY,
        });
        expect(r.code).toBe(0);
        const writes = r.requests.filter((q) => q.method !== "GET");
        expect(writes.map((q) => [q.method, q.path])).toEqual([["PUT", `${NOTES_PATH}/42`]]);
        expect(JSON.parse(writes[0].body)).toEqual({ body: `${MARKER}\n${SUMMARY}` });
        expect(r.requests.every((q) => q.token === "fake-token-for-the-fake-api")).toBe(true);
        expect(r.out).not.toContain("fake-token-for-the-fake-api");
    });

    it("GIVEN no summary note yet WHEN posting THEN one note is created", async () => {
        const r = await runPostSummary({ pages: [notes(3, 1)], summary: SUMMARY });
        expect(r.code).toBe(0);
        const writes = r.requests.filter((q) => q.method !== "GET");
        expect(writes.map((q) => [q.method, q.path])).toEqual([["POST", NOTES_PATH]]);
        expect(JSON.parse(writes[0].body)).toEqual({ body: `${MARKER}\n${SUMMARY}` });
    });

    it("GIVEN the summary note on the second page WHEN posting THEN pages are followed and that note is updated", async () => {
        const r = await runPostSummary({ pages: [notes(100, 1), [{ id: 777, body: `${MARKER}\nold`, system: false }]], summary: SUMMARY });
        expect(r.code).toBe(0);
        expect(r.requests.filter((q) => q.method === "GET").map((q) => q.query.get("page"))).toEqual(["1", "2"]);
        expect(r.requests.filter((q) => q.method !== "GET").map((q) => [q.method, q.path])).toEqual([["PUT", `${NOTES_PATH}/777`]]);
    });

    it("GIVEN no token WHEN posting THEN it says so and exits 0 without calling the API", async () => {
        const r = await runPostSummary({ pages: [], summary: SUMMARY, env: { DATAOPS_GITLAB_TOKEN: "" } });
        expect(r.code).toBe(0);
        expect(r.requests).toEqual([]);
        expect(r.out).toContain("DATAOPS_GITLAB_TOKEN is not set");
    });

    it("GIVEN the API refuses the write WHEN posting THEN it fails", async () => {
        const r = await runPostSummary({ pages: [[]], summary: SUMMARY, writeStatus: 403 });
        expect(r.code).not.toBe(0);
        expect(r.out).not.toContain("fake-token-for-the-fake-api");
    });
});

describe("GitHub workflows", () => {
    it("GIVEN dataops-review.yml WHEN read THEN it runs on pull requests opened, synchronized, reopened and closed", () => {
        const w = workflow(GH_REVIEW);
        expect(Object.keys(w.on)).toEqual(["pull_request"]);
        expect(strings(mapping(w.on.pull_request, "on.pull_request").types, "types").sort()).toEqual(["closed", "opened", "reopened", "synchronize"]);
        expect(w.doc.permissions).toEqual({ contents: "read" });
    });

    it("GIVEN the up job WHEN read THEN it brings the environment up (not on close), one run per branch at a time, with a sticky comment", () => {
        const w = workflow(GH_REVIEW);
        const up = ghJob(w, "up");
        expect(String(up.if)).toContain("github.event.action != 'closed'");
        expect(up.concurrency).toEqual({ group: "dataops-${{ github.head_ref }}", "cancel-in-progress": false });
        expect(up.permissions).toEqual(expect.objectContaining({ "pull-requests": "write", contents: "read" }));
        expect(runs(up, "up")).toContain("npx dataops up --summary-file dataops-summary.md");
        const upSteps = steps(up, "up");
        const load = upSteps.findIndex((s) => typeof s.run === "string" && s.run.includes("npx dataops load"));
        const dbt = upSteps.findIndex((s) => s.run === "sh ci/dbt-build.sh dataops-summary.md");
        expect({ load: load >= 0, loadBeforeDbt: load < dbt, dbtNeedsLoad: upSteps[dbt]?.if }).toEqual({ load: true, loadBeforeDbt: true, dbtNeedsLoad: "steps.load.outcome == 'success'" });
        const sticky = uses(up, "up").find((s) => s.uses === "marocchino/sticky-pull-request-comment@v2");
        if (!sticky) throw new Error("up has no marocchino/sticky-pull-request-comment@v2 step");
        expect(sticky.with).toEqual({ header: "dataops", path: "dataops-summary.md" });
        expect(String(sticky.if)).toContain("hashFiles('dataops-summary.md')");
    });

    it("GIVEN a closed pull request WHEN the down job runs THEN it destroys the head branch's environment with --yes, in the same concurrency group", () => {
        const w = workflow(GH_REVIEW);
        const down = ghJob(w, "down");
        expect(String(down.if)).toContain("github.event.action == 'closed'");
        expect(down.concurrency).toEqual(ghJob(w, "up").concurrency);
        // The branch reaches the script through the environment: a branch name is untrusted input.
        expect(mapping(down.env, "down.env").BRANCH).toBe("${{ github.head_ref }}");
        expect(runs(down, "down")).toMatch(/npx dataops destroy --branch "\$BRANCH" --yes/);
    });

    it("GIVEN pull requests WHEN not closed THEN tests and the guarded audit run", () => {
        const w = workflow(GH_REVIEW);
        for (const name of ["test", "audit"]) expect(String(ghJob(w, name).if)).toContain("github.event.action != 'closed'");
        expect(runs(ghJob(w, "test"), "test")).toContain("npm test");
        expect(runs(ghJob(w, "audit"), "audit")).toContain(AUDIT_GUARD);
        expect(runs(ghJob(w, "audit"), "audit")).toContain("npx dataops audit");
    });

    it("GIVEN dataops-main.yml WHEN read THEN it runs on pushes to main, on a daily schedule and by hand", () => {
        const w = workflow(GH_MAIN);
        expect(Object.keys(w.on).sort()).toEqual(["push", "schedule", "workflow_dispatch"]);
        expect(strings(mapping(w.on.push, "on.push").branches, "branches")).toEqual(["main"]);
        const cron = mapping(list(w.on.schedule, "on.schedule")[0], "on.schedule[0]").cron;
        expect(cron).toMatch(/^\d+ \d+ \* \* \*$/);
    });

    it("GIVEN a push to main WHEN production deploys THEN it is an `environment: production` job that needs the tests and previews before pulumi up", () => {
        const w = workflow(GH_MAIN);
        const prodJobs = Object.entries(w.jobs).filter(([name]) => runs(ghJob(w, name), name).includes("pulumi up --stack prod --yes"));
        expect(prodJobs.map(([n]) => n)).toEqual(["production"]);
        const job = ghJob(w, "production");
        expect(job.environment === "production" || (isMapping(job.environment) && job.environment.name === "production")).toBe(true);
        expect(needsOf(job, "production")).toEqual(expect.arrayContaining(["test", "audit"]));
        expect(String(job.if)).toContain("github.event_name == 'push'");
        expect(mapping(job.permissions, "production.permissions")["id-token"]).toBe("write");
        const script = runs(job, "production");
        expect(script.indexOf("pulumi preview --stack prod")).toBeGreaterThanOrEqual(0);
        expect(script.indexOf("pulumi preview --stack prod")).toBeLessThan(script.indexOf("pulumi up --stack prod --yes"));
        expect(script).toContain("node scripts/engine.mjs ensure --print-path");
        expect(runs(ghJob(w, "test"), "test")).toContain("npm test");
        expect(runs(ghJob(w, "audit"), "audit")).toContain(AUDIT_GUARD);
    });

    it("GIVEN the schedule or a manual run WHEN prune runs THEN it has every branch and prunes against origin", () => {
        const w = workflow(GH_MAIN);
        const prune = ghJob(w, "prune");
        expect(String(prune.if)).toContain("github.event_name == 'schedule'");
        expect(String(prune.if)).toContain("github.event_name == 'workflow_dispatch'");
        const checkout = uses(prune, "prune").find((s) => String(s.uses).startsWith("actions/checkout@"));
        expect(mapping(checkout?.with, "prune checkout.with")["fetch-depth"]).toBe(0);
        expect(runs(prune, "prune")).toContain("npx dataops prune --remote origin");
    });

    it("GIVEN every job of both workflows WHEN read THEN checkout and setup-node are v4 with Node 20 and npm's cache, and Pulumi skips its update check", () => {
        for (const file of [GH_REVIEW, GH_MAIN]) {
            const w = workflow(file);
            expect(mapping(w.doc.env, `${file}: env`).PULUMI_SKIP_UPDATE_CHECK).toBe("true");
            for (const name of Object.keys(w.jobs)) {
                const used = uses(ghJob(w, name), name);
                expect(used.filter((s) => String(s.uses).startsWith("actions/checkout@")).map((s) => s.uses)).toEqual(["actions/checkout@v4"]);
                const node = used.filter((s) => String(s.uses).startsWith("actions/setup-node@"));
                expect(node.map((s) => ({ uses: s.uses, with: s.with }))).toEqual([{ uses: "actions/setup-node@v4", with: { "node-version": 20, cache: "npm" } }]);
            }
        }
    });

    it("GIVEN the test jobs of both workflows WHEN read THEN they cache the tests' tools, keyed on their pins", () => {
        for (const file of [GH_REVIEW, GH_MAIN]) {
            const test = ghJob(workflow(file), "test");
            const cache = uses(test, `${file} test`).find((s) => mapping(s.with ?? {}, "with").path === ".dataops/tools");
            expect({ file, key: mapping(cache?.with, `${file} test cache.with`).key }).toEqual({ file, key: "dataops-tools-${{ runner.os }}-${{ hashFiles('tools/ci.json', 'tools/python.json') }}" });
        }
    });

    it(
        "GIVEN .github/workflows/*.yml WHEN checked with actionlint THEN it reports nothing",
        async () => {
            // Pinned in tools/ci.json, built on first use with the Go wheel from PyPI (no Go needed).
            const { bin, how } = await ensureActionlint(resolve(__dirname, ".."), (l) => process.stderr.write(`${l}\n`));
            process.stderr.write(`actionlint: ${how}\n`);
            const files = readdirSync(".github/workflows")
                .filter((f) => /\.ya?ml$/.test(f))
                .map((f) => join(".github/workflows", f));
            expect(files).toEqual(expect.arrayContaining([GH_REVIEW, GH_MAIN]));
            const r = spawnSync(bin, ["-no-color", ...files], { encoding: "utf8" });
            expect({ status: r.status, output: `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, output: "" });
        },
        600_000,
    );
});

describe("CI files and secrets", () => {
    const files = [GITLAB_ROOT, GITLAB_TEMPLATE, GH_REVIEW, GH_MAIN];

    it("GIVEN every CI file WHEN scanned THEN secrets appear only as variable references", () => {
        const findings = files.flatMap((f) => secretFindings(loadYaml(f), f));
        expect(findings).toEqual([]);
        // Also the raw text (comments included) and the shell script.
        for (const f of [...files, POST_SUMMARY]) {
            const text = readFileSync(f, "utf8");
            for (const [what, re] of SECRET_TEXT.slice(0, 4)) expect({ file: f, what, found: re.test(text) }).toEqual({ file: f, what, found: false });
        }
    });

    it("GIVEN planted secrets WHEN scanned THEN each one is found (the scan is not vacuous)", () => {
        const planted = {
            variables: { PULUMI_CONFIG_PASSPHRASE: "hunter2", DATAOPS_SERVER_ADMIN_PASSWORD: "$DATAOPS_SERVER_ADMIN_PASSWORD" },
            job: {
                env: { AWS_SECRET_ACCESS_KEY: "${{ secrets.AWS_SECRET_ACCESS_KEY }}" },
                permissions: { "id-token": "write" },
                script: [
                    `export AWS_ACCESS_KEY_ID=${"AKIA"}ABCDEFGHIJKLMNOP`, // assembled, so secret scanners of this repo stay quiet
                    "psql postgres://admin@db --set password=s3cret",
                    'curl -H "PRIVATE-TOKEN: abc123" https://example.invalid',
                    `echo '${"-----"}BEGIN OPENSSH PRIVATE KEY-----'`,
                    'curl -H "PRIVATE-TOKEN: $DATAOPS_GITLAB_TOKEN" https://example.invalid',
                ],
            },
        };
        expect(secretFindings(planted, "planted")).toEqual([
            "planted.variables.PULUMI_CONFIG_PASSPHRASE: PULUMI_CONFIG_PASSPHRASE is a literal, not a variable reference",
            "planted.job.script[0]: contains an AWS access key id",
            "planted.job.script[1]: contains a literal password/passphrase/secret/token assignment",
            "planted.job.script[2]: contains a literal token header or key",
            "planted.job.script[3]: contains a PEM block",
        ]);
    });

    it("GIVEN the audit guard WHEN applied to `dataops --help` THEN its pattern matches how the CLI lists commands", () => {
        const r = spawnSync(process.execPath, ["bin/dataops.js", "--help"], { encoding: "utf8" });
        expect(r.status).toBe(0);
        const pattern = /grep -Eq '([^']+)'/.exec(AUDIT_GUARD)?.[1] ?? "";
        const listed = [...r.stdout.matchAll(/^ {2}([a-z][a-z-]*) {2,}/gm)].map((m) => m[1]);
        expect(listed.length).toBeGreaterThan(0);
        // The same pattern, for a command the CLI has, finds it: so it will find `audit` once listed.
        for (const command of listed) expect(new RegExp(pattern.replace("audit", command), "m").test(r.stdout)).toBe(true);
        expect(new RegExp(pattern, "m").test(r.stdout)).toBe(listed.includes("audit"));
    });
});
