// The no-op fast path of `dataops up`. A later push that changes nothing in the environment
// is the most common update there is; the engine needs about 3 s to say "no changes". Here
// it is answered without the engine, and without doubt:
// - the inputs are the same as at the last successful update: a fingerprint of the compiled
//   program's sources, the dependencies, production's config, the stack's config (secrets
//   hashed), the commit and the engine version;
// - the state is the one that update wrote: the stack's checkpoint and its config file are
//   unchanged (no `pulumi up`, refresh or destroy has run since, from here or by hand), and no
//   update holds the stack's lock;
// - the server is as that update left it: the catalog it applied is compared with the server's
//   catalogs (the same check as `dataops drift`), so drift is seen even where a full update,
//   which does not read the server, would not see it.
// Any doubt (a missing record, another backend than a local file one, the provider engine,
// `--refresh`) takes the full path. Then one engine call renews the expiry tag.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Catalog } from "../components/catalog";
import type { EnvironmentSummary } from "../components/dataPlatform";
import type { AdminConnection } from "../components/generated";
import { localDir } from "../local/embedded";

const RECORD_VERSION = 1;

export interface UpRecord {
    readonly version: number;
    readonly fingerprint: string;
    readonly checkpoint: string;
    readonly configFile: string;
    readonly catalog: Catalog;
    readonly summary: EnvironmentSummary;
    readonly tags: Record<string, string>;
    readonly resources: number;
}

/** What a file looks like now (size and modification time), or "absent". */
function fileStamp(file: string): string {
    try {
        const s = statSync(file);
        return `${s.size}:${s.mtimeMs}`;
    } catch {
        return "absent";
    }
}

function recordFile(root: string, stack: string): string {
    return join(localDir(root), "up", `${stack}.json`);
}

/** The stack's checkpoint in a file backend (project-scoped layout), or undefined for other backends. */
export function checkpointFile(backendUrl: string, stack: string): string | undefined {
    if (!backendUrl.startsWith("file://")) return undefined;
    return join(backendUrl.slice("file://".length), ".pulumi", "stacks", "dataops", `${stack}.json`);
}

function locked(backendUrl: string, stack: string): boolean {
    const dir = join(backendUrl.slice("file://".length), ".pulumi", "locks", "organization", "dataops", stack);
    try {
        return readdirSync(dir).length > 0;
    } catch {
        return false;
    }
}

export interface FingerprintInput {
    readonly root: string;
    readonly stack: string;
    /** The config `up` would write, secrets included (only their hash is kept). */
    readonly config: Readonly<Record<string, { value: string; secret?: boolean }>>;
    readonly identity: Readonly<Record<string, string>>;
}

/** A hash of everything that decides what an update would do. Undefined when the program runs from sources (no build stamp). */
export function fingerprint(i: FingerprintInput): string | undefined {
    const stamp = join(localDir(i.root), "build", "stamp.json");
    if (!existsSync(stamp)) return undefined;
    const h = createHash("sha256");
    const add = (label: string, value: string) => h.update(`${label}\0${value}\0`);
    add("build", readFileSync(stamp, "utf8"));
    for (const f of ["package.json", "package-lock.json", "Pulumi.yaml", "Pulumi.prod.yaml", "engine/versions.json", "bin/build.js"]) {
        const p = join(i.root, f);
        add(f, existsSync(p) ? createHash("sha256").update(readFileSync(p)).digest("hex") : "absent");
    }
    add("node", process.version);
    add("stack", i.stack);
    for (const [k, v] of Object.entries(i.config).sort(([a], [b]) => a.localeCompare(b))) add(`config ${k}`, v.secret ? createHash("sha256").update(v.value).digest("hex") : v.value);
    for (const [k, v] of Object.entries(i.identity).sort(([a], [b]) => a.localeCompare(b))) add(`id ${k}`, v);
    return h.digest("hex");
}

export function readRecord(root: string, stack: string): UpRecord | undefined {
    try {
        const r = JSON.parse(readFileSync(recordFile(root, stack), "utf8")) as UpRecord;
        return r.version === RECORD_VERSION ? r : undefined;
    } catch {
        return undefined;
    }
}

export function writeRecord(root: string, stack: string, r: Omit<UpRecord, "version" | "checkpoint" | "configFile">, backendUrl: string): void {
    const checkpoint = checkpointFile(backendUrl, stack);
    if (!checkpoint) return;
    const file = recordFile(root, stack);
    mkdirSync(join(localDir(root), "up"), { recursive: true, mode: 0o700 });
    const full: UpRecord = { version: RECORD_VERSION, ...r, checkpoint: fileStamp(checkpoint), configFile: fileStamp(join(root, `Pulumi.${stack}.yaml`)) };
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(full), { mode: 0o600 });
    renameSync(tmp, file);
}

/** Re-stamp the record after an engine call of ours that rewrote the checkpoint (a tag). */
export function restamp(root: string, stack: string, backendUrl: string, tags: Record<string, string>): void {
    const r = readRecord(root, stack);
    if (r) writeRecord(root, stack, { ...r, tags }, backendUrl);
}

export function forgetRecord(root: string, stack: string): void {
    // Removed, not emptied: a destroyed stack leaves nothing behind in .dataops/up.
    rmSync(recordFile(root, stack), { force: true });
}

export type FastPathVerdict = { readonly ok: true; readonly record: UpRecord } | { readonly ok: false; readonly why: string };

/** Whether `up` may answer "no changes" without the engine; the reason when not. */
export async function checkFastPath(
    i: FingerprintInput & { readonly backendUrl: string; readonly admin?: AdminConnection; readonly refresh?: boolean },
    drift: (admin: AdminConnection, catalog: Catalog) => Promise<readonly unknown[]>,
): Promise<FastPathVerdict> {
    if (i.refresh) return { ok: false, why: "--refresh" };
    const checkpoint = checkpointFile(i.backendUrl, i.stack);
    if (!checkpoint) return { ok: false, why: "not a local file backend" };
    const record = readRecord(i.root, i.stack);
    if (!record) return { ok: false, why: "no record of a previous update here" };
    if (!i.admin) return { ok: false, why: "no admin connection to check the server with" };
    const now = fingerprint(i);
    if (!now || now !== record.fingerprint) return { ok: false, why: "the program, its dependencies or its config changed" };
    if (fileStamp(checkpoint) !== record.checkpoint || fileStamp(join(i.root, `Pulumi.${i.stack}.yaml`)) !== record.configFile)
        return { ok: false, why: "the state changed since (another update, a refresh or a destroy)" };
    if (locked(i.backendUrl, i.stack)) return { ok: false, why: "another update holds the stack" };
    const found = await drift(i.admin, record.catalog).catch(() => undefined);
    if (!found) return { ok: false, why: "the server could not be read" };
    if (found.length > 0) return { ok: false, why: "the server drifted" };
    return { ok: true, record };
}
