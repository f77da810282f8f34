// Local environments through the Automation API: the engine from the bootstrap, a
// file state backend and a passphrase inside the project's .dataops/ (ignored by
// git), and the embedded PostgreSQL as the `server` target.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import type { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";
import { automation, lazySdkHook, pulumiCommand } from "./automation";
import type { ServerConnection } from "../config/schema";
import { SQL_ENGINES, type SqlEngine } from "../config/sqlEngine";
import { type EmbeddedServer, ensureEmbeddedServer, localDir } from "./embedded";
import { reapOrphanedProviders } from "./processes";
import { stateStore, type StateStore } from "./stateStore";
import { BackendUrlError } from "./s3Store";
import { leaseSeconds, LeaseSettingError } from "../lifecycle/locks";

export interface LocalContext {
    readonly root: string;
    readonly pulumi: PulumiCommand;
    readonly envVars: Record<string, string>;
    /** A team's secrets provider for new stacks (e.g. awskms://…); the passphrase provider when absent. */
    readonly secretsProvider?: string;
    /** The backend's bucket, where dataops reads it itself (file://, s3://): locks, leases, the one-pass listing. */
    readonly store?: StateStore;
    /** DATAOPS_LOCK_LEASE_SECONDS (lifecycle/locks.ts). @default 60 */
    readonly leaseSeconds?: number;
    /** DATAOPS_KEEP_STATE_HISTORY: keep a destroyed stack's backups (lifecycle/purge.ts). @default false */
    readonly keepStateHistory?: boolean;
    /** Whether the passphrase is the checkout's own (.dataops/passphrase), made by dataops for the local default. */
    readonly localPassphrase?: boolean;
    /** DATAOPS_DESTROY_VIA_ENGINE: destroy through the engine even where dataops could itself (lifecycle/directDestroy.ts). @default false */
    readonly destroyViaEngine?: boolean;
}

/**
 * Make the engine usable (scripts/engine.mjs: on PATH, in Pulumi's cache, the official
 * download, or built from Go modules) and fail with its own explanation when it cannot.
 */
export async function ensureEngine(root: string, log: (line: string) => void): Promise<PulumiCommand> {
    checkPulumiHome();
    // Fast path: the bootstrap's stamp says the pinned engine is installed (saves a Node start).
    const cached = installedEngine(root);
    if (cached) return pulumiCommand(cached, pinnedEngine(root));
    const r = spawnSync(process.execPath, [join(root, "scripts", "engine.mjs"), "ensure", "--print-path"], {
        cwd: root,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
        maxBuffer: 64 * 1024 * 1024,
    });
    for (const line of (r.stderr ?? "").split("\n").filter(Boolean)) log(line);
    const bin = (r.stdout ?? "").trim().split("\n").pop() ?? "";
    if (r.status !== 0 || !bin) throw new Error(`the Pulumi engine is not available (scripts/engine.mjs ensure exited ${r.status}); see the lines above`);
    // PulumiCommand.get wants the folder above bin/ and checks the version against the SDK's minimum.
    return automation().PulumiCommand.get({ root: dirname(bin), skipVersionCheck: false });
}

/**
 * The engine, its plugins and its caches live in Pulumi's home. One that cannot be written
 * (HOME=/proc/self, a read-only HOME in a container) sent the bootstrap into a build that hung
 * without a word: refuse at once, naming the folder and the variables that choose it.
 */
function checkPulumiHome(): void {
    const home = process.env.PULUMI_HOME ?? join(homedir(), ".pulumi");
    const probe = join(home, `.dataops-write-check-${process.pid}`);
    try {
        // Not mkdirSync(recursive): under /proc it loops for ever instead of failing.
        if (!existsSync(home)) mkdirSync(home);
        writeFileSync(probe, "");
        unlinkSync(probe);
    } catch (e) {
        throw new EngineRefused(
            `Pulumi's home ${home} cannot be written (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): the engine and its caches live there. ` +
                "Set HOME, or PULUMI_HOME, to a folder you can write",
        );
    }
}

/** A refusal before anything was done (exit 2). */
export class EngineRefused extends Error {}

function pinnedEngine(root: string): string {
    return (JSON.parse(readFileSync(join(root, "engine", "versions.json"), "utf8")) as { pulumi: string }).pulumi;
}

/** The bin folder of the pinned engine, when scripts/engine.mjs recorded installing exactly it. */
function installedEngine(root: string): string | undefined {
    const pins = JSON.parse(readFileSync(join(root, "engine", "versions.json"), "utf8")) as { pulumi: string; languageNodejs: string };
    const home = process.env.PULUMI_HOME ?? join(homedir(), ".pulumi");
    const bin = join(home, "versions", pins.pulumi, "bin");
    try {
        const stamp = JSON.parse(readFileSync(join(bin, ".engine.json"), "utf8")) as { pulumi?: string; languageNodejs?: string };
        const complete = ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"].every((b) => existsSync(join(bin, b)));
        return complete && stamp.pulumi === pins.pulumi && stamp.languageNodejs === pins.languageNodejs ? bin : undefined;
    } catch {
        return undefined;
    }
}

function secretFile(root: string, name: string): string {
    const file = join(localDir(root), name);
    mkdirSync(dirname(file), { recursive: true });
    if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString("base64url"), { mode: 0o600 });
    return readFileSync(file, "utf8").trim();
}

/**
 * The engine plus where state lives. In CI the team's backend and secrets provider come
 * from the environment (PULUMI_BACKEND_URL, PULUMI_CONFIG_PASSPHRASE[_FILE]); on a laptop,
 * a file backend and a generated passphrase inside .dataops/.
 */
export async function localContext(root: string, log: (line: string) => void = () => undefined, env: NodeJS.ProcessEnv = process.env): Promise<LocalContext> {
    // Settings first: a mistyped one is refused before the engine is looked for.
    let store: StateStore | undefined;
    let lease: number;
    try {
        lease = leaseSeconds(env);
        store = env.PULUMI_BACKEND_URL ? stateStore(env.PULUMI_BACKEND_URL, env) : undefined;
    } catch (e) {
        if (e instanceof BackendUrlError || e instanceof LeaseSettingError) throw new EngineRefused(e.message);
        throw e;
    }
    const keepStateHistory = keepHistory(env);
    const destroyViaEngine = flag(env, "DATAOPS_DESTROY_VIA_ENGINE");
    const pulumi = await ensureEngine(root, log);
    reapOrphanedProviders(root, log);
    const state = join(localDir(root), "state");
    if (!env.PULUMI_BACKEND_URL) {
        // State holds every environment's encrypted secrets and its whole shape: the owner's only.
        mkdirSync(state, { recursive: true, mode: 0o700 });
        chmodSync(state, 0o700);
    }
    const backend = env.PULUMI_BACKEND_URL ?? `file://${state}`;
    if (backend.startsWith("file://")) repairFileState(backend.slice("file://".length), log, Date.now(), !env.PULUMI_BACKEND_URL);
    const hasPassphrase = env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined || !!env.PULUMI_SECRETS_PROVIDER;
    return {
        root,
        pulumi,
        secretsProvider: env.PULUMI_SECRETS_PROVIDER || undefined,
        store: store ?? stateStore(`file://${state}`, env),
        leaseSeconds: lease,
        keepStateHistory,
        destroyViaEngine,
        localPassphrase: !hasPassphrase,
        envVars: {
            PULUMI_BACKEND_URL: env.PULUMI_BACKEND_URL ?? `file://${state}`,
            // Local stacks only: their secrets (admin and generated passwords) are encrypted with this.
            ...(hasPassphrase ? {} : { PULUMI_CONFIG_PASSPHRASE: secretFile(root, "passphrase") }),
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // The aws and docker plugins are not used on the server target and cannot be downloaded here.
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
            // The engine's Node processes (the dynamic-provider host) load the SDK without what they never use: 0.5 s and 50 MB each.
            ...(existsSync(lazySdkHook()) ? { NODE_OPTIONS: `${env.NODE_OPTIONS ? `${env.NODE_OPTIONS} ` : ""}--require ${JSON.stringify(lazySdkHook())}` } : {}),
        },
    };
}

/** DATAOPS_KEEP_STATE_HISTORY: true keeps a destroyed stack's backups in the backend; false (the default) removes everything it kept. */
export function keepHistory(env: Readonly<Record<string, string | undefined>>): boolean {
    return flag(env, "DATAOPS_KEEP_STATE_HISTORY");
}

/** A true | false setting of the environment, unset meaning false; anything else refused, naming it. */
function flag(env: Readonly<Record<string, string | undefined>>, key: string): boolean {
    const v = env[key];
    if (v === undefined || v === "" || v === "false") return false;
    if (v === "true") return true;
    throw new EngineRefused(`${key}: allowed true | false, given "${v}"`);
}

/**
 * A process killed while the file backend writes a stack's checkpoint can leave an empty
 * `.attrs` file beside it, or a checkpoint that is empty or cut short; the engine then fails
 * every command on that stack ("failed to load checkpoint: EOF"), and every listing of all
 * stacks. Repairs, each logged:
 * - an empty attributes file carries nothing: removed;
 * - an unreadable checkpoint with a readable `.bak` (the engine's previous one): the bad one is
 *   kept aside as `.corrupt-<time>` and the backup takes its place; the objects the lost
 *   operations made are made again idempotently by the next up, or found by name by destroy;
 * - an unreadable checkpoint without a backup: kept aside, so the other stacks work again and
 *   `dataops destroy` finds the environment's objects by their name prefix.
 * Files younger than `minAgeMs` may be a write in progress and are left alone, unless the
 * engine has just failed on them (minAgeMs 0).
 */
export function repairFileState(dir: string, log: (line: string) => void, now = Date.now(), privateFiles = false, minAgeMs = 5000): string[] {
    const repaired: string[] = [];
    const old = (path: string) => now - statSync(path).mtimeMs >= minAgeMs;
    // Every command runs this: an empty checkpoint costs a stat to see. Parsing every checkpoint
    // (hundreds of stacks, hundreds of KB each) is left to the run the engine just failed (minAgeMs 0).
    const broken = (path: string) => statSync(path).size === 0 || (minAgeMs === 0 && !readable(path));
    const walk = (d: string) => {
        if (!existsSync(d)) return;
        for (const entry of readdirSync(d, { withFileTypes: true })) {
            const path = join(d, entry.name);
            if (!existsSync(path)) continue; // removed by a repair of its checkpoint just before
            if (entry.isDirectory()) {
                walk(path);
                continue;
            }
            // The project's own state: files the owner's only (the engine writes them 0644).
            if (privateFiles && (statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
            if (entry.name.endsWith(".attrs") && statSync(path).size === 0 && old(path)) {
                unlinkSync(path);
                repaired.push(path);
                log(`dataops: repaired the state backend: removed the empty attribute file ${entry.name} left by an interrupted write`);
            } else if (entry.name.endsWith(".json") && d.includes(`${join(".pulumi", "stacks")}`) && broken(path) && old(path)) {
                repaired.push(path);
                const aside = `${path}.corrupt-${now}`;
                renameSync(path, aside);
                if (existsSync(`${path}.attrs`)) unlinkSync(`${path}.attrs`);
                if (readable(`${path}.bak`)) {
                    copyFileSync(`${path}.bak`, path);
                    log(`dataops: the state of ${entry.name.replace(/\.json$/, "")} was cut short by an interrupted write; restored the engine's previous checkpoint (the bad one is kept as ${aside})`);
                } else {
                    log(`dataops: the state of ${entry.name.replace(/\.json$/, "")} is unreadable and has no backup; set it aside as ${aside} so the other stacks work. dataops destroy --branch B removes that environment's objects by name`);
                }
            }
        }
    };
    walk(join(dir, ".pulumi"));
    return repaired;
}

function readable(path: string): boolean {
    try {
        JSON.parse(readFileSync(path, "utf8"));
        return true;
    } catch {
        return false;
    }
}

/** How the engine says a stack's state file could not be read. */
const UNREADABLE_STATE = /failed to load checkpoint|unexpected end of JSON input|could not deserialize|invalid character .* looking for beginning|^error: EOF\s*$/im;

export function isUnreadableState(e: unknown): boolean {
    return UNREADABLE_STATE.test(String(e));
}

/** Repair the local file backend at once (the engine just failed on it). Returns what was repaired. */
export function repairLocalState(ctx: LocalContext, log: (line: string) => void): string[] {
    const backend = ctx.envVars.PULUMI_BACKEND_URL ?? "";
    return backend.startsWith("file://") ? repairFileState(backend.slice("file://".length), log, Date.now(), false, 0) : [];
}

/** Run an engine call; when it fails on an unreadable state file of the local backend, repair and run it once more. */
export async function withStateRepair<T>(ctx: LocalContext, log: (line: string) => void, call: () => Promise<T>): Promise<T> {
    try {
        return await call();
    } catch (e) {
        if (!isUnreadableState(e) || repairLocalState(ctx, log).length === 0) throw e;
        return call();
    }
}

export async function workspace(ctx: LocalContext): Promise<LocalWorkspace> {
    return automation().LocalWorkspace.create({ workDir: ctx.root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
}

/** Select or create the branch's stack and point it at the embedded server. */
export async function branchStack(ctx: LocalContext, stackName: string, branch: string, server: EmbeddedServer): Promise<Stack> {
    const stack = await automation().LocalWorkspace.createOrSelectStack({ stackName, workDir: ctx.root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
    await stack.setAllConfig({
        "dataops:branch": { value: branch },
        "dataops:sqlEngine": { value: sqlEngineChoice(process.env).engine },
        ...serverConfig({ host: server.host, port: server.port, adminUser: server.user, sslMode: "disable" }, server.password),
    });
    return stack;
}

/** A branch stack's config for the server target: where the server is and its admin password (a secret). */
export function serverConfig(server: ServerConnection, password: string): Record<string, { value: string; secret?: boolean }> {
    return {
        "dataops:server": { value: JSON.stringify(server) },
        "dataops:serverAdminPassword": { value: password, secret: true },
    };
}

/** Whether the @pulumi/postgresql provider plugin is installed in Pulumi's home. */
export function postgresqlPluginInstalled(env: NodeJS.ProcessEnv = process.env): boolean {
    const plugins = join(env.PULUMI_HOME ?? join(homedir(), ".pulumi"), "plugins");
    try {
        return readdirSync(plugins).some((p) => p.startsWith("resource-postgresql-"));
    } catch {
        return false;
    }
}

/**
 * The SQL engine for a branch stack the CLI creates. DATAOPS_SQL_ENGINE when set (`explicit`:
 * written to the stack on every up); otherwise `provider` where the postgresql plugin is
 * installed, `sql` where it is not (a machine that reaches only package registries cannot build
 * it), written once, at creation. A stack's own `dataops:sqlEngine` (pulumi config set) is
 * never overwritten after that.
 */
export function sqlEngineChoice(env: Readonly<Record<string, string | undefined>>): { engine: SqlEngine; explicit: boolean } {
    const given = env.DATAOPS_SQL_ENGINE;
    if (given !== undefined && given !== "") {
        if (!(SQL_ENGINES as readonly string[]).includes(given)) throw new EngineRefused(`DATAOPS_SQL_ENGINE: allowed ${SQL_ENGINES.join(" | ")}, given "${given}"`);
        return { engine: given as SqlEngine, explicit: true };
    }
    return { engine: postgresqlPluginInstalled(env as NodeJS.ProcessEnv) ? "provider" : "sql", explicit: false };
}

export async function ensureLocalServer(root: string, log: (line: string) => void): Promise<EmbeddedServer> {
    return ensureEmbeddedServer(root, log);
}
