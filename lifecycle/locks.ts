// Stack locks left by runs that died, recovered on every backend dataops reads (file, S3).
//
// The engine's DIY backend locks a stack by writing `.pulumi/locks/organization/<project>/<stack>/<uuid>.json`
// ({pid, username, hostname, timestamp}) and refuses to run while another such object exists.
// A CI job killed mid-update (a cancelled pipeline, a runner lost) leaves its object behind, and
// its pid and host name decide nothing: the runner is gone, or a new container reuses its name.
//
// The rule: a lease renewed by the holder. Every dataops run that can take a stack's lock first
// writes a lease `.dataops/leases/<project>/<stack>/<run id>.json` ({host, pid, started, phase,
// beat, period, beatAt}) and rewrites it every period/6 seconds (beat + 1, beatAt = the time of
// that renewal on the run's own clock, period = its DATAOPS_LOCK_LEASE_SECONDS) until it ends.
// No renewal waits for another: S3 requests time out within half a beat, and one still in flight
// at the next beat is aborted and the newest beat written. `phase` is "waiting" while the run only
// polls for a lock to go away (no engine of its runs then, so it holds no lock) and "running"
// otherwise.
//
// A lease explains a lock (its run can be the lock's holder) when
//   a. it has the lock's host name,
//   b. it was started before the lock was taken (the engine runs only after its run wrote the
//      lease; 2 s of slack), and
//   c. its run was alive when the lock was taken: its last renewal (beatAt) is no older than
//      1.5 beats (1.5 × its period/6) before the lock's timestamp. beatAt and the lock's
//      timestamp come from one host's clock (the engine is a child of the run), so no clock
//      shared between machines is needed. A live run keeps renewing, so its beatAt only moves
//      forward and it comes to explain the lock even if a renewal was late when it took it;
//      a dead run's beatAt is frozen, and one whose last beat came long before the lock cannot
//      have taken it.
// A lease that does not state its period (an older dataops) explains nothing.
// Why (c) is required: a host name does not identify a run (GitLab's docker executor names every
// container of a runner slot alike, runner-…-concurrent-0), so without it the lease a run killed
// while it waited leaves behind would explain every later lock from that host name, a hand-run
// `pulumi up`'s included, and its silence would release that live lock.
//
// A waiter judges each lease on P = max(its own period, the period the lease states), and
// releases a lock when, watched on its own monotonic clock for the longest P among the leases
// that explain it:
//   1. the same lock object stayed there, and
//   2. some lease explains it, and
//   3. none of those leases was seen running for its P: each either never changed (its run is
//      dead) or was only seen waiting.
// Why it is safe: a live run rewrites its lease five or six times per period, so condition 3
// cannot hold for it; it renews through the same bucket the engine writes its checkpoints to, so
// a run that cannot renew for a whole period cannot save its update either. Only the lock
// object watched is deleted (by its key, never `pulumi cancel`, which deletes every lock of the
// stack, a live newcomer's included), with the explaining leases that have not changed for their P.
// A lock that no lease explains (someone ran `pulumi up` by hand, or an older dataops holds it)
// is never released: the waiter names its holder and the `pulumi cancel` to run, and waits.
//
// Limits: the host name is all that links a lock to a lease, so a lock taken by some other
// process on a host name a live dataops run also has (started before it, alive then) is released
// if that run only waits for a period. A holder that dies just after taking its lock while its
// renewals were failing (beatAt already older than 1.5 beats) explains nothing: its lock waits for
// `pulumi cancel`. A runner paused longer than a period (a frozen VM) looks dead: raise
// DATAOPS_LOCK_LEASE_SECONDS where that happens. An aborted renewal can still land after a newer
// one; that is a change too, so the lease still looks alive.
// Tidying: a waiter removes leases it has watched stay unchanged for three of their periods;
// the purge after `stack rm` keeps leases renewed within their period (lifecycle/purge.ts).
// On a local file backend, a lock of this host whose process is gone is also released at once
// (samePidSpace).
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import type { StateStore } from "../local/stateStore";
import { processGone } from "../local/processes";

export const PROJECT = "dataops";
export const DEFAULT_LEASE_SECONDS = 60;

export class LeaseSettingError extends Error {}

export function lockDir(stack: string): string {
    return `.pulumi/locks/organization/${PROJECT}/${stack}/`;
}

/** A stack's checkpoint and its tags object, in the engine's project-scoped layout. */
export function checkpointKey(stack: string): string {
    return `.pulumi/stacks/${PROJECT}/${stack}.json`;
}

export function tagsKey(stack: string): string {
    return `.pulumi/stacks/${PROJECT}/${stack}.pulumi-tags`;
}

export function leaseDir(stack: string): string {
    return `.dataops/leases/${PROJECT}/${stack}/`;
}

/** DATAOPS_LOCK_LEASE_SECONDS: how long a silent lease makes its lock stale. */
export function leaseSeconds(env: Readonly<Record<string, string | undefined>>): number {
    const given = env.DATAOPS_LOCK_LEASE_SECONDS;
    if (given === undefined || given === "") return DEFAULT_LEASE_SECONDS;
    const n = Number(given);
    if (!Number.isInteger(n) || n < 6 || n > 3600) throw new LeaseSettingError(`DATAOPS_LOCK_LEASE_SECONDS: a whole number of seconds from 6 to 3600, given "${given}"`);
    return n;
}

export interface LockContent {
    readonly pid?: number;
    readonly username?: string;
    readonly hostname?: string;
    readonly timestamp?: string;
}

export interface LeaseContent {
    readonly version: 1;
    readonly host: string;
    readonly pid: number;
    readonly started: string;
    readonly phase: "running" | "waiting";
    readonly beat: number;
    /** The holder's DATAOPS_LOCK_LEASE_SECONDS: it renews every period/6. Absent in leases of older dataops, which explain no lock. */
    readonly period?: number;
    /** When this renewal was written, on the holder's clock (the clock its engine stamps its lock with). */
    readonly beatAt?: string;
}

export function parseLock(text: string | undefined): LockContent | undefined {
    try {
        const v = JSON.parse(text ?? "") as LockContent;
        return typeof v === "object" && v !== null ? v : undefined;
    } catch {
        return undefined;
    }
}

export function parseLease(text: string | undefined): LeaseContent | undefined {
    try {
        const v = JSON.parse(text ?? "") as LeaseContent;
        return v?.version === 1 && typeof v.host === "string" && typeof v.beat === "number" && typeof v.started === "string" ? v : undefined;
    } catch {
        return undefined;
    }
}

/** Slack for comparing a lease's start with its lock's time: both come from one host's clock, written in this order. */
const SAME_HOST_SLACK_MS = 2000;

/** A lease's period in ms, or undefined for a lease that does not say it (older dataops). */
function leasePeriodMs(lease: LeaseContent): number | undefined {
    return typeof lease.period === "number" && Number.isFinite(lease.period) && lease.period > 0 ? lease.period * 1000 : undefined;
}

/**
 * Whether the lock can have been taken by the run that holds this lease: same host name, the
 * lease started before the lock, and the run was alive when the lock was taken — its last
 * renewal is no older than 1.5 beats (1.5 × period/6) before the lock's time. A live run keeps
 * renewing, so its beatAt only moves forward; a dead run's is frozen, and one whose last beat
 * was long before the lock cannot have taken it (a lease a killed run left behind, on a host
 * name a new container reuses). A lease that does not state its period explains nothing.
 */
export function explains(lease: LeaseContent, lock: LockContent): boolean {
    if (!lock.hostname || lease.host !== lock.hostname) return false;
    const period = leasePeriodMs(lease);
    if (period === undefined) return false;
    const started = Date.parse(lease.started);
    const beatAt = Date.parse(lease.beatAt ?? "");
    const taken = Date.parse(lock.timestamp ?? "");
    if (!Number.isFinite(started) || !Number.isFinite(beatAt) || !Number.isFinite(taken)) return false;
    return started <= taken + SAME_HOST_SLACK_MS && beatAt >= taken - (1.5 * period) / 6;
}

/** Leases silent this many of their periods are left by dead runs: a waiter removes them. */
export const LEASE_GC_PERIODS = 3;

/**
 * What a waiter has seen, poll after poll (pure: the time is given). `observe` takes the stack's
 * locks and the leases of other runs, and returns the locks that are stale under the rule above.
 * Each lease is judged on max(the waiter's period, the period the lease states).
 */
export class LockWatch {
    private readonly locksSince = new Map<string, number>();
    /** Per lease: its last beat, when that changed, and since when it has given no sign of a running holder. */
    private readonly leases = new Map<string, { beat: number; changedAt: number; quietSince: number; periodMs: number }>();

    constructor(private readonly periodMs: number) {}

    private periodOf(lease: LeaseContent): number {
        return Math.max(this.periodMs, leasePeriodMs(lease) ?? 0);
    }

    observe(now: number, locks: ReadonlyMap<string, LockContent | undefined>, leases: ReadonlyMap<string, LeaseContent | undefined>): string[] {
        for (const key of [...this.locksSince.keys()]) if (!locks.has(key)) this.locksSince.delete(key);
        for (const key of locks.keys()) if (!this.locksSince.has(key)) this.locksSince.set(key, now);
        for (const key of [...this.leases.keys()]) if (!leases.has(key)) this.leases.delete(key);
        for (const [key, lease] of leases) {
            if (!lease) continue;
            const seen = this.leases.get(key);
            const periodMs = this.periodOf(lease);
            if (!seen) this.leases.set(key, { beat: lease.beat, changedAt: now, quietSince: now, periodMs });
            else if (seen.beat !== lease.beat) this.leases.set(key, { beat: lease.beat, changedAt: now, quietSince: lease.phase === "running" ? now : seen.quietSince, periodMs });
        }
        const stale: string[] = [];
        for (const [key, lock] of locks) {
            if (!lock) continue;
            const owners = [...leases].filter(([, l]) => l && explains(l, lock)).map(([k]) => this.leases.get(k)!);
            if (owners.length === 0) continue;
            // The lock is watched, and every owner quiet, for the longest period among them.
            const period = Math.max(...owners.map((o) => o.periodMs));
            if (now - this.locksSince.get(key)! < period) continue;
            if (owners.every((o) => now - o.quietSince >= o.periodMs)) stale.push(key);
        }
        return stale;
    }

    /** The leases that explain a lock and have not changed for a whole period (their runs are dead): removed with it. */
    deadOwners(now: number, lock: LockContent, leases: ReadonlyMap<string, LeaseContent | undefined>): string[] {
        return [...leases]
            .filter(([k, l]) => {
                const seen = this.leases.get(k);
                return l && seen && explains(l, lock) && now - seen.changedAt >= seen.periodMs;
            })
            .map(([k]) => k);
    }

    /**
     * Leases this waiter has watched stay unchanged for LEASE_GC_PERIODS of their periods: left by
     * runs that died (a live run renews every period/6). A lease that changed is never among them.
     */
    abandoned(now: number): string[] {
        return [...this.leases].filter(([, s]) => now - s.changedAt >= LEASE_GC_PERIODS * s.periodMs).map(([k]) => k);
    }
}

export interface Lease {
    readonly key: string;
    setPhase(phase: LeaseContent["phase"]): Promise<void>;
    release(): Promise<void>;
}

/**
 * Take a lease on a stack for this run: written before any engine call, renewed every
 * period/6 (with the period and the renewal's time), deleted at the end. Renewals are never
 * queued: a write still in flight at the next beat is aborted and the newest beat written
 * instead, and each write is abandoned after one beat, so one hung request cannot silence the
 * lease while the engine goes on saving. A renewal that fails is said once (a lease silent for a
 * whole period lets a waiter take the stack) and tried again at the next beat.
 */
export async function holdLease(store: StateStore, stack: string, periodSeconds: number, log: (line: string) => void, now: () => Date = () => new Date()): Promise<Lease> {
    const key = `${leaseDir(stack)}${randomUUID()}.json`;
    const beatMs = Math.max(1000, Math.floor((periodSeconds * 1000) / 6));
    const started = now().toISOString();
    let content: LeaseContent = { version: 1, host: hostname(), pid: process.pid, started, phase: "running", beat: 0, period: periodSeconds, beatAt: started };
    let inflight: { done: Promise<void>; abort: AbortController } | undefined;
    let complained = false;
    let released = false;
    const write = (next: Partial<LeaseContent>): Promise<void> => {
        content = { ...content, ...next, beat: content.beat + 1, beatAt: now().toISOString() };
        if (released) return Promise.resolve();
        inflight?.abort.abort();
        const abort = new AbortController();
        const giveUp = setTimeout(() => abort.abort(), beatMs);
        giveUp.unref();
        const done: Promise<void> = store
            .write(key, JSON.stringify(content), { signal: abort.signal })
            .catch((e: unknown) => {
                if (!complained) log(`dataops: could not renew this run's lease on ${stack} (${abort.signal.aborted ? "no answer within a beat" : (e as Error).message}); retrying`);
                complained = true;
            })
            .finally(() => {
                clearTimeout(giveUp);
                if (inflight?.done === done) inflight = undefined;
            });
        inflight = { done, abort };
        return done;
    };
    await store.write(key, JSON.stringify(content));
    const timer = setInterval(() => void write({}), beatMs);
    timer.unref();
    return {
        key,
        setPhase: (phase) => write({ phase }),
        async release() {
            clearInterval(timer);
            released = true;
            // Let a write in flight land (or give up) before the delete, so that it cannot recreate the lease.
            await inflight?.done;
            await store.remove([key]).catch(() => undefined); // a leftover lease is silent: it explains no later lock
        },
    };
}

export { processGone };

export interface WaitOptions {
    readonly store: StateStore;
    readonly stack: string;
    readonly ownLease?: string;
    readonly periodSeconds: number;
    readonly deadline: number;
    readonly timeoutSeconds: number;
    readonly log: (line: string) => void;
    readonly signal?: AbortSignal;
    readonly pollMs?: number;
    /**
     * Also release at once a lock of this host whose process is gone (pid and host decide only
     * where every process that can lock shares this machine's processes: a local file backend).
     */
    readonly samePidSpace?: boolean;
}

async function readAll<T>(store: StateStore, prefix: string, parse: (t: string | undefined) => T | undefined, skip?: string): Promise<Map<string, T | undefined>> {
    const objects = (await store.list(prefix)).filter((o) => o.key !== skip && o.key.endsWith(".json") && !o.key.slice(prefix.length).includes("/"));
    const out = new Map<string, T | undefined>();
    await Promise.all(objects.map(async (o) => out.set(o.key, parse(await store.read(o.key)))));
    return out;
}

function describe(lock: LockContent | undefined): string {
    return lock ? `${lock.username ?? "?"}@${lock.hostname ?? "?"} (pid ${lock.pid ?? "?"}) since ${lock.timestamp ?? "?"}` : "a lock that cannot be read";
}

/**
 * Wait, polling the bucket (no engine call), until the stack has no lock or its locks are
 * stale; stale ones are deleted, with the silent leases that explain them. Returns how
 * many locks were released; throws at the deadline.
 */
export async function waitForLocks(o: WaitOptions): Promise<number> {
    const watch = new LockWatch(o.periodSeconds * 1000);
    const poll = o.pollMs ?? 2000;
    const told = new Set<string>();
    for (;;) {
        const locks = await readAll(o.store, lockDir(o.stack), parseLock);
        if (locks.size === 0) return 0;
        if (o.samePidSpace) {
            const gone = [...locks].filter(([, l]) => l?.hostname === hostname() && typeof l.pid === "number" && processGone(l.pid)).map(([k]) => k);
            for (const k of gone) o.log(`dataops: ${o.stack} was locked by process ${locks.get(k)!.pid}, which is gone; releasing its lock`);
            if (gone.length > 0) {
                await o.store.remove(gone);
                return gone.length;
            }
        }
        const leases = await readAll(o.store, leaseDir(o.stack), parseLease, o.ownLease);
        const now = performance.now();
        const stale = watch.observe(now, locks, leases);
        // Leases of dead runs left behind (a run killed while it waited): tidied, never one that changed.
        const abandoned = watch.abandoned(now);
        if (abandoned.length > 0) await o.store.remove(abandoned).catch(() => undefined);
        if (stale.length > 0) {
            const dead = new Set(stale.flatMap((k) => watch.deadOwners(now, locks.get(k)!, leases)));
            for (const k of stale)
                o.log(`dataops: ${o.stack} was locked by ${describe(locks.get(k))}, a dataops run whose lease has been silent for ${o.periodSeconds}s: it is gone; releasing its lock`);
            await o.store.remove([...stale, ...dead]);
            return stale.length;
        }
        for (const [k, lock] of locks) {
            if (told.has(k)) continue;
            told.add(k);
            const ours = [...leases.values()].some((l) => l && lock && explains(l, lock));
            o.log(
                ours
                    ? `dataops: ${o.stack} is locked by ${describe(lock)}, another dataops run; waiting up to ${o.timeoutSeconds}s (its lock is released if that run's lease stays silent for ${o.periodSeconds}s)`
                    : `dataops: ${o.stack} is locked by ${describe(lock)}, not by a dataops run; waiting up to ${o.timeoutSeconds}s. If that process is gone, release it with: pulumi cancel --stack ${o.stack} --yes`,
            );
        }
        if (Date.now() >= o.deadline)
            throw new Error(
                `${o.stack} is locked by another update (${[...locks.values()].map(describe).join("; ")}) and did not become free within ${o.timeoutSeconds}s; try again later or raise --lock-timeout`,
            );
        if (o.signal?.aborted) throw new Error(`waiting for ${o.stack}'s lock: cancelled`);
        await new Promise((r) => setTimeout(r, Math.min(poll, Math.max(0, o.deadline - Date.now()) + 10)));
    }
}
