// Every stack's tags in one pass over the backend's bucket, without the engine: `dataops ls`
// and `prune` through the engine cost one process per stack (and on S3 each of those lists
// and reads the bucket again). One listing of `.pulumi/stacks/<project>/`, then the small
// `<stack>.pulumi-tags` objects (and, for `ls`, the checkpoints, for the last update and the
// resource count) read a few at a time. Read only; anything unexpected returns undefined and
// the caller asks the engine instead, which names what it cannot read.
import type { StateStore, StoredObject } from "../local/stateStore";
import { checkpointKey, PROJECT, tagsKey } from "./locks";
import type { StackInfo } from "./policy";

const CHECKPOINT = /^([A-Za-z0-9_.-]+)\.json$/;

/** Parallel reads at a time: enough to hide a round trip, few enough for any bucket's rate limits. */
const READERS = 16;

/**
 * The project's stack objects, or undefined when the backend also holds stacks in the legacy
 * layout (`.pulumi/stacks/<stack>.json`, from before project-scoped stacks), which the engine
 * still lists: those are left to it.
 */
async function projectObjects(store: StateStore): Promise<StoredObject[] | undefined> {
    const all = await store.list(".pulumi/stacks/");
    if (all.some((x) => !x.key.slice(".pulumi/stacks/".length).includes("/"))) return undefined;
    return all.filter((x) => x.key.startsWith(`.pulumi/stacks/${PROJECT}/`));
}

/** Whether the stack exists, read from the bucket; undefined when only the engine can say (legacy layout, compressed state). */
export async function stackExists(store: StateStore, name: string): Promise<boolean | undefined> {
    const objects = await projectObjects(store);
    if (!objects) return undefined;
    const dir = checkpointKey(name);
    if (objects.some((x) => x.key === `${dir}.gz` || x.key === `${dir}.zst`)) return undefined;
    return objects.some((x) => x.key === dir);
}

export async function listStore(store: StateStore, o: { details: boolean }): Promise<StackInfo[] | undefined> {
    const dir = `.pulumi/stacks/${PROJECT}/`;
    const objects = await projectObjects(store);
    if (!objects) return undefined;
    const keys = new Set(objects.map((x) => x.key));
    const names: string[] = [];
    for (const x of objects) {
        const rest = x.key.slice(dir.length);
        if (rest.includes("/")) continue;
        // A compressed checkpoint (PULUMI_DIY_BACKEND_GZIP) is left to the engine.
        if (/\.json\.(gz|zst)$/.test(rest)) return undefined;
        const m = CHECKPOINT.exec(rest);
        if (m) names.push(m[1]);
    }
    const out: Array<StackInfo | undefined> = new Array(names.length);
    let failed = false;
    let next = 0;
    const worker = async () => {
        for (let i = next++; i < names.length && !failed; i = next++) {
            const info = await readStack(store, dir, names[i], keys.has(`${dir}${names[i]}.pulumi-tags`), o.details);
            if (!info) failed = true;
            out[i] = info;
        }
    };
    await Promise.all(Array.from({ length: Math.min(READERS, names.length) }, worker));
    return failed ? undefined : (out as StackInfo[]);
}

async function readStack(store: StateStore, dir: string, name: string, hasTags: boolean, details: boolean): Promise<StackInfo | undefined> {
    let tags: Record<string, string> = {};
    if (hasTags) {
        const t = parse<{ version?: number; tags?: Record<string, string> }>(await store.read(`${dir}${name}.pulumi-tags`));
        // Removed between the listing and the read: the stack was just removed or retagged; the engine decides.
        if (!t || t.version !== 1 || typeof t.tags !== "object" || t.tags === null) return undefined;
        tags = t.tags;
    }
    if (!details) return { name, tags };
    const c = parse<{ version?: number; checkpoint?: { latest?: { manifest?: { time?: string }; resources?: unknown[] } } }>(await store.read(`${dir}${name}.json`));
    if (!c || typeof c.version !== "number" || !c.checkpoint) return undefined;
    const latest = c.checkpoint.latest;
    return {
        name,
        tags,
        ...(latest?.manifest?.time ? { lastUpdate: new Date(latest.manifest.time).toISOString() } : {}),
        ...(latest ? { resourceCount: (latest.resources ?? []).length } : {}),
    };
}

function parse<T>(text: string | undefined): T | undefined {
    if (text === undefined) return undefined;
    try {
        return JSON.parse(text) as T;
    } catch {
        return undefined;
    }
}

/**
 * The engine's tags object of a stack (`<stack>.pulumi-tags`: `{"version":1,"tags":{…}}`,
 * engine 3.248's DIY backend). Each `pulumi stack tag set` is an engine process (about 0.3 s and
 * 60 MiB) that reads every tag and writes them back; dataops reads and writes the object itself,
 * all its tags in one write. Anything unexpected (another layout, another version of the
 * object, a stack that is not there) returns undefined, and the caller asks the engine, which
 * reads its own format or says what is wrong with it.
 */
export async function readStackTags(store: StateStore, name: string): Promise<Record<string, string> | undefined> {
    if ((await stackExists(store, name)) !== true) return undefined;
    const text = await store.read(tagsKey(name));
    if (text === undefined) return {}; // a stack never tagged: the engine has no object for it either
    const t = parse<{ version?: number; tags?: Record<string, string> }>(text);
    if (!t || t.version !== 1 || typeof t.tags !== "object" || t.tags === null) return undefined;
    return t.tags;
}

/**
 * Set these tags (others kept) in one write. False when only the engine can (see readStackTags).
 * Two writers of one stack must take turns (local/checkoutLock.ts; CI's resource_group): each
 * write is whole, but a read-then-write is not a transaction.
 */
export async function writeStackTags(store: StateStore, name: string, tags: Readonly<Record<string, string>>): Promise<boolean> {
    const now = await readStackTags(store, name);
    if (!now) return false;
    const merged = { ...now, ...tags };
    await store.write(tagsKey(name), JSON.stringify({ version: 1, tags: merged }));
    return true;
}
