// The branch lifecycle on the real engine (Automation API): up, destroy, list.
import { join } from "node:path";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import type { EngineEvent, PulumiFn, Stack } from "@pulumi/pulumi/automation";
import type { Catalog } from "../components/catalog";
import { checkServerVersion, databaseExists, drift } from "../components/catalogSql";
import { VersionMismatch } from "../config/version";
import type { AdminConnection } from "../components/generated";
import { listFileBackend } from "../local/fileBackend";
import { checkFastPath, checkpointFile, fingerprint, forgetRecord, restamp, type UpRecord, writeRecord } from "./fastpath";
import { automation } from "../local/automation";
import { parseConfig } from "../config/environment";
import { parseStackFile, readStackFile } from "../config/stackFiles";
import type { BranchData, DataopsConfig, ServerConnection, Target } from "../config/schema";
import { deriveBranchConfig, MirrorError } from "../config/mirror";
import type { EnvironmentSummary } from "../components/dataPlatform";
import { embeddedMajorAt, embeddedMajorFor, embeddedMajorsCreated, embeddedServer, ensureEmbeddedAt, ensureEmbeddedServer, localDir } from "../local/embedded";
import { withCheckoutLock } from "../local/checkoutLock";
import { enginePassphrase, KeyRing, newCheckpoint, writeStackConfig } from "../local/stackConfig";
import { isUnreadableState, type LocalContext, repairLocalState, serverConfig, withStateRepair, workspace } from "../local/workspace";
import { DEVELOPMENT_STACK, environmentPrefix, PRODUCTION_STACK, stackNameForBranch } from "../naming";
import { type EnvironmentOutputs, shellQuote } from "./connection";
import { type StackInfo, TAG, upTags } from "./policy";
import { provenanceText } from "./summary";
import { type ServerAdmin, sweep } from "./sweep";
import { checkpointKey, holdLease, type Lease, lockDir, processGone, waitForLocks } from "./locks";
import { purgeStack } from "./purge";
import { destroyDirect } from "./directDestroy";
import { listStore, readStackTags, stackExists, writeStackTags } from "./bucketList";

export class Refused extends Error {}

/** How the engine fails when it reads the stack's tags while another call rewrites them. */
const TAGS_MID_WRITE = /failed to (load|read) stack tags[^\n]*EOF/i;

/** How the engine refuses a stack that an interrupted update left with pending operations. */
const PENDING = /pending operation/i;

export interface UpOptions {
    readonly branch: string;
    readonly target?: Target;
    /** `dataops up --data`: what a new environment starts with, among branches.allowedData. */
    readonly data?: BranchData;
    /** `dataops up --from`: the database to copy, on the embedded server only. */
    readonly from?: string;
    readonly commit: string;
    readonly author: string;
    /** How long to wait for another update holding the stack. */
    readonly lockTimeoutSeconds: number;
    readonly now: () => Date;
    /** Admin password of production's shared branch server (branches.server), from the CI variable. */
    readonly serverAdminPassword?: string;
    /** Use the embedded local PostgreSQL even when production names a shared branch server (`npm run up`). */
    readonly embedded?: boolean;
    readonly onOutput?: (text: string) => void;
    readonly log: (line: string) => void;
    /** Aborted on Ctrl-C or a cancelled job: the engine is asked to stop cleanly and save its state. */
    readonly signal?: AbortSignal;
    /**
     * The program, run in this process (an inline program) instead of by a language host that
     * starts Node and compiles TypeScript: the CLI passes the compiled stack.ts. It also enables
     * the no-op fast path. @default index.ts in the project, by the language host
     */
    readonly program?: InlineProgram;
    /** Read the server first, so the update also repairs drift (`dataops up --refresh`). @default false */
    readonly refresh?: boolean;
    /** The SQL engine: set on a new stack, or on every up when explicit (local/workspace.ts sqlEngineChoice). @default sql */
    readonly sqlEngine?: { readonly engine: "provider" | "sql"; readonly explicit: boolean };
}

/** The stack's program as the CLI runs it in-process: its outputs, and the catalog it declares (sql engine). */
export type InlineProgram = () => { outputs: Record<string, unknown>; catalog?: { apply(f: (c: Catalog) => void): unknown } };

export interface UpOutcome {
    readonly stack: string;
    readonly summary: EnvironmentSummary;
    readonly changes: Record<string, number>;
    readonly tags: Record<string, string>;
    readonly recovered: boolean;
}

/** How long `up` waits for the branch server to answer before it refuses to start (ms). */
export const PREFLIGHT_CONNECT_TIMEOUT_MS = 15_000;

const parsedProduction = new Map<string, { stamp: string; config: DataopsConfig }>();

/** Production's config, parsed and validated once per version of the file (a command asks several times; each parse is about 40 ms). */
export function productionConfig(root: string): DataopsConfig {
    const file = join(root, `Pulumi.${PRODUCTION_STACK}.yaml`);
    let stamp = "absent";
    try {
        const st = statSync(file);
        stamp = `${st.size}:${st.mtimeMs}`;
    } catch {
        // readStackFile says what is wrong
    }
    const known = parsedProduction.get(file);
    if (known && known.stamp === stamp) return known.config;
    const config = parseConfig(readStackFile(file).values, `Pulumi.${PRODUCTION_STACK}.yaml`);
    parsedProduction.set(file, { stamp, config });
    return config;
}

/** Where a branch on the server target runs: production's shared server, or the embedded one. */
async function serverFor(root: string, policyServer: ServerConnection | undefined, opts: UpOptions): Promise<{ server: ServerConnection; password: string }> {
    if (policyServer) {
        if (!opts.serverAdminPassword)
            throw new Refused("DATAOPS_SERVER_ADMIN_PASSWORD is not set: production's branches.server needs its admin password (define it as a masked CI variable)");
        return { server: policyServer, password: opts.serverAdminPassword };
    }
    // The embedded server of the major this checkout pins: a branch that bumps 16 to 17 gets a 17 server.
    const s = await ensureEmbeddedServer(root, opts.log, embeddedMajorFor(productionConfig(root).warehouse.engineVersion));
    return { server: { host: s.host, port: s.port, adminUser: s.user, sslMode: "disable" }, password: s.password };
}

/** Where an existing branch environment was last brought up, from its stack file in this checkout (a fresh checkout has none). */
export function recordedServer(root: string, stack: string): { host: string; port: number } | undefined {
    const file = join(root, `Pulumi.${stack}.yaml`);
    if (!existsSync(file)) return undefined;
    try {
        const v = parseStackFile(readFileSync(file, "utf8")).values.server;
        const server = (typeof v === "string" ? JSON.parse(v) : v) as { host?: unknown; port?: unknown } | undefined;
        if (typeof server?.host === "string" && Number.isInteger(Number(server.port))) return { host: server.host, port: Number(server.port) };
    } catch {
        // An unreadable stack file: the engine reads it next and says what is wrong.
    }
    return undefined;
}

/**
 * A branch whose Pulumi.prod.yaml now pins another major than the embedded server its
 * environment runs on: refused before anything is installed or changed. Its data is on the old
 * major's server; an environment does not move (the SqlCatalog refuses that too, for pulumi up).
 */
function checkEmbeddedMajor(root: string, stack: string, backendUrl: string, pin: string): void {
    const recorded = recordedServer(root, stack);
    const checkpoint = checkpointFile(backendUrl, stack);
    if (!recorded || (checkpoint && !existsSync(checkpoint))) return;
    const was = embeddedMajorAt(recorded.host, recorded.port);
    const now = embeddedMajorFor(pin);
    if (was === undefined || was === now) return;
    throw new Refused(
        `dataops:warehouse.engineVersion pins ${pin} (major ${now}), but ${stack} runs on the embedded PostgreSQL ${was} server (${recorded.host}:${recorded.port}), where its data is. ` +
            `An environment does not move between majors. To rehearse the upgrade on this branch: npx dataops destroy --yes (its ${was} environment and data go), then npm run up (a new environment on a ${now} server, beside ${was}); ` +
            `or keep the pin at ${was}.x. Nothing was changed`,
    );
}

/** Validate everything that can be validated before anything changes. */
export function checkUp(root: string, opts: Pick<UpOptions, "branch" | "target" | "data" | "from" | "embedded">): { stack: string; policy: DataopsConfig["branches"]; branchPolicy: DataopsConfig["branches"] } {
    const stack = stackNameForBranch(opts.branch);
    const prod = productionConfig(root);
    const policy = prod.branches;
    const allowed = policy.allowedTargets ?? [policy.target];
    if (opts.target && !allowed.includes(opts.target))
        throw new Refused(`--target ${opts.target} is not allowed by production's branches policy (allowed: ${allowed.join(" | ")})`);
    const target = opts.target ?? policy.target;
    const embedded = target === "server" && (opts.embedded || !policy.server);
    if (opts.from !== undefined && !embedded)
        throw new Refused(`--from ${opts.from}: names a database on the embedded server only (npm run up, or --embedded); on production's shared server a branch copies branches.templateDatabase`);
    if (opts.from !== undefined && (opts.data ?? policy.data) === "empty")
        throw new Refused(`--from ${opts.from}: there is nothing to copy with data mode empty; choose one with --data (allowed: ${(policy.allowedData ?? [policy.data]).join(" | ")})`);
    // The branch's whole config, derived as the program will: a policy that cannot hold refuses here, before any stack exists.
    try {
        const mirror = deriveBranchConfig(prod, { target: opts.target, data: opts.data, templateDatabase: opts.from, server: embedded ? embeddedServer(embeddedMajorFor(prod.warehouse.engineVersion)) : undefined });
        return { stack, policy, branchPolicy: mirror.config.branches };
    } catch (e) {
        if (e instanceof MirrorError) throw new Refused(e.message);
        throw e;
    }
}

export async function upBranch(ctx: LocalContext, opts: UpOptions): Promise<UpOutcome> {
    const { stack: name, policy, branchPolicy: data } = checkUp(ctx.root, opts);
    const target = opts.target ?? policy.target;
    // Everything that can refuse or fail runs before the stack exists (a missing admin password,
    // a busy port): a refused up leaves nothing behind.
    const config: Record<string, { value: string; secret?: boolean }> = { "dataops:branch": { value: opts.branch } };
    if (opts.target) config["dataops:target"] = { value: opts.target };
    if (opts.data) config["dataops:data"] = { value: opts.data };
    if (opts.from) config["dataops:templateDatabase"] = { value: opts.from };
    let admin: AdminConnection | undefined;
    if (target === "server") {
        if (opts.embedded || !policy.server) checkEmbeddedMajor(ctx.root, name, ctx.envVars.PULUMI_BACKEND_URL ?? "", productionConfig(ctx.root).warehouse.engineVersion);
        const { server, password } = await serverFor(ctx.root, opts.embedded ? undefined : policy.server, opts);
        Object.assign(config, serverConfig(server, password));
        admin = { host: server.host, port: server.port, user: server.adminUser, password, sslMode: server.sslMode };
    }
    // The versioned warehouse: a server that does not run the pinned version is refused before anything changes.
    if (admin) {
        const pin = productionConfig(ctx.root).warehouse.engineVersion;
        // Also the reachability check: a target that does not answer (a firewall dropping packets)
        // fails here within seconds, named by lifecycle/failure.ts, not after minutes of TCP retries.
        await checkServerVersion(admin, pin, { connectTimeoutMs: PREFLIGHT_CONNECT_TIMEOUT_MS }).catch((e: unknown) => {
            if (e instanceof VersionMismatch) throw new Refused(e.message);
            throw e;
        });
        // The database a new branch copies must be there; an existing branch copied it already.
        const checkpoint = checkpointFile(ctx.envVars.PULUMI_BACKEND_URL ?? "", name);
        if (data.data !== "empty" && data.templateDatabase && checkpoint && !existsSync(checkpoint)) {
            const missing = !(await databaseExists(admin, data.templateDatabase));
            if (missing)
                throw new Refused(
                    `${opts.from ? "--from" : "branches.templateDatabase"}: there is no database "${data.templateDatabase}" on the server ${admin.host}:${admin.port} to copy for data mode ${data.data}${opts.from ? "" : ` (production's policy in Pulumi.prod.yaml${opts.embedded || !policy.server ? "; on the embedded server, name a local database with --from" : ""})`}`,
                );
        }
    }
    const engine = opts.sqlEngine ?? { engine: "sql", explicit: false };
    const identity = { branch: opts.branch, commit: opts.commit, author: opts.author, target, ttl: policy.ttl, engine: engine.explicit ? engine.engine : "" };
    const backendUrl = ctx.envVars.PULUMI_BACKEND_URL ?? "";
    // From here on the stack's config file, tags and record are read and written: one run of this checkout at a time (local/checkoutLock.ts).
    const held = { what: `dataops up --branch ${opts.branch}`, timeoutSeconds: opts.lockTimeoutSeconds, log: opts.log, signal: opts.signal };
    return withCheckoutLock(environmentLockDir(ctx.root, name), held, () => upHeld(ctx, opts, { name, target, policy, config, identity, backendUrl, engine, admin }));
}

async function upHeld(
    ctx: LocalContext,
    opts: UpOptions,
    p: Pick<UpPlan, "name" | "target" | "policy" | "config" | "identity" | "backendUrl" | "engine"> & { readonly admin?: AdminConnection },
): Promise<UpOutcome> {
    const { name, target, policy, config, identity, backendUrl, engine, admin } = p;
    // A push that changes nothing: answered without the engine when that is certain (lifecycle/fastpath.ts).
    if (opts.program) {
        const verdict = await checkFastPath({ root: ctx.root, stack: name, config, identity, backendUrl, admin, refresh: opts.refresh }, drift);
        if (verdict.ok) return fastNoop(ctx, name, verdict.record, identity, opts);
        if (verdict.why === "the server drifted")
            opts.log(`dataops: ${name}: the server drifted from its last update (npx dataops drift lists it); this up repairs that only with --refresh`);
        else if (process.env.DATAOPS_DEBUG) opts.log(`dataops: full update: ${verdict.why}`);
    }
    forgetRecord(ctx.root, name);
    // What the fast path compares next time: the config as computed here, before the engine choice of a new stack.
    const inputs = { ...config };

    // From here on engine calls may take the stack's lock: this run's lease says it is alive (lifecycle/locks.ts).
    const lease = ctx.store ? await holdLease(ctx.store, name, ctx.leaseSeconds ?? 60, opts.log) : undefined;
    try {
        return await updateStack(ctx, opts, { name, target, policy, config, inputs, identity, backendUrl, engine, lease });
    } finally {
        await lease?.release();
    }
}

interface UpPlan {
    readonly name: string;
    readonly target: Target;
    readonly policy: DataopsConfig["branches"];
    readonly config: Record<string, { value: string; secret?: boolean }>;
    readonly inputs: Record<string, { value: string; secret?: boolean }>;
    readonly identity: { branch: string; commit: string; author: string; target: string; ttl: string; engine: string };
    readonly backendUrl: string;
    readonly engine: { readonly engine: "provider" | "sql"; readonly explicit: boolean };
    readonly lease?: Lease;
}

async function updateStack(ctx: LocalContext, opts: UpOptions, plan: UpPlan): Promise<UpOutcome> {
    const { name, target, policy, config, inputs, identity, backendUrl, engine, lease } = plan;
    const ws = await workspace(ctx);
    // Select first, create only when missing: one engine call for the common case (a later push).
    let captured: { summary?: EnvironmentSummary; catalog?: Catalog } = {};
    const program = opts.program && capturing(opts.program, (c) => (captured = c));
    // The stack's files written by dataops itself where it can (local/stackConfig.ts): no
    // `stack select`, `stack init` or `config set-all` engine process. Else the engine's commands.
    const own = program ? await ownStack(ctx, name, program, config, engine, opts.now()) : undefined;
    let found: Stack | undefined;
    let made: { stack: Stack; created: boolean } | undefined;
    if (own) {
        if (own.created) made = own;
        else found = own.stack;
    } else {
        // A file backend says without an engine call whether the stack exists (a new branch skips the select).
        const checkpoint = checkpointFile(backendUrl, name);
        found =
            checkpoint && !existsSync(checkpoint)
                ? undefined
                : await selectStack(ctx, name, stderrLog, program).catch((e: unknown) => {
                      if (e instanceof automation().StackNotFoundError) return undefined;
                      throw e;
                  });
        made = found ? undefined : await createOrJoin(ctx, name, opts.lockTimeoutSeconds, opts.log, program, lease);
        // The engine is chosen when the stack is made; a later choice of the user's (pulumi config set
        // dataops:sqlEngine, or DATAOPS_SQL_ENGINE) is kept, never overwritten by a default.
        if (!found || engine.explicit) config["dataops:sqlEngine"] = { value: engine.engine };
    }
    const stack = found ?? made!.stack;

    // Tagged before anything else happens to it: a stack this up made is always recognisable as a
    // branch environment, so destroy and prune can remove it whatever fails next. Each tag is one
    // engine call: write only those that changed (on a later push, the expiry and the commit).
    const store = ctx.store;
    const existingTags = made?.created ? {} : ((store && (await readStackTags(store, name))) ?? (await ws.listTags(name)));
    const tags = upTags({ branch: opts.branch, commit: opts.commit, author: opts.author, target, ttl: policy.ttl }, opts.now(), existingTags);
    const changedTags = Object.entries(tags).filter(([k, v]) => existingTags[k] !== v);
    // A backend dataops reads takes every tag in one write of its tags object, before the update
    // (lifecycle/bucketList.ts). Elsewhere the kind tag marks the stack as a branch environment
    // before anything else happens to it, and the others (one engine call each) are written
    // while the update runs.
    const direct = store !== undefined && changedTags.length > 0 && (await writeStackTags(store, name, Object.fromEntries(changedTags)));
    if (!direct) for (const [k, v] of changedTags.filter(([k]) => k === TAG.kind)) await ws.setTag(name, k, v);
    let tagging: Promise<void> = Promise.resolve();
    const startTagging = () => {
        if (direct) return;
        tagging = (async () => {
            for (const [k, v] of changedTags.filter(([k]) => k !== TAG.kind)) await settle(() => ws.setTag(name, k, v));
        })();
        tagging.catch(() => undefined); // awaited below; a failure there is reported, not lost
    };
    if (!own) await stack.setAllConfig(config);

    // In-process runs know their outputs and their summary without asking the engine again
    // (the Automation API's up() reads both back: three more engine calls).
    let engineSummary: { resourceChanges?: Record<string, number>; result?: string } = {};
    if (program) {
        Object.assign(stack, {
            outputs: async () => ({ environment: { value: captured.summary, secret: false } }),
            info: async () => ({ result: engineSummary.result ?? "succeeded", resourceChanges: engineSummary.resourceChanges }),
        });
    }
    const onEvent = program
        ? (e: EngineEvent) => {
              if (e.summaryEvent) engineSummary = { resourceChanges: e.summaryEvent.resourceChanges as Record<string, number>, result: "succeeded" };
          }
        : undefined;

    // Recovery is paid for only when needed: try the update, and clear an interrupted
    // update's leftovers (pending operations, a dead process's lock) when it is refused.
    let recovered = false;
    const run = () => stack.up({ color: "never", onOutput: opts.onOutput, signal: opts.signal, refresh: opts.refresh, onEvent });
    startTagging();
    const result = await withLockWait(ctx, name, opts.lockTimeoutSeconds, opts.log, async () => {
        try {
            return await run();
        } catch (e) {
            // The tags written beside the update (startTagging) can be caught mid-write by the
            // engine as it starts ("failed to read stack tags file: EOF"): it then changed
            // nothing; once those writes are done, the update runs again.
            if (!opts.signal?.aborted && TAGS_MID_WRITE.test(String(e))) {
                await tagging.catch(() => undefined);
                return run();
            }
            if (opts.signal?.aborted || !PENDING.test(String(e)) || !(await clearPendingOperations(stack, opts.log))) throw e;
            recovered = true;
            return run();
        }
    }, () => (recovered = true), lease, opts.signal).finally(() => tagging.catch(() => undefined));
    await tagging;
    // Some engine versions only warn about another run's pending operations and converge anyway,
    // but keep them in the state, so every later update warned (and said "recovered") again. The
    // update converged every declared object, so they are cleared now.
    if (PENDING.test(result.stdout)) {
        recovered = true;
        opts.log(`dataops: ${name} had pending operations from an interrupted update; this update converged them`);
        await clearPendingOperations(stack, () => undefined);
    }
    const changes = Object.fromEntries(Object.entries(result.summary.resourceChanges ?? {}).filter(([, n]) => (n ?? 0) > 0)) as Record<string, number>;
    const summary = result.outputs.environment.value as EnvironmentSummary;
    // For `dataops ls`: where the data came from (set by the up that made the copy) and what the
    // server runs; written only when they change.
    const facts: Record<string, string | undefined> = {
        [TAG.data]: summary?.data ? provenanceText(summary.data) : undefined,
        [TAG.postgres]: summary?.serverVersion ? `${summary.serverVersion} (pinned ${summary.engineVersion})` : undefined,
    };
    const newFacts = Object.entries(facts).filter((e): e is [string, string] => e[1] !== undefined && existingTags[e[0]] !== e[1]);
    if (newFacts.length > 0 && !(store && (await writeStackTags(store, name, Object.fromEntries(newFacts)))))
        for (const [k, v] of newFacts) await settle(() => ws.setTag(name, k, v));
    for (const [k, v] of Object.entries(facts)) {
        const value = v ?? existingTags[k];
        if (value !== undefined) tags[k] = value;
    }
    const print = fingerprint({ root: ctx.root, stack: name, config: inputs, identity });
    if (program && print && captured.catalog && !recovered) {
        const resources = Object.entries(changes).reduce((n, [op, k]) => (op === "delete" ? n : n + k), 0);
        writeRecord(ctx.root, name, { fingerprint: print, catalog: captured.catalog, summary, tags: { ...existingTags, ...tags }, resources }, backendUrl);
    }
    return { stack: name, summary, changes, tags, recovered };
}

/** The program, run in-process, with its summary and catalog captured as they resolve. */
function capturing(program: InlineProgram, keep: (c: { summary?: EnvironmentSummary; catalog?: Catalog }) => void): PulumiFn {
    return async () => {
        const made = program();
        const captured: { summary?: EnvironmentSummary; catalog?: Catalog } = {};
        keep(captured);
        (made.outputs.environment as { apply(f: (v: EnvironmentSummary) => void): unknown }).apply((v) => (captured.summary = v));
        made.catalog?.apply((c) => (captured.catalog = c));
        return made.outputs;
    };
}

/** No changes, certainly: renew the expiry (one engine call) and report the environment as recorded. */
async function fastNoop(ctx: LocalContext, name: string, record: UpRecord, identity: { branch: string; commit: string; author: string; target: string; ttl: string }, opts: UpOptions): Promise<UpOutcome> {
    const tags = upTags(identity, opts.now(), record.tags);
    const changed = Object.entries(tags).filter(([k, v]) => record.tags[k] !== v);
    const direct = changed.length > 0 && ctx.store !== undefined && (await writeStackTags(ctx.store, name, Object.fromEntries(changed)));
    for (const [k, v] of direct ? [] : changed) {
        const r = spawnSync(ctx.pulumi.command, ["stack", "tag", "set", k, v, "--stack", name, "--non-interactive"], { cwd: ctx.root, env: { ...process.env, ...ctx.envVars }, encoding: "utf8" });
        if (r.status !== 0) throw new Error(`pulumi stack tag set ${k} failed: ${(r.stderr ?? "").trim()}`);
    }
    restamp(ctx.root, name, ctx.envVars.PULUMI_BACKEND_URL ?? "", { ...record.tags, ...tags });
    opts.log(`dataops: ${name}: no changes (same inputs as the last update, state untouched, server checked: no drift)`);
    return { stack: name, summary: record.summary, changes: { same: record.resources }, tags, recovered: false };
}

/**
 * The stack made or selected with its config written by dataops itself (local/stackConfig.ts),
 * or undefined, having changed nothing, where only the engine can: another secrets provider, a
 * backend dataops does not read, a stack another run holds the lock of, a config file whose salt
 * this passphrase does not open. The engine choice of a new stack is written with its config.
 */
async function ownStack(
    ctx: LocalContext,
    name: string,
    program: PulumiFn,
    config: Record<string, { value: string; secret?: boolean }>,
    engine: UpPlan["engine"],
    now: Date,
): Promise<{ stack: Stack; created: boolean } | undefined> {
    const store = ctx.store;
    const passphrase = enginePassphrase({ ...process.env, ...ctx.envVars });
    if (!store || ctx.secretsProvider || passphrase === undefined) return undefined;
    const exists = await stackExists(store, name);
    if (exists === undefined) return undefined;
    if (!exists && (await store.list(lockDir(name))).length > 0) return undefined; // the engine waits for it
    if (!exists || engine.explicit) config["dataops:sqlEngine"] = { value: engine.engine };
    const ring = new KeyRing(passphrase, ctx.localPassphrase ? join(localDir(ctx.root), "passphrase-keys.json") : undefined);
    const key = writeStackConfig(ctx.root, name, ring, config);
    if (!key) {
        if (!exists) delete config["dataops:sqlEngine"];
        return undefined;
    }
    if (!exists) await store.write(checkpointKey(name), newCheckpoint(PROJECT, name, ctx.pulumi.version?.version ?? "3.248.0", key, now));
    // The stack exists (read from the backend) and every command names it with --stack: no `stack select`.
    const ws = await automation().LocalWorkspace.create({ workDir: ctx.root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars, program });
    Object.assign(ws, { selectStack: async () => undefined });
    return { stack: await automation().Stack.select(name, ws), created: !exists };
}

const stderrLog = (line: string) => process.stderr.write(`${line}\n`);

async function selectStack(ctx: LocalContext, name: string, log: (line: string) => void = stderrLog, program?: PulumiFn): Promise<Stack> {
    return withStateRepair(ctx, log, () =>
        program
            ? automation().LocalWorkspace.selectStack({ stackName: name, projectName: PROJECT, program }, { workDir: ctx.root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars })
            : automation().LocalWorkspace.selectStack({ stackName: name, workDir: ctx.root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars }),
    );
}

/** The project's name in Pulumi.yaml. */
const PROJECT = "dataops";

/**
 * Create a branch's stack; when another pipeline created it a moment earlier (two pushes of a
 * new branch), use that one. The engine locks a stack to create it, and refuses while another
 * run holds the lock (also when the stack exists and is being updated): that is waited for as
 * an update waits, stale locks included, and the update that follows waits for its lock too.
 */
async function createOrJoin(ctx: LocalContext, name: string, timeoutSeconds: number, log: (line: string) => void, program?: PulumiFn, lease?: Lease): Promise<{ stack: Stack; created: boolean }> {
    return withLockWait(ctx, name, timeoutSeconds, log, async () => {
        try {
            return { stack: await createStack(ctx, name, program), created: true };
        } catch (e) {
            if (/already exists/i.test(String(e))) return { stack: await selectStack(ctx, name, log, program), created: false };
            throw e;
        }
    }, undefined, lease);
}

async function createStack(ctx: LocalContext, name: string, program?: PulumiFn): Promise<Stack> {
    const opts = { workDir: ctx.root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars, secretsProvider: ctx.secretsProvider };
    return program ? automation().LocalWorkspace.createStack({ stackName: name, projectName: PROJECT, program }, opts) : automation().LocalWorkspace.createStack({ stackName: name, workDir: ctx.root }, opts);
}

/**
 * An update killed halfway leaves pending operations in the state, and the next update
 * refuses to run. Our objects are created idempotently, so dropping the pending entries
 * and running again converges on the declared state.
 */
export async function clearPendingOperations(stack: Stack, log: (line: string) => void): Promise<boolean> {
    const state = await stack.exportStack();
    const deployment = state.deployment as { pending_operations?: unknown[] } | undefined;
    const pending = deployment?.pending_operations ?? [];
    if (pending.length === 0) return false;
    log(`dataops: ${stack.name} has ${pending.length} pending operation(s) from an interrupted update; clearing them and converging`);
    await stack.importStack({ ...state, deployment: { ...deployment, pending_operations: [] } });
    return true;
}

/**
 * Run `op`; while another update holds the stack, wait (saying so) up to the timeout.
 * A lock left by a run that died is released instead of waited for: on a backend dataops
 * reads itself, by the lease rule of lifecycle/locks.ts, polling the bucket rather than
 * asking the engine again; on the local file backend also at once when its process is gone.
 * Exported for tests.
 */
export async function withLockWait<T>(
    ctx: LocalContext,
    name: string,
    timeoutSeconds: number,
    log: (line: string) => void,
    op: () => Promise<T>,
    onStaleLock?: () => void,
    lease?: Lease,
    signal?: AbortSignal,
): Promise<T> {
    const deadline = Date.now() + timeoutSeconds * 1000;
    let said = false;
    for (;;) {
        try {
            return await op();
        } catch (e) {
            // While another run writes the state file, a reader can catch it half-written: that
            // is the same wait, and a file a killed run left half-written is repaired.
            if (isUnreadableState(e) && Date.now() < deadline) {
                repairLocalState(ctx, log);
                await new Promise((r) => setTimeout(r, 1000));
                continue;
            }
            if (!(e instanceof automation().ConcurrentUpdateError) && !/currently locked|concurrent update/i.test(String(e))) throw e;
            if (signal?.aborted) throw e;
            // Without a store only: `pulumi cancel` deletes every lock of the stack, and a run that
            // took the stack meanwhile would lose its own; waitForLocks removes a dead process's lock by its key.
            if (!ctx.store && (await clearStaleLock(ctx, name, log))) {
                onStaleLock?.();
                continue;
            }
            if (ctx.store) {
                await lease?.setPhase("waiting");
                try {
                    const samePidSpace = (ctx.envVars.PULUMI_BACKEND_URL ?? "").startsWith("file://");
                    const released = await waitForLocks({ store: ctx.store, stack: name, ownLease: lease?.key, periodSeconds: ctx.leaseSeconds ?? 60, deadline, timeoutSeconds, log, signal, samePidSpace });
                    if (released > 0) onStaleLock?.();
                    // The lock was gone when looked at (released meanwhile): try again, but not for ever.
                    else if (Date.now() >= deadline) throw new Error(`${name} is locked by another update and did not become free within ${timeoutSeconds}s; try again later or raise --lock-timeout`);
                    else await new Promise((r) => setTimeout(r, 500));
                } finally {
                    await lease?.setPhase("running");
                }
                continue;
            }
            if (Date.now() >= deadline) throw new Error(`${name} is locked by another update and did not become free within ${timeoutSeconds}s; try again later or raise --lock-timeout`);
            if (!said) log(`dataops: ${name} is being updated by someone else; waiting up to ${timeoutSeconds}s`);
            said = true;
            await new Promise((r) => setTimeout(r, 3000));
        }
    }
}

/** A file-backend lock left by a process on this host that no longer exists is stale: cancel it. */
async function clearStaleLock(ctx: LocalContext, name: string, log: (line: string) => void): Promise<boolean> {
    const backend = ctx.envVars.PULUMI_BACKEND_URL ?? "";
    if (!backend.startsWith("file://")) return false;
    const { readdirSync, readFileSync, existsSync } = await import("node:fs");
    const { hostname } = await import("node:os");
    const dir = join(backend.slice("file://".length), ".pulumi", "locks", "organization", "dataops", name);
    if (!existsSync(dir)) return false;
    const locks = readdirSync(dir).filter((f) => f.endsWith(".json"));
    if (locks.length === 0) return false;
    for (const file of locks) {
        const lock = JSON.parse(readFileSync(join(dir, file), "utf8")) as { pid?: number; hostname?: string };
        if (lock.hostname !== hostname() || lock.pid === undefined) return false;
        if (!processGone(lock.pid)) return false; // alive: a real concurrent update
        log(`dataops: ${name} was locked by process ${lock.pid}, which is gone; releasing its lock`);
    }
    // `pulumi cancel` on a file backend deletes the lock.
    await (await selectStack(ctx, name)).cancel();
    return true;
}

export type DestroyOutcome = { stack: string; destroyed: boolean };

/** Destroy and remove a branch's stack. Idempotent; refuses anything not made for a branch. */
export async function destroyBranch(ctx: LocalContext, branch: string, log: (line: string) => void, onOutput?: (t: string) => void): Promise<DestroyOutcome> {
    return destroyStack(ctx, stackNameForBranch(branch), log, onOutput);
}

export async function destroyStack(ctx: LocalContext, name: string, log: (line: string) => void, onOutput?: (t: string) => void, lockTimeoutSeconds = 600, signal?: AbortSignal): Promise<DestroyOutcome> {
    if (name === PRODUCTION_STACK || name === DEVELOPMENT_STACK) throw new Refused(`${name} is not a branch environment; destroy refuses it (use pulumi directly if you really mean it)`);
    // Everything below reads or writes the stack: one run of this checkout at a time (local/checkoutLock.ts).
    const held = { what: `dataops destroy ${name}`, timeoutSeconds: lockTimeoutSeconds, log, signal };
    return withCheckoutLock(environmentLockDir(ctx.root, name), held, async () => {
        forgetRecord(ctx.root, name);
        // Made only when asked: a destroy without the engine never loads the Automation API (about 0.5 s).
        const ws = () => workspace(ctx);
        // A backend dataops reads answers "is there such a stack" without an engine call.
        const checkpoint = checkpointFile(ctx.envVars.PULUMI_BACKEND_URL ?? "", name);
        const exists = checkpoint
            ? existsSync(checkpoint)
            : ((ctx.store ? await stackExists(ctx.store, name) : undefined) ?? (await withStateRepair(ctx, log, async () => (await ws()).listStacks())).some((s) => s.name === name));
        if (!exists) {
            // A destroy killed after the stack was removed left its backups and leases: finish that.
            await removeWhatWasKept(ctx, name, log);
            return { stack: name, destroyed: false };
        }
        const tags = (ctx.store && (await readStackTags(ctx.store, name))) ?? (await withStateRepair(ctx, log, async () => (await ws()).listTags(name)));
        if (tags[TAG.kind] !== "branch") throw new Refused(`${name} was not created for a branch (no ${TAG.kind}=branch tag); destroy refuses it`);
        const lease = ctx.store ? await holdLease(ctx.store, name, ctx.leaseSeconds ?? 60, log) : undefined;
        try {
            // On this checkout's embedded server, with nothing in the state but the catalog, dataops destroys it itself (lifecycle/directDestroy.ts).
            const admin = ctx.store && !ctx.destroyViaEngine ? await embeddedAdmin(ctx.root, name, log) : undefined;
            const direct =
                admin !== undefined &&
                (await destroyDirect({ store: ctx.store!, root: ctx.root, stack: name, admin, prefix: environmentPrefix(name), keepHistory: ctx.keepStateHistory ?? false, leaseSeconds: ctx.leaseSeconds ?? 60, log, signal }));
            if (!direct) await destroyHeld(ctx, name, log, onOutput, lockTimeoutSeconds, signal, checkpoint, lease);
        } finally {
            await lease?.release();
        }
        await removeWhatWasKept(ctx, name, log);
        return { stack: name, destroyed: true };
    });
}

/** The checkout's lock of one environment (local/checkoutLock.ts). */
function environmentLockDir(root: string, name: string): string {
    return join(localDir(root), "locks", name);
}

async function destroyHeld(ctx: LocalContext, name: string, log: (line: string) => void, onOutput: ((t: string) => void) | undefined, lockTimeoutSeconds: number, signal: AbortSignal | undefined, checkpoint: string | undefined, lease: Lease | undefined): Promise<void> {
    // Destroy never runs the program; an in-process workspace spares the language host's start.
    const stack = await selectStack(ctx, name, log, NO_PROGRAM);
    Object.assign(stack, { info: async () => undefined }); // destroy() reads the history back: a call we do not use
    // The server (embedded or shared) must be reachable for the database and roles to be dropped.
    // The stack's config says where, in the checkout that ran up; a fresh checkout (a CI job) has
    // none, and then the environment's own outputs say it (its admin connection, a stack secret).
    // A first up killed before it recorded its outputs leaves neither: then the servers are
    // derived as up derives them (production's branch server, the embedded one) and each is swept.
    // An environment on an embedded server of this checkout needs no secret of the stack: the
    // server's own admin login is here (no engine call to read and decrypt the config).
    const recorded = (await embeddedAdmin(ctx.root, name, log)) ?? serverAdmin(await stack.getAllConfig()) ?? (await adminFromOutputs(stack));
    if (recorded) await ensureEmbeddedAt(ctx.root, recorded.host, recorded.port, log);
    const admins = recorded ? [recorded] : await branchServers(ctx.root, process.env, log);
    const sweepAll = async () => {
        for (const admin of admins) await sweep(admin, environmentPrefix(name));
    };
    await withLockWait(ctx, name, lockTimeoutSeconds, log, async () => {
        // An interrupted update or destroy leaves pending operations, which the engine refuses to
        // run past. Every delete here tolerates an object that is already gone, so clearing them
        // and destroying is safe; what the state never recorded is swept below.
        if (!checkpoint || hasPendingOperations(checkpoint)) await clearPendingOperations(stack, log);
        try {
            await stack.destroy({ color: "never", onOutput, signal });
        } catch (e) {
            if (admins.length === 0 || signal?.aborted || /currently locked|concurrent update/i.test(String(e))) throw e;
            // Whatever stopped it (an object a killed run half-removed), the environment's objects
            // are found by name: remove them, and the destroy that follows has nothing left to fail on.
            log(`dataops: destroying ${name} failed (${firstLine(e)}); removing its objects by name and destroying again`);
            await sweepAll();
            await stack.destroy({ color: "never", onOutput, signal });
        }
    }, undefined, lease, signal);
    for (const admin of admins) {
        try {
            const left = await sweep(admin, environmentPrefix(name));
            if (left.databases.length + left.roles.length > 0)
                log(`dataops: removed what ${name}'s state did not record (an interrupted run): ${[...left.databases, ...left.roles].join(", ")}`);
        } catch (e) {
            // The destroy itself succeeded; a server that cannot be reached now (one that never was,
            // for an up that failed to reach it) holds nothing this run could check.
            log(`dataops: could not check ${admin.host}:${admin.port} for objects ${name}'s state did not record (${firstLine(e)}); if it is reachable later, dataops destroy --branch B removes them by name`);
        }
    }
    // `stack rm` takes the lock too; --remove-backups also removes the engine's backups and `.bak`.
    const rm = ["stack", "rm", "--yes", ...(ctx.keepStateHistory ? [] : ["--remove-backups"]), "--stack", name];
    await withLockWait(ctx, name, lockTimeoutSeconds, log, () => pulumiCli(ctx, rm), undefined, lease, signal);
}

/** A pulumi command the Automation API does not offer (`stack rm --remove-backups`); its stderr is the error. */
function pulumiCli(ctx: LocalContext, args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
        execFile(ctx.pulumi.command, [...args, "--non-interactive"], { cwd: ctx.root, env: { ...process.env, ...ctx.envVars }, maxBuffer: 16 * 1024 * 1024 }, (e, _out, err) => {
            if (e) reject(new Error(`pulumi ${args.join(" ")} failed: ${String(err).trim() || e.message}`));
            else resolve();
        });
    });
}

/**
 * What the backend still keeps of a removed stack (lifecycle/purge.ts): removed, unless
 * DATAOPS_KEEP_STATE_HISTORY=true keeps its backups. Said when anything was removed.
 */
async function removeWhatWasKept(ctx: LocalContext, name: string, log: (line: string) => void): Promise<void> {
    if (!ctx.store) return;
    const removed = await purgeStack(ctx.store, name, ctx.keepStateHistory ?? false, ctx.leaseSeconds ?? 60);
    if (removed.length > 0 && process.env.DATAOPS_DEBUG) log(`dataops: removed ${removed.length} object(s) the backend kept for ${name}: ${removed.join(", ")}`);
}

/**
 * The servers a branch can run on, derived as up derives them: production's shared branch
 * server (branches.server) when its admin password is given (DATAOPS_SERVER_ADMIN_PASSWORD),
 * and this machine's embedded server when it has one (started if stopped).
 */
export async function branchServers(root: string, env: Readonly<Record<string, string | undefined>>, log: (line: string) => void): Promise<ServerAdmin[]> {
    const servers: ServerAdmin[] = [];
    // Every embedded server this checkout made (one per major) may hold the environment.
    for (const major of embeddedMajorsCreated(root)) {
        const s = await ensureEmbeddedServer(root, log, major);
        servers.push({ host: s.host, port: s.port, user: s.user, password: s.password, sslMode: "disable" });
    }
    const shared = productionConfig(root).branches.server;
    if (shared && env.DATAOPS_SERVER_ADMIN_PASSWORD) servers.push({ host: shared.host, port: shared.port, user: shared.adminUser, password: env.DATAOPS_SERVER_ADMIN_PASSWORD, sslMode: shared.sslMode });
    return servers;
}

/** The admin connection an environment recorded as its output (a secret), when its stack has one. */
/** The admin login of the embedded server the stack's config file names (started if stopped), or undefined. */
async function embeddedAdmin(root: string, stack: string, log: (line: string) => void): Promise<ServerAdmin | undefined> {
    const at = recordedServer(root, stack);
    const major = at && embeddedMajorAt(at.host, at.port);
    if (major === undefined) return undefined;
    const s = await ensureEmbeddedServer(root, log, major);
    return { host: s.host, port: s.port, user: s.user, password: s.password, sslMode: "disable" };
}

async function adminFromOutputs(stack: Stack): Promise<ServerAdmin | undefined> {
    const a = (await stack.outputs()).adminConnection?.value as Partial<ServerAdmin> | undefined;
    if (!a?.host || a.password === undefined) return undefined;
    return { host: a.host, port: a.port ?? 5432, user: a.user ?? "postgres", password: a.password, sslMode: a.sslMode ?? "prefer" };
}

/**
 * An engine call made while an update of the same stack writes its checkpoint can read it
 * half-written ("failed to load checkpoint: EOF"): the write finishes in moments, so try again.
 */
async function settle<T>(call: () => Promise<T>, attempts = 10): Promise<T> {
    for (let i = 1; ; i++) {
        try {
            return await call();
        } catch (e) {
            if (i >= attempts || !(isUnreadableState(e) || /currently locked|concurrent update/i.test(String(e)))) throw e;
            await new Promise((r) => setTimeout(r, 300 * i));
        }
    }
}

/** Destroy and refresh never run the program. */
const NO_PROGRAM: PulumiFn = async () => {
    throw new Error("the program was run where only its state was needed");
};

/** Whether a file backend's checkpoint holds pending operations (read without decrypting anything). */
function hasPendingOperations(checkpoint: string): boolean {
    try {
        const c = JSON.parse(readFileSync(checkpoint, "utf8")) as { checkpoint?: { latest?: { pending_operations?: unknown[] } } };
        return (c.checkpoint?.latest?.pending_operations ?? []).length > 0;
    } catch {
        return true; // unreadable: let the engine's export decide
    }
}

function firstLine(e: unknown): string {
    const text = String((e as Error).message ?? e);
    return (text.split("\n").find((l) => /error/i.test(l)) ?? text.split("\n")[0]).trim().slice(0, 300);
}

/** The admin connection of a branch on a server target, from its stack config (the password is a stack secret). */
function serverAdmin(config: Record<string, { value: string; secret?: boolean }>): ServerAdmin | undefined {
    const server = config["dataops:server"]?.value;
    const password = config["dataops:serverAdminPassword"]?.value;
    if (!server || password === undefined) return undefined;
    const s = JSON.parse(server) as { host: string; port?: number; adminUser?: string; sslMode?: string };
    return { host: s.host, port: s.port ?? 5432, user: s.adminUser ?? "postgres", password, sslMode: s.sslMode ?? "prefer" };
}

/** Every stack with its tags. A stack whose tags cannot be read is named and left out; the others are listed. */
export async function listEnvironments(ctx: LocalContext, log: (line: string) => void, o: { details: boolean } = { details: true }): Promise<StackInfo[]> {
    const fromFiles = listFileBackend(ctx.envVars.PULUMI_BACKEND_URL ?? "");
    if (fromFiles) return fromFiles;
    // Another bucket dataops reads (S3): one pass over it; `prune` needs the tags only.
    const fromBucket = ctx.store ? await listStore(ctx.store, o) : undefined;
    if (fromBucket) return fromBucket;
    const ws = await workspace(ctx);
    const stacks = await withStateRepair(ctx, log, () => ws.listStacks());
    // One engine process per stack: a few at a time, not hundreds at once.
    const infos: Array<StackInfo | undefined> = [];
    let next = 0;
    const worker = async () => {
        for (let i = next++; i < stacks.length; i = next++) {
            const s = stacks[i];
            try {
                infos[i] = { name: s.name, tags: await ws.listTags(s.name), lastUpdate: s.lastUpdate, resourceCount: s.resourceCount };
            } catch (e) {
                log(`dataops: skipped stack ${s.name}: its state cannot be read (${firstLine(e)})`);
            }
        }
    };
    await Promise.all(Array.from({ length: Math.min(4, stacks.length) }, worker));
    return infos.filter((i) => i !== undefined);
}

/** A branch's stack, or a refusal that says how to make it. */
export async function environmentStack(ctx: LocalContext, branch: string): Promise<Stack> {
    const name = stackNameForBranch(branch);
    return selectStack(ctx, name).catch((e: unknown) => {
        if (e instanceof automation().StackNotFoundError) throw new Refused(`branch ${branch} has no environment (no stack ${name}); bring it up first: npx dataops up --branch ${shellQuote(branch)}`);
        throw e;
    });
}

/** A branch environment's outputs, secrets decrypted: for `dataops env`, `load` and `dbt`, never printed whole. */
export async function environmentOutputs(ctx: LocalContext, branch: string): Promise<EnvironmentOutputs> {
    const name = stackNameForBranch(branch);
    const stack = await environmentStack(ctx, branch);
    const outputs = await stack.outputs();
    if (!outputs.environment) throw new Refused(`${name} has no outputs yet (its first update did not finish); run npx dataops up --branch ${shellQuote(branch)}`);
    const value = <T>(key: string, fallback: T): T => (outputs[key]?.value as T | undefined) ?? fallback;
    return {
        environment: value("environment", {} as EnvironmentSummary),
        userPasswords: value("userPasswords", {}),
        loaderConnections: value("loaderConnections", {}),
        adminConnection: outputs.adminConnection?.value as EnvironmentOutputs["adminConnection"],
    };
}
