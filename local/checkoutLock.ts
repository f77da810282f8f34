// One dataops run per environment per checkout at a time.
//
// The engine's own lock covers an update, not what dataops does around it: the config it writes
// to `Pulumi.<stack>.yaml` before the update (the engine rewrites that file in place, so another
// run's engine can read it empty and find no config at all) and the stack's tags (each
// `pulumi stack tag set` reads every tag and writes them back, so two runs lose each other's).
// Two runs for one branch in one checkout (two terminals, a test firing two ups) therefore take
// turns, the second saying whom it waits for. CI runs of one branch on several machines are kept
// apart by the templates' resource_group and concurrency settings, and their updates by the
// engine's lock.
//
// The lock is a directory (mkdir is atomic on every file system) holding its owner: pid, process
// start and host. A run killed with SIGKILL leaves it behind; the next run finds its process gone
// and breaks it, under a second directory so that two runs never both break it and one of them
// take the lock the other has just made.
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { processGone } from "./processes";

export interface CheckoutLock {
    release(): void;
}

interface Owner {
    readonly pid: number;
    readonly start?: string;
    readonly host: string;
    readonly what: string;
    readonly since: string;
}

export interface CheckoutLockOptions {
    /** What this run does, for the message of a run that waits ("dataops up"). */
    readonly what: string;
    readonly timeoutSeconds: number;
    readonly log: (line: string) => void;
    readonly signal?: AbortSignal;
    /** @default 200 */
    readonly pollMs?: number;
}

export class CheckoutLockTimeout extends Error {}

/** A lock of a run half-made (its owner file not yet written), or of a breaker, is trusted this long. */
const MAKING_MS = 10_000;

/** The process's start time (clock ticks since boot), so that a reused pid is not taken for the owner. Linux only. */
function processStart(pid: number): string | undefined {
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
        return undefined;
    }
}

function readOwner(dir: string): Owner | undefined {
    try {
        const o = JSON.parse(readFileSync(join(dir, "owner.json"), "utf8")) as Owner;
        return typeof o.pid === "number" && typeof o.host === "string" ? o : undefined;
    } catch {
        return undefined;
    }
}

function ageMs(path: string): number | undefined {
    try {
        return Date.now() - statSync(path).mtimeMs;
    } catch {
        return undefined;
    }
}

/** Whether the owner can no longer hold anything: its process (on this host) is gone, or the pid is another process now. */
export function ownerGone(o: Owner): boolean {
    if (o.host !== hostname()) return false;
    if (processGone(o.pid)) return true;
    const start = processStart(o.pid);
    return o.start !== undefined && start !== undefined && start !== o.start;
}

/** mkdir, or false when it exists. */
function make(dir: string): boolean {
    try {
        mkdirSync(dir, { mode: 0o700 });
        return true;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw e;
    }
}

/** Break a lock whose owner is gone; only the run holding the breaker does, and only if the owner is still the gone one. */
function breakStale(dir: string, seen: Owner | undefined): void {
    const breaker = `${dir}.break`;
    if (!make(breaker)) {
        // A breaker killed halfway leaves its directory: old enough, it is removed and the next poll tries.
        if ((ageMs(breaker) ?? 0) > MAKING_MS) rmSync(breaker, { recursive: true, force: true });
        return;
    }
    try {
        const now = readOwner(dir);
        const same = seen ? now !== undefined && now.pid === seen.pid && now.since === seen.since : now === undefined;
        if (same) rmSync(dir, { recursive: true, force: true });
    } finally {
        rmSync(breaker, { recursive: true, force: true });
    }
}

/**
 * Take the lock at `dir` (its parent is made if missing), waiting while another live run holds
 * it, saying once whom for. Refused after `timeoutSeconds`; an aborted `signal` stops the wait.
 */
export async function acquireCheckoutLock(dir: string, o: CheckoutLockOptions): Promise<CheckoutLock> {
    mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
    const deadline = Date.now() + o.timeoutSeconds * 1000;
    let said = false;
    for (;;) {
        if (make(dir)) {
            const me: Owner = { pid: process.pid, start: processStart(process.pid), host: hostname(), what: o.what, since: new Date().toISOString() };
            writeFileSync(join(dir, "owner.json"), JSON.stringify(me), { mode: 0o600 });
            return {
                release() {
                    const now = readOwner(dir);
                    if (now && now.pid === me.pid && now.since === me.since) rmSync(dir, { recursive: true, force: true });
                },
            };
        }
        const owner = readOwner(dir);
        if (owner ? ownerGone(owner) : (ageMs(dir) ?? 0) > MAKING_MS) {
            breakStale(dir, owner);
            continue;
        }
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error("aborted");
        if (Date.now() > deadline)
            throw new CheckoutLockTimeout(
                `another run holds ${dir}${owner ? ` (${owner.what}, process ${owner.pid} on ${owner.host}, since ${owner.since})` : ""} and did not finish within ${o.timeoutSeconds} s; if no such run is going on, remove that folder`,
            );
        if (!said && owner) {
            o.log(`dataops: waiting for another run in this checkout (${owner.what}, process ${owner.pid}, since ${owner.since}) to finish with this environment`);
            said = true;
        }
        await new Promise((r) => setTimeout(r, o.pollMs ?? 200));
    }
}

export async function withCheckoutLock<T>(dir: string, o: CheckoutLockOptions, fn: () => Promise<T>): Promise<T> {
    const lock = await acquireCheckoutLock(dir, o);
    try {
        return await fn();
    } finally {
        lock.release();
    }
}
