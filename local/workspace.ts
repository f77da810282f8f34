// Local environments through the Automation API: the engine from the bootstrap, a
// file state backend and a passphrase inside the project's .dataops/ (ignored by
// git), and the embedded PostgreSQL as the `server` target.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import type { ServerConnection } from "../config/schema";
import { type EmbeddedServer, ensureEmbeddedServer, localDir } from "./embedded";

export interface LocalContext {
    readonly root: string;
    readonly pulumi: PulumiCommand;
    readonly envVars: Record<string, string>;
    /** A team's secrets provider for new stacks (e.g. awskms://…); the passphrase provider when absent. */
    readonly secretsProvider?: string;
}

/**
 * Make the engine usable (scripts/engine.mjs: on PATH, in Pulumi's cache, the official
 * download, or built from Go modules) and fail with its own explanation when it cannot.
 */
export async function ensureEngine(root: string, log: (line: string) => void): Promise<PulumiCommand> {
    // Fast path: the bootstrap's stamp says the pinned engine is installed (saves a Node start).
    const cached = installedEngine(root);
    if (cached) return PulumiCommand.get({ root: dirname(cached), skipVersionCheck: false });
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
    return PulumiCommand.get({ root: dirname(bin), skipVersionCheck: false });
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
    const pulumi = await ensureEngine(root, log);
    const state = join(localDir(root), "state");
    if (!env.PULUMI_BACKEND_URL) mkdirSync(state, { recursive: true });
    const backend = env.PULUMI_BACKEND_URL ?? `file://${state}`;
    if (backend.startsWith("file://")) repairFileState(backend.slice("file://".length), log);
    const hasPassphrase = env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined || !!env.PULUMI_SECRETS_PROVIDER;
    return {
        root,
        pulumi,
        secretsProvider: env.PULUMI_SECRETS_PROVIDER || undefined,
        envVars: {
            PULUMI_BACKEND_URL: env.PULUMI_BACKEND_URL ?? `file://${state}`,
            // Local stacks only: their secrets (admin and generated passwords) are encrypted with this.
            ...(hasPassphrase ? {} : { PULUMI_CONFIG_PASSPHRASE: secretFile(root, "passphrase") }),
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // The aws and docker plugins are not used on the server target and cannot be downloaded here.
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK: "true",
        },
    };
}

/**
 * A process killed while the file backend writes a checkpoint can leave an empty
 * `.attrs` file beside it, after which every stack listing fails with "EOF". An empty
 * attributes file carries nothing, so removing it loses nothing. Files younger than a
 * few seconds may be a write in progress and are left alone.
 */
export function repairFileState(dir: string, log: (line: string) => void, now = Date.now()): string[] {
    const removed: string[] = [];
    const walk = (d: string) => {
        if (!existsSync(d)) return;
        for (const entry of readdirSync(d, { withFileTypes: true })) {
            const path = join(d, entry.name);
            if (entry.isDirectory()) walk(path);
            else if (entry.name.endsWith(".attrs")) {
                const st = statSync(path);
                if (st.size === 0 && now - st.mtimeMs > 5000) {
                    unlinkSync(path);
                    removed.push(path);
                }
            }
        }
    };
    walk(join(dir, ".pulumi"));
    if (removed.length > 0) log(`dataops: repaired the state backend: removed ${removed.length} empty attribute file(s) left by an interrupted write`);
    return removed;
}

export async function workspace(ctx: LocalContext): Promise<LocalWorkspace> {
    return LocalWorkspace.create({ workDir: ctx.root, pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
}

/** Select or create the branch's stack and point it at the embedded server. */
export async function branchStack(ctx: LocalContext, stackName: string, branch: string, server: EmbeddedServer): Promise<Stack> {
    const stack = await LocalWorkspace.createOrSelectStack({ stackName, workDir: ctx.root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
    await stack.setAllConfig({
        "dataops:branch": { value: branch },
        ...serverConfig({ host: server.host, port: server.port, adminUser: server.user, sslMode: "disable" }, server.password),
    });
    return stack;
}

/**
 * A branch stack's config for the server target: where the server is, its admin password
 * (a secret), and the in-process SQL engine (no provider plugin to install or start).
 */
export function serverConfig(server: ServerConnection, password: string): Record<string, { value: string; secret?: boolean }> {
    return {
        "dataops:server": { value: JSON.stringify(server) },
        "dataops:serverAdminPassword": { value: password, secret: true },
        "dataops:sqlEngine": { value: "sql" },
    };
}

export async function ensureLocalServer(root: string, log: (line: string) => void): Promise<EmbeddedServer> {
    return ensureEmbeddedServer(root, log);
}
