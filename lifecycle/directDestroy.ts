// `dataops destroy` without the engine, where dataops can do all the engine would.
//
// A branch environment on this checkout's embedded server holds, in the engine's state, one
// SqlCatalog (its database and roles), generated passwords and a version check, under
// component resources. Deleting them through the engine costs its start, the Node
// dynamic-provider host, the passphrase's key derivation and a state rewrite per resource:
// about 2 s of a 3.5 s destroy here, for one `DROP DATABASE` and one `DROP ROLE`. So when the
// state holds nothing else, dataops does what the engine would:
// 1. it takes the stack's lock as the engine does (its lock object, then a second look that no
//    other run took one meanwhile), so no update or destroy runs beside it;
// 2. it reads the checkpoint once more under that lock and refuses anything unexpected: another
//    resource type (docker, aws, a provider resource), pending operations of an interrupted run,
//    a checkpoint in another format. Then the engine destroys, as before;
// 3. it drops the catalog the state recorded (`dropCatalog`, the SqlCatalog's own delete: the
//    database with FORCE, then the roles) and sweeps the environment's name prefix, as an engine
//    destroy is followed;
// 4. it removes the stack as `pulumi stack rm` does: the checkpoint first (from then on the stack
//    is gone), then its tags, backups and history (kept with DATAOPS_KEEP_STATE_HISTORY, the
//    last checkpoint as `.json.bak`), the stack's config file, and last its lock.
// Each step can be interrupted: a drop is idempotent, a lock of a run that is gone is released by
// the next run (lifecycle/locks.ts), and a stack whose checkpoint is gone is finished by the next
// destroy (removeWhatWasKept). DATAOPS_DESTROY_VIA_ENGINE=true always takes the engine.
import { randomUUID } from "node:crypto";
import { rmSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import type { Catalog } from "../components/catalog";
import { dropCatalog } from "../components/catalogSql";
import type { StateStore } from "../local/stateStore";
import { checkpointKey, lockDir, tagsKey } from "./locks";
import { purgeStack } from "./purge";
import { type ServerAdmin, sweep } from "./sweep";

/** Custom resources whose delete dataops does itself; anything else is the engine's. */
const DROPPED = "pulumi-nodejs:dynamic/dataops:SqlCatalog";
const NOTHING_TO_DELETE = new Set(["pulumi:providers:pulumi-nodejs", "pulumi-nodejs:dynamic/dataops:GeneratedPassword", "pulumi-nodejs:dynamic/dataops:ServerVersion"]);

export type DirectPlan = { readonly ok: true; readonly catalogs: readonly Catalog[]; readonly resources: number } | { readonly ok: false; readonly why: string };

interface CheckpointResource {
    readonly type?: unknown;
    readonly custom?: unknown;
    readonly outputs?: { readonly catalog?: unknown };
}

/** Whether the checkpoint's resources are all ones dataops removes itself, and the catalogs to drop. */
export function directPlan(text: string | undefined): DirectPlan {
    if (text === undefined) return { ok: false, why: "no checkpoint" };
    let c: { version?: unknown; checkpoint?: { latest?: { resources?: unknown; pending_operations?: unknown[] } | null } };
    try {
        c = JSON.parse(text) as typeof c;
    } catch {
        return { ok: false, why: "the checkpoint is not JSON" };
    }
    if (c.version !== 3 || !c.checkpoint) return { ok: false, why: `a checkpoint of version ${String(c.version)}` };
    const latest = c.checkpoint.latest;
    if (!latest) return { ok: true, catalogs: [], resources: 0 };
    if ((latest.pending_operations ?? []).length > 0) return { ok: false, why: "pending operations of an interrupted run" };
    const resources = (latest.resources ?? []) as CheckpointResource[];
    if (!Array.isArray(resources)) return { ok: false, why: "no resource list" };
    const catalogs: Catalog[] = [];
    for (const r of resources) {
        if (typeof r.type !== "string") return { ok: false, why: "a resource without a type" };
        if (r.custom !== true) continue; // a component: state only
        if (r.type === DROPPED) {
            const catalog = r.outputs?.catalog as Catalog | undefined;
            if (!catalog?.database?.name || typeof catalog.roles !== "object") return { ok: false, why: "a SqlCatalog without its catalog" };
            catalogs.push(catalog);
        } else if (!NOTHING_TO_DELETE.has(r.type)) return { ok: false, why: `a ${r.type} resource` };
    }
    return { ok: true, catalogs, resources: resources.length };
}

export interface DirectDestroy {
    readonly store: StateStore;
    readonly root: string;
    readonly stack: string;
    /** The embedded server the stack's config names, with its admin login. */
    readonly admin: ServerAdmin;
    /** The environment's name prefix, for the sweep. */
    readonly prefix: string;
    readonly keepHistory: boolean;
    readonly leaseSeconds: number;
    readonly log: (line: string) => void;
    readonly signal?: AbortSignal;
}

/** Destroy and remove the stack without the engine; false (nothing changed) when the engine must. */
export async function destroyDirect(d: DirectDestroy): Promise<boolean> {
    const say = (why: string) => {
        if (process.env.DATAOPS_DEBUG) d.log(`dataops: ${d.stack}: destroyed through the engine: ${why}`);
        return false;
    };
    const first = directPlan(await d.store.read(checkpointKey(d.stack)));
    if (!first.ok) return say(first.why);
    // The engine's lock protocol: none there, ours written, still no other.
    const locks = lockDir(d.stack);
    if ((await d.store.list(locks)).length > 0) return say("the stack is locked");
    const mine = `${locks}${randomUUID()}.json`;
    await d.store.write(mine, JSON.stringify({ pid: process.pid, username: userInfo().username, hostname: hostname(), timestamp: new Date().toISOString() }));
    let removed = false;
    try {
        if ((await d.store.list(locks)).some((o) => o.key !== mine)) return say("another run took the stack's lock");
        // Read again under the lock: what an update finished meanwhile is in it.
        const text = await d.store.read(checkpointKey(d.stack));
        const plan = directPlan(text);
        if (!plan.ok) return say(plan.why);
        if (d.signal?.aborted) throw d.signal.reason instanceof Error ? d.signal.reason : new Error("cancelled");
        for (const catalog of plan.catalogs) await dropCatalog(d.admin, catalog);
        await sweep(d.admin, d.prefix);
        const dropped = plan.catalogs.map((c) => `${c.database.name} and ${Object.keys(c.roles).length} roles`).join(", ") || "nothing on the server";
        d.log(`dataops: ${d.stack}: dropped ${dropped}; its state held nothing else, so no engine run was needed`);
        // As `pulumi stack rm`: the checkpoint first, so that from here on the stack is gone.
        if (d.keepHistory) await d.store.write(`${checkpointKey(d.stack)}.bak`, text!);
        await d.store.remove([checkpointKey(d.stack), tagsKey(d.stack)]);
        removed = true;
        await purgeStack(d.store, d.stack, d.keepHistory, d.leaseSeconds);
        rmSync(join(d.root, `Pulumi.${d.stack}.yaml`), { force: true });
        return true;
    } finally {
        // After a drop that failed the stack stays, locked by nobody: the next destroy goes on.
        await d.store.remove([mine]).catch((e: unknown) => {
            if (removed) d.log(`dataops: ${d.stack}: its lock ${mine} could not be removed (${String(e)}); the next run of this branch releases it`);
            else throw e;
        });
    }
}
