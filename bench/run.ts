// npm run bench: how fast branch environments come and go on the embedded default,
// against the plain-SQL floor, and how that grows with loaders and environments.
// Every figure is the median of BENCH_RUNS (default 5) runs after a warm-up run.
// Results: bench/results.json (kept per BENCH_LABEL, so before/after stay side by side)
// and BENCHMARKS.md. Never a test: nothing here asserts a time.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { resolveEnvironment } from "../config/environment";
import { readStackFile } from "../config/stackFiles";
import { type EmbeddedServer, ensureEmbeddedServer } from "../local/embedded";
import { branchStack, type LocalContext, localContext } from "../local/workspace";
import { stackNameForBranch } from "../naming";
import { generatedConfig } from "./configs";
import { floorScripts } from "./floor";
import { type Figure, figure, run, sampled } from "./measure";
import { writeReport } from "./report";

const root = resolve(__dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZES = (process.env.BENCH_SIZES ?? "1,10,50,200").split(",").map(Number);
const ENVS = Number(process.env.BENCH_ENVS ?? 30);
const ONLY = process.env.BENCH_ONLY?.split(",");
const LABEL = process.env.BENCH_LABEL ?? "current";
const log = (l: string) => process.stderr.write(`bench: ${l}\n`);
const figures: Figure[] = [];
const want = (section: string) => !ONLY || ONLY.includes(section);

let ctx: LocalContext;
let server: EmbeddedServer;

const cli = (args: string[]) => run(process.execPath, [join(root, "bin", "dataops.js"), ...args], { cwd: root, env: { ...process.env, CI: "" } });

/** Warm-up once, then RUNS measured repetitions of `body`, which returns named samples. */
async function repeat(name: string, body: (i: number) => Promise<Record<string, number>>): Promise<Record<string, number[]>> {
    const out: Record<string, number[]> = {};
    for (let i = 0; i <= RUNS; i++) {
        const got = await body(i);
        log(`${name} ${i === 0 ? "warm-up" : `run ${i}/${RUNS}`}: ${Object.entries(got).map(([k, v]) => `${k}=${Math.round(v)}`).join(" ")}`);
        if (i === 0) continue;
        for (const [k, v] of Object.entries(got)) (out[k] ??= []).push(v);
    }
    return out;
}

async function freshNoopDestroy(): Promise<void> {
    const b = "bench/fresh";
    await cli(["destroy", "--branch", b, "--yes"]);
    const r = await repeat("fresh/no-op/destroy", async () => {
        const up = await cli(["up", "--embedded", "--branch", b, "--json"]);
        const noop = await cli(["up", "--embedded", "--branch", b, "--json"]);
        const changes = (JSON.parse(noop.stdout) as { changes: Record<string, number> }).changes;
        if (Object.keys(changes).some((k) => k !== "same")) throw new Error(`no-op up changed something: ${JSON.stringify(changes)}`);
        const down = await cli(["destroy", "--branch", b, "--yes"]);
        return { up: up.ms, noop: noop.ms, destroy: down.ms, upPeak: up.peakMiB };
    });
    figures.push(figure("fresh branch environment up (prod-shaped, CLI)", r.up));
    figures.push(figure("no-op up (CLI)", r.noop));
    figures.push(figure("destroy (CLI)", r.destroy));
    figures.push(figure("fresh up: peak memory of the process tree", r.upPeak, "MiB"));
}

/** Engine start, program evaluation and resource operations, from when engine events arrive. */
async function phases(): Promise<void> {
    const b = "bench/phases";
    const r = await repeat("phases", async () => {
        const stack = await branchStack(ctx, stackNameForBranch(b), b, server);
        const seen: Record<string, number> = {};
        const t0 = performance.now();
        await stack.up({
            color: "never",
            parallel: process.env.BENCH_PARALLEL ? Number(process.env.BENCH_PARALLEL) : undefined,
            onEvent: (e: EngineEvent) => {
                const now = performance.now();
                if (e.preludeEvent) seen.prelude ??= now;
                const type = e.resourcePreEvent?.metadata.type;
                if (type === "pulumi:pulumi:Stack") seen.stack ??= now;
                else if (type) seen.firstResource ??= now;
                if (e.summaryEvent) seen.summary ??= now;
            },
        });
        const end = performance.now();
        await stack.destroy({ color: "never" });
        await stack.workspace.removeStack(stack.name);
        return {
            engineStart: seen.prelude - t0,
            runtimeStart: seen.stack - seen.prelude,
            programEvaluation: seen.firstResource - seen.stack,
            resourceOperations: seen.summary - seen.firstResource,
            total: end - t0,
        };
    });
    figures.push(figure("phase: engine start (command to prelude)", r.engineStart));
    figures.push(figure("phase: language runtime start (prelude to stack)", r.runtimeStart));
    figures.push(figure("phase: program evaluation (stack to first resource)", r.programEvaluation));
    figures.push(figure("phase: resource operations (first resource to summary)", r.resourceOperations));
}

async function floor(): Promise<void> {
    const prod = readStackFile(join(root, "Pulumi.prod.yaml")).values;
    const env = resolveEnvironment({ stack: "br-bench-floor", values: { server: { host: server.host, port: server.port } }, production: prod });
    const { create, drop } = floorScripts(env.prefix, env.config);
    const dir = mkdtempSync(join(tmpdir(), "dataops-floor-"));
    writeFileSync(join(dir, "create.sql"), create);
    writeFileSync(join(dir, "drop.sql"), drop);
    const psql = (file: string) => run("psql", ["-q", "-h", server.host, "-p", String(server.port), "-U", server.user, "-d", "postgres", "-f", join(dir, file)], { cwd: root, env: { ...process.env, PGPASSWORD: server.password } });
    await psql("drop.sql");
    const r = await repeat("floor", async () => ({ create: (await psql("create.sql")).ms, drop: (await psql("drop.sql")).ms }));
    figures.push(figure("floor: the same objects created by psql", r.create));
    figures.push(figure("floor: dropped by psql", r.drop));
}

async function growth(): Promise<void> {
    for (const n of SIZES) {
        const name = `bench-n${n}`;
        const stack = await LocalWorkspace.createOrSelectStack({ stackName: name, workDir: root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
        const values = generatedConfig(n, server);
        await stack.setAllConfig({
            ...Object.fromEntries(Object.entries(values).map(([k, v]) => [`dataops:${k}`, { value: typeof v === "string" ? v : JSON.stringify(v) }])),
            "dataops:serverAdminPassword": { value: server.password, secret: true },
        });
        await stack.destroy({ color: "never" });
        const r = await repeat(`growth ${n} loaders`, async () => {
            const up = await sampled(() => stack.up({ color: "never" }));
            const noop = await sampled(() => stack.up({ color: "never" }));
            await stack.destroy({ color: "never" });
            return { up: up.ms, noop: noop.ms, peak: up.peakMiB, resources: up.value.summary.resourceChanges?.create ?? 0 };
        });
        figures.push(figure(`${n} loaders: up (${r.resources[0]} resources)`, r.up));
        figures.push(figure(`${n} loaders: no-op up`, r.noop));
        figures.push(figure(`${n} loaders: peak memory of engine and program`, r.peak, "MiB"));
        await stack.workspace.removeStack(name);
    }
}

async function environments(): Promise<void> {
    const branch = (i: number) => `bench/env-${String(i).padStart(2, "0")}`;
    const time = async (i: number) => {
        await cli(["destroy", "--branch", branch(i), "--yes"]);
        return (await cli(["up", "--embedded", "--branch", branch(i)])).ms;
    };
    let existing = 0;
    const fillTo = async (count: number) => {
        for (; existing < count; existing++) await cli(["up", "--embedded", "--branch", branch(existing + 1)]);
    };
    for (const nth of [1, 10, ENVS]) {
        await fillTo(nth - 1);
        const r = await repeat(`environment #${nth}`, async () => ({ up: await time(nth) }));
        existing = Math.max(existing, nth);
        figures.push(figure(`environment #${nth} on one server: up`, r.up));
    }
    const ls = await repeat(`ls with ${ENVS}`, async () => ({ ls: (await cli(["ls", "--json"])).ms, prune: (await cli(["prune", "--dry-run", "--json"])).ms }));
    figures.push(figure(`dataops ls with ${ENVS} environments`, ls.ls));
    figures.push(figure(`dataops prune --dry-run with ${ENVS} environments`, ls.prune));
    for (let i = 1; i <= existing; i++) await cli(["destroy", "--branch", branch(i), "--yes"]);
}

function mocks(): void {
    const runs: number[] = [];
    for (let i = 0; i <= RUNS; i++) {
        const r = spawnSync(process.execPath, [join(root, "node_modules", "tsx", "dist", "cli.mjs"), join(__dirname, "mockEval.ts"), "200"], { cwd: root, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`mockEval failed: ${r.stderr}`);
        const ms = Number(r.stdout.trim().split("\n").pop());
        log(`mock evaluation ${i === 0 ? "warm-up" : `run ${i}`}: ${Math.round(ms)}`);
        if (i > 0) runs.push(ms);
    }
    figures.push(figure("program evaluation under mocks, 200 loaders", runs));
}

async function main(): Promise<void> {
    ctx = await localContext(root, log);
    server = await ensureEmbeddedServer(root, log);
    if (want("fresh")) await freshNoopDestroy();
    if (want("phases")) await phases();
    if (want("floor")) await floor();
    if (want("growth")) await growth();
    if (want("envs")) await environments();
    if (want("mocks")) mocks();
    writeReport(root, LABEL, RUNS, figures);
}

main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
});
