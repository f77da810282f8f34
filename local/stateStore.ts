// The state backend's bucket, read and written as the engine's DIY backend does (gocloud.dev
// blob): keys are slash paths under the backend URL's root (`.pulumi/stacks/…`, `.pulumi/locks/…`).
// dataops needs four operations on it: list a prefix, read, write and delete objects; that is
// all a backend must offer for lock recovery (lifecycle/locks.ts), the one-pass listing of
// every stack's tags (lifecycle/bucketList.ts) and the removal of what a destroyed stack kept.
// file:// and s3:// are implemented; azblob:// and gs:// would be the same four calls on
// their SDKs, and until then those backends keep the engine's own paths (stateStore returns
// undefined and every caller falls back).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { s3Store } from "./s3Store";

export interface StoredObject {
    readonly key: string;
    readonly size: number;
    readonly modified: Date;
}

export interface StateStore {
    /** The backend, for messages (no credentials). */
    readonly where: string;
    /** Every object whose key starts with `prefix`, sorted by key. */
    list(prefix: string): Promise<StoredObject[]>;
    /** An object's text, or undefined when there is none. */
    read(key: string): Promise<string | undefined>;
    /** Write an object whole; `signal` abandons the request (a write it aborts may or may not have landed). */
    write(key: string, body: string, options?: { readonly signal?: AbortSignal }): Promise<void>;
    /** Delete these objects; one already gone is not an error. */
    remove(keys: readonly string[]): Promise<void>;
}

/** The store behind a backend URL, or undefined for a backend dataops does not read itself. */
export function stateStore(backendUrl: string, env: Readonly<Record<string, string | undefined>> = process.env): StateStore | undefined {
    if (backendUrl.startsWith("file://")) return fileStore(backendUrl.slice("file://".length).split("?")[0]);
    if (backendUrl.startsWith("s3://")) return s3Store(backendUrl, env);
    return undefined;
}

/**
 * A file backend: gocloud's fileblob keeps each object as a file, with its metadata in a
 * `<file>.attrs` sidecar that is not an object of its own (hidden from lists, removed with it).
 */
export function fileStore(dir: string): StateStore {
    const path = (key: string) => join(dir, ...key.split("/"));
    return {
        where: `file://${dir}`,
        async list(prefix) {
            const out: StoredObject[] = [];
            // Walk only the folder the prefix names, not the whole backend.
            const base = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : "";
            const walk = (d: string) => {
                let entries;
                try {
                    entries = readdirSync(d, { withFileTypes: true });
                } catch {
                    return;
                }
                for (const e of entries) {
                    const p = join(d, e.name);
                    if (e.isDirectory()) walk(p);
                    else if (e.isFile() && !e.name.endsWith(".attrs")) {
                        const key = relative(dir, p).split(sep).join("/");
                        if (!key.startsWith(prefix)) continue;
                        try {
                            const s = statSync(p);
                            out.push({ key, size: s.size, modified: s.mtime });
                        } catch {
                            // removed meanwhile
                        }
                    }
                }
            };
            walk(base ? path(base) : dir);
            return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        },
        async read(key) {
            try {
                return readFileSync(path(key), "utf8");
            } catch (e) {
                if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
                throw e;
            }
        },
        async write(key, body) {
            const p = path(key);
            mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
            // Whole or not at all, as fileblob writes: a reader never sees half an object.
            const tmp = `${p}.tmp-${process.pid}`;
            writeFileSync(tmp, body, { mode: 0o600 });
            renameSync(tmp, p);
        },
        async remove(keys) {
            for (const key of keys)
                for (const p of [path(key), `${path(key)}.attrs`]) {
                    try {
                        unlinkSync(p);
                    } catch (e) {
                        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
                    }
                }
            // Folders the removal emptied go too, up to the backend's root.
            for (const key of keys) {
                let d = dirname(path(key));
                while (d.startsWith(dir + sep) && existsSync(d) && readdirSync(d).length === 0) {
                    try {
                        rmdirSync(d);
                    } catch {
                        break; // written into meanwhile
                    }
                    d = dirname(d);
                }
            }
        },
    };
}
