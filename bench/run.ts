// npm run bench: how fast branch environments come and go on the embedded default,
// against the plain-SQL floor, and how that grows with loaders and environments.
// Every figure is the median of BENCH_RUNS (default 5) runs after a warm-up run.
// Results: bench/results.json (kept per BENCH_LABEL, so before/after stay side by side)
// and BENCHMARKS.md. Never a test: nothing here asserts a time.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { resolveEnvironment } from "../config/environment";
import { readStackFile } from "../config/stackFiles";
import { type EmbeddedServer, ensureEmbeddedServer } from "../local/embedded";
import { checkpointFile } from "../lifecycle/fastpath";
import { branchStack, type LocalContext, localContext } from "../local/workspace";
import { stackNameForBranch } from "../naming";
import { generatedConfig } from "./configs";
import { floorScripts } from "./floor";
import { type Figure, figure, run, sampled } from "./measure";
import { writeReport } from "./report";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { load } = require("../bin/build.js") as { load(root: string, rel: string): unknown };

const root = resolve(__dirname, "..");
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const SIZES = (process.env.BENCH_SIZES ?? "4,50,200").split(",").map(Number);
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
        const state = stateKB(stackNameForBranch(b));
        const noop = await cli(["up", "--embedded", "--branch", b, "--json"]);
        const changes = (JSON.parse(noop.stdout) as { changes: Record<string, number> }).changes;
        if (Object.keys(changes).some((k) => k !== "same")) throw new Error(`no-op up changed something: ${JSON.stringify(changes)}`);
        if (!/no changes \(same inputs/.test(noop.stderr)) throw new Error(`the no-op did not take the fast path:\n${noop.stderr}`);
        // The same no-op through the engine, reading the server first (what --refresh does).
        const refreshed = await cli(["up", "--embedded", "--branch", b, "--json", "--refresh"]);
        const down = await cli(["destroy", "--branch", b, "--yes"]);
        return { up: up.ms, noop: noop.ms, refreshed: refreshed.ms, destroy: down.ms, upPeak: up.peakMiB, noopPeak: noop.peakMiB, state };
    });
    figures.push(figure("4 loaders: fresh branch environment up (prod-shaped, CLI)", r.up));
    figures.push(figure("4 loaders: no-op up (CLI; fast path, drift checked against the server)", r.noop));
    figures.push(figure("4 loaders: no-op up --refresh (CLI; the engine reads the server and diffs)", r.refreshed));
    figures.push(figure("4 loaders: destroy (CLI)", r.destroy));
    figures.push(figure("4 loaders: fresh up, peak memory of the process tree", r.upPeak, "MiB"));
    figures.push(figure("4 loaders: no-op up, peak memory of the process tree", r.noopPeak, "MiB"));
    figures.push(figure("4 loaders: state (the stack's checkpoint)", r.state, "KB"));
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

/** The stack's checkpoint in the local file backend, KB. */
function stateKB(stack: string): number {
    const file = checkpointFile(ctx.envVars.PULUMI_BACKEND_URL!, stack);
    return file ? Math.round(statSync(file).size / 1024) : 0;
}

/** The program as the CLI runs it: compiled, in-process. */
const inline = () => (load(root, "stack") as typeof import("../stack")).defineStack().outputs;

async function growth(): Promise<void> {
    for (const n of SIZES) {
        const name = `bench-n${n}`;
        const stack = await LocalWorkspace.createOrSelectStack({ stackName: name, projectName: "dataops", program: async () => inline() }, { workDir: root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
        const values = generatedConfig(n, server);
        await stack.setAllConfig({
            ...Object.fromEntries(Object.entries(values).map(([k, v]) => [`dataops:${k}`, { value: typeof v === "string" ? v : JSON.stringify(v) }])),
            "dataops:serverAdminPassword": { value: server.password, secret: true },
        });
        await stack.destroy({ color: "never" });
        const r = await repeat(`growth ${n} loaders`, async () => {
            const up = await sampled(() => stack.up({ color: "never" }));
            const state = stateKB(name);
            const noop = await sampled(() => stack.up({ color: "never" }));
            const down = await sampled(() => stack.destroy({ color: "never" }));
            return { up: up.ms, noop: noop.ms, destroy: down.ms, peak: up.peakMiB, state, resources: up.value.summary.resourceChanges?.create ?? 0 };
        });
        figures.push(figure(`${n} loaders: up (${r.resources[0]} resources; Automation API, in-process program)`, r.up));
        figures.push(figure(`${n} loaders: no-op up through the engine`, r.noop));
        figures.push(figure(`${n} loaders: destroy`, r.destroy));
        figures.push(figure(`${n} loaders: peak memory of engine, provider and the benchmark process running the program`, r.peak, "MiB"));
        figures.push(figure(`${n} loaders: state`, r.state, "KB"));
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

/**
 * `ls` and `prune --dry-run` over many environments: their state files are generated (copies of
 * one real environment's checkpoint and tags under other names) in a backend of their own.
 */
async function manyEnvironments(): Promise<void> {
    const n = Number(process.env.BENCH_LS_ENVS ?? 300);
    const b = "bench/ls-seed";
    await cli(["up", "--embedded", "--branch", b]);
    const seed = stackNameForBranch(b);
    const from = join(ctx.envVars.PULUMI_BACKEND_URL!.slice("file://".length), ".pulumi", "stacks", "dataops");
    const backend = mkdtempSync(join(tmpdir(), "dataops-ls-"));
    const to = join(backend, ".pulumi", "stacks", "dataops");
    mkdirSync(to, { recursive: true });
    writeFileSync(join(backend, ".pulumi", "meta.yaml"), readFileSync(join(from, "..", "..", "meta.yaml")));
    const checkpoint = readFileSync(join(from, `${seed}.json`), "utf8");
    const tags = JSON.parse(readFileSync(join(from, `${seed}.pulumi-tags`), "utf8")) as { version: number; tags: Record<string, string> };
    for (let i = 0; i < n; i++) {
        const name = stackNameForBranch(`bench/ls-${i}`);
        writeFileSync(join(to, `${name}.json`), checkpoint.split(seed).join(name));
        // A third expired, so prune has work to list.
        const expires = i % 3 === 0 ? "2020-01-01T00:00:00.000Z" : tags.tags["dataops:expires-at"];
        writeFileSync(join(to, `${name}.pulumi-tags`), JSON.stringify({ version: 1, tags: { ...tags.tags, "dataops:branch": `bench/ls-${i}`, "dataops:expires-at": expires } }));
    }
    await cli(["destroy", "--branch", b, "--yes"]);
    const env = { PULUMI_BACKEND_URL: `file://${backend}`, PULUMI_CONFIG_PASSPHRASE: "bench" };
    const r = await repeat(`ls with ${n}`, async () => {
        const ls = await run(process.execPath, [join(root, "bin", "dataops.js"), "ls", "--json"], { cwd: root, env: { ...process.env, CI: "", ...env } });
        if ((JSON.parse(ls.stdout) as unknown[]).length !== n) throw new Error(`ls listed ${ls.stdout.length} bytes, not ${n} environments`);
        const prune = await run(process.execPath, [join(root, "bin", "dataops.js"), "prune", "--dry-run", "--json"], { cwd: root, env: { ...process.env, CI: "", ...env } });
        return { ls: ls.ms, prune: prune.ms };
    });
    figures.push(figure(`dataops ls with ${n} environments (generated state files)`, r.ls));
    figures.push(figure(`dataops prune --dry-run with ${n} environments`, r.prune));
}

/**
 * `ls` and `prune --dry-run` over 100 environments in an S3 bucket (moto's server on loopback,
 * as in test/e2e/s3.test.ts): copies of one real environment's checkpoint and tags, written
 * as the engine lays them out, read back by the CLI in one pass over the bucket.
 */
async function s3Environments(): Promise<void> {
    const n = Number(process.env.BENCH_S3_ENVS ?? 100);
    const { startMoto } = await import("../test/e2e/moto");
    const { stateStore } = await import("../local/stateStore");
    const moto = await startMoto(root, log);
    try {
        await moto.createBucket("bench-state");
        const env = { ...moto.env, PULUMI_BACKEND_URL: `s3://bench-state?endpoint=${moto.endpoint}&s3ForcePathStyle=true`, PULUMI_CONFIG_PASSPHRASE: "bench" };
        const store = stateStore(env.PULUMI_BACKEND_URL, env)!;
        const b = "bench/s3-seed";
        await cli(["up", "--embedded", "--branch", b]);
        const seed = stackNameForBranch(b);
        const from = join(ctx.envVars.PULUMI_BACKEND_URL!.slice("file://".length), ".pulumi", "stacks", "dataops");
        const checkpoint = readFileSync(join(from, `${seed}.json`), "utf8");
        const tags = JSON.parse(readFileSync(join(from, `${seed}.pulumi-tags`), "utf8")) as { version: number; tags: Record<string, string> };
        await store.write(".pulumi/meta.yaml", readFileSync(join(from, "..", "..", "meta.yaml"), "utf8"));
        for (let i = 0; i < n; i++) {
            const name = stackNameForBranch(`bench/s3-${i}`);
            await store.write(`.pulumi/stacks/dataops/${name}.json`, checkpoint.split(seed).join(name));
            await store.write(`.pulumi/stacks/dataops/${name}.json.bak`, checkpoint.split(seed).join(name));
            const expires = i % 3 === 0 ? "2020-01-01T00:00:00.000Z" : tags.tags["dataops:expires-at"];
            await store.write(`.pulumi/stacks/dataops/${name}.pulumi-tags`, JSON.stringify({ version: 1, tags: { ...tags.tags, "dataops:branch": `bench/s3-${i}`, "dataops:expires-at": expires } }));
        }
        await cli(["destroy", "--branch", b, "--yes"]);
        const r = await repeat(`s3 ls with ${n}`, async () => {
            const ls = await run(process.execPath, [join(root, "bin", "dataops.js"), "ls", "--json"], { cwd: root, env: { ...process.env, CI: "", ...env } });
            if ((JSON.parse(ls.stdout) as unknown[]).length !== n) throw new Error(`ls listed ${ls.stdout.length} bytes, not ${n} environments:\n${ls.stderr}`);
            const prune = await run(process.execPath, [join(root, "bin", "dataops.js"), "prune", "--dry-run", "--json"], { cwd: root, env: { ...process.env, CI: "", ...env } });
            if ((JSON.parse(prune.stdout) as unknown[]).length === 0) throw new Error(`prune --dry-run listed nothing:\n${prune.stderr}`);
            return { ls: ls.ms, prune: prune.ms };
        });
        figures.push(figure(`dataops ls with ${n} environments in an S3 bucket (moto on loopback; generated state objects)`, r.ls));
        figures.push(figure(`dataops prune --dry-run with ${n} environments in an S3 bucket`, r.prune));
        // What listing cost before: the engine's stack list, then one engine call per stack for its tags, 4 at a time.
        const ws = await LocalWorkspace.create({ workDir: root, pulumiCommand: ctx.pulumi, envVars: { ...ctx.envVars, ...env } });
        const engine = await repeat(`s3 engine listing with ${n}`, async () => {
            const t0 = performance.now();
            const stacks = await ws.listStacks();
            let next = 0;
            const worker = async () => {
                for (let i = next++; i < stacks.length; i = next++) await ws.listTags(stacks[i].name);
            };
            await Promise.all(Array.from({ length: 4 }, worker));
            if (stacks.length !== n) throw new Error(`the engine listed ${stacks.length} stacks, not ${n}`);
            return { list: performance.now() - t0 };
        });
        figures.push(figure(`the same ${n} environments' tags through the engine (stack ls, then a tag ls per stack, 4 at a time)`, engine.list));
    } finally {
        await moto.stop();
    }
}

/**
 * The engine's own floor on this machine: an in-process program with one dynamic resource
 * that does nothing, created and destroyed through the Automation API, in a throwaway project.
 * Whatever the program does, an update cannot be faster than this.
 */
async function engineFloor(): Promise<void> {
    // Inside the project, so the provider host finds @pulumi/pulumi in its node_modules.
    const dir = join(root, ".dataops", "bench-enginefloor");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "Pulumi.yaml"), "name: enginefloor\nruntime: nodejs\n");
    const pulumi = await import("@pulumi/pulumi");
    const provider: import("@pulumi/pulumi").dynamic.ResourceProvider = { create: async () => ({ id: "x", outs: {} }) };
    class Nothing extends pulumi.dynamic.Resource {
        constructor(name: string) {
            super(provider, name, {}, {});
        }
    }
    const program = async () => {
        new Nothing("nothing");
    };
    const stack = await LocalWorkspace.createOrSelectStack({ stackName: "floor", projectName: "enginefloor", program }, { workDir: dir, pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
    const r = await repeat("engine floor", async () => {
        const up = await sampled(() => stack.up({ color: "never" }));
        const noop = await sampled(() => stack.up({ color: "never" }));
        const down = await sampled(() => stack.destroy({ color: "never" }));
        return { up: up.ms, noop: noop.ms, destroy: down.ms };
    });
    figures.push(figure("engine floor: up of one dynamic resource that does nothing (in-process program)", r.up));
    figures.push(figure("engine floor: no-op up of it", r.noop));
    figures.push(figure("engine floor: destroy of it", r.destroy));
    // The same as a command, in a process of its own: Node, the SDK, the engine and the provider
    // host, each with what it costs in time and memory; what a CLI on Pulumi cannot go below.
    const bin = dirname(dirname(ctx.pulumi.command)); // the folder above bin/, as PulumiCommand.get wants it
    const env = { ...process.env, ...ctx.envVars };
    const floorCli = (action: string) => run(process.execPath, [join(__dirname, "engineFloor.js"), action, dir, bin], { cwd: root, env });
    const p = await repeat("engine floor as a command", async () => {
        const up = await floorCli("up");
        const down = await floorCli("destroy");
        return { up: up.ms, destroy: down.ms, upPeak: up.peakMiB, destroyPeak: down.peakMiB };
    });
    await stack.workspace.removeStack("floor");
    figures.push(figure("engine floor as a command: up (Node, SDK, engine, provider host)", p.up));
    figures.push(figure("engine floor as a command: destroy", p.destroy));
    figures.push(figure("engine floor as a command: up, peak memory of the process tree", p.upPeak, "MiB"));
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
    if (want("enginefloor")) await engineFloor();
    if (want("growth")) await growth();
    if (want("envs")) await environments();
    if (want("ls")) await manyEnvironments();
    if (want("s3ls")) await s3Environments();
    if (want("mocks")) mocks();
    writeReport(root, LABEL, RUNS, figures);
}

main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
});
