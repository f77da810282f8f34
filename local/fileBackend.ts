// Listing environments from a file backend without the engine. `dataops ls` and `prune` read
// every stack's tags; through the engine that is one process start per stack (300 stacks:
// a minute and 300 processes at once). A file backend keeps each stack as two small files:
// its checkpoint (`<stack>.json`) and its tags (`<stack>.pulumi-tags`), written by the
// pinned engine. Read only, never written here; anything unexpected returns undefined and
// the caller asks the engine instead.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface FileStackInfo {
    readonly name: string;
    readonly tags: Record<string, string>;
    readonly lastUpdate?: string;
    readonly resourceCount?: number;
}

const PROJECT = "dataops";
const CHECKPOINT = /^([A-Za-z0-9_.-]+)\.json$/;

/** Every stack of the project in a file backend, or undefined when the backend is not one or its layout is not the expected one. */
export function listFileBackend(backendUrl: string): FileStackInfo[] | undefined {
    if (!backendUrl.startsWith("file://")) return undefined;
    const dir = join(backendUrl.slice("file://".length), ".pulumi", "stacks", PROJECT);
    let files: string[];
    try {
        files = readdirSync(dir);
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "ENOENT" ? [] : undefined;
    }
    const out: FileStackInfo[] = [];
    for (const f of files.sort()) {
        const m = CHECKPOINT.exec(f);
        if (!m) continue;
        const name = m[1];
        try {
            const c = JSON.parse(readFileSync(join(dir, f), "utf8")) as { version?: number; checkpoint?: { latest?: { manifest?: { time?: string }; resources?: unknown[] } } };
            if (typeof c.version !== "number" || !c.checkpoint) return undefined;
            const latest = c.checkpoint.latest;
            let tags: Record<string, string> = {};
            try {
                const t = JSON.parse(readFileSync(join(dir, `${name}.pulumi-tags`), "utf8")) as { version?: number; tags?: Record<string, string> };
                if (t.version !== 1 || typeof t.tags !== "object" || t.tags === null) return undefined;
                tags = t.tags;
            } catch (e) {
                if ((e as NodeJS.ErrnoException).code !== "ENOENT") return undefined;
            }
            out.push({
                name,
                tags,
                ...(latest?.manifest?.time ? { lastUpdate: new Date(latest.manifest.time).toISOString() } : {}),
                ...(latest ? { resourceCount: (latest.resources ?? []).length } : {}),
            });
        } catch {
            // A checkpoint cut short by a killed write: the engine's path repairs it and says so.
            return undefined;
        }
    }
    return out;
}
