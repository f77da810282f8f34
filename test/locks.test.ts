// The lease rule that releases a dead run's stack lock (lifecycle/locks.ts), poll by poll on a
// given clock, and the lease a run holds, on a real file store.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, utimesSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { withLockWait } from "../lifecycle/environments";
import { purgeStack } from "../lifecycle/purge";
import { explains, holdLease, processGone, leaseDir, leaseSeconds, type LeaseContent, lockDir, type LockContent, LockWatch, parseLease, waitForLocks } from "../lifecycle/locks";
import { s3Store } from "../local/s3Store";
import { fileStore, type StateStore } from "../local/stateStore";

const PERIOD = 60_000;
const lock: LockContent = { pid: 4242, username: "runner", hostname: "runner-7-concurrent-0", timestamp: "2026-12-01T10:00:05.000Z" };
// A lease alive when the lock was taken: its last renewal (beatAt) at the lock's time.
const lease = (beat: number, phase: LeaseContent["phase"] = "running", host = "runner-7-concurrent-0", started = "2026-12-01T10:00:00.000Z", beatAt = "2026-12-01T10:00:05.000Z", period: number | null = 60): LeaseContent => ({
    version: 1,
    host,
    pid: 17,
    started,
    phase,
    beat,
    beatAt,
    ...(period === null ? {} : { period }),
});
const locks = (m: Record<string, LockContent>) => new Map(Object.entries(m));
const leases = (m: Record<string, LeaseContent>) => new Map(Object.entries(m));

describe("which lease explains a lock", () => {
    it("GIVEN a lease of the lock's host started before it THEN it explains it; another host, or a lease started later, does not", () => {
        expect(explains(lease(1), lock)).toBe(true);
        expect(explains(lease(1, "running", "other-host"), lock)).toBe(false);
        expect(explains(lease(1, "running", lock.hostname, "2026-12-01T10:00:09.000Z"), lock)).toBe(false);
        expect(explains(lease(1), { ...lock, hostname: undefined })).toBe(false);
    });
});

describe("the lease rule", () => {
    it("GIVEN a lock whose run's lease never changes WHEN watched for a whole period THEN it is stale, and not a moment before", () => {
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        const r = leases({ "dead.json": lease(5) });
        expect(w.observe(0, l, r)).toEqual([]);
        expect(w.observe(PERIOD - 1, l, r)).toEqual([]);
        expect(w.observe(PERIOD, l, r)).toEqual(["k.json"]);
        expect(w.deadOwners(PERIOD, lock, r)).toEqual(["dead.json"]);
    });

    it("GIVEN the holder's lease beating while running WHEN watched for many periods THEN its lock is never stale", () => {
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        for (let t = 0, beat = 1; t <= 10 * PERIOD; t += PERIOD / 6, beat++) expect(w.observe(t, l, leases({ "live.json": lease(beat) }))).toEqual([]);
    });

    it("GIVEN a dead run's lock and, on the same host name, a live run that only waits WHEN watched for a period THEN the lock is stale", () => {
        // A new CI container with the old one's host name, waiting for the stack: it holds no lock.
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        let stale: string[] = [];
        for (let t = 0, beat = 1; t <= PERIOD; t += 10_000, beat++) stale = w.observe(t, l, leases({ "dead.json": lease(3), "waiter.json": lease(beat, "waiting") }));
        expect(stale).toEqual(["k.json"]);
        // Only the silent lease goes with the lock; the waiter's, which beats, stays.
        expect(w.deadOwners(PERIOD, lock, leases({ "dead.json": lease(3), "waiter.json": lease(7, "waiting") }))).toEqual(["dead.json"]);
    });

    it("GIVEN a lock no lease explains (someone's own pulumi up) WHEN watched for a long time THEN it is never released", () => {
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        for (let t = 0; t <= 5 * PERIOD; t += PERIOD) expect(w.observe(t, l, leases({ "other-host.json": lease(1, "running", "elsewhere") }))).toEqual([]);
    });

    it("GIVEN a lock that is replaced by a new one WHEN watched THEN the new one's period starts when it is first seen", () => {
        const w = new LockWatch(PERIOD);
        const r = leases({ "dead.json": lease(5) });
        expect(w.observe(0, locks({ "a.json": lock }), r)).toEqual([]);
        expect(w.observe(PERIOD - 1000, locks({ "b.json": lock }), r)).toEqual([]);
        expect(w.observe(PERIOD + 1000, locks({ "b.json": lock }), r)).toEqual([]);
        expect(w.observe(2 * PERIOD - 1000, locks({ "b.json": lock }), r)).toEqual(["b.json"]);
    });

    it("GIVEN a lease that starts running again during the wait THEN the period starts again", () => {
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        expect(w.observe(0, l, leases({ "x.json": lease(1, "waiting") }))).toEqual([]);
        expect(w.observe(PERIOD / 2, l, leases({ "x.json": lease(2, "running") }))).toEqual([]);
        expect(w.observe(PERIOD + 1, l, leases({ "x.json": lease(2, "running") }))).toEqual([]);
        expect(w.observe(PERIOD / 2 + PERIOD, l, leases({ "x.json": lease(2, "running") }))).toEqual(["k.json"]);
    });
});

describe("DATAOPS_LOCK_LEASE_SECONDS", () => {
    it("GIVEN nothing, a number, or nonsense THEN 60, that number, or an error naming the key, what is allowed and what was given", () => {
        expect(leaseSeconds({})).toBe(60);
        expect(leaseSeconds({ DATAOPS_LOCK_LEASE_SECONDS: "12" })).toBe(12);
        expect(() => leaseSeconds({ DATAOPS_LOCK_LEASE_SECONDS: "5" })).toThrow('DATAOPS_LOCK_LEASE_SECONDS: a whole number of seconds from 6 to 3600, given "5"');
        expect(() => leaseSeconds({ DATAOPS_LOCK_LEASE_SECONDS: "1m" })).toThrow('given "1m"');
    });
});

describe("a run's lease and a waiter, on a real store", () => {
    it("GIVEN a lease held WHEN it beats THEN its object is rewritten with a higher beat; released, it is gone", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-lease-")));
        const held = await holdLease(store, "br-x", 6, () => undefined);
        expect(held.key.startsWith(leaseDir("br-x"))).toBe(true);
        const first = parseLease(await store.read(held.key))!;
        expect(first).toMatchObject({ host: hostname(), pid: process.pid, phase: "running", beat: 0 });
        await held.setPhase("waiting");
        expect(parseLease(await store.read(held.key))).toMatchObject({ phase: "waiting", beat: 1 });
        await held.release();
        expect(await store.list(leaseDir("br-x"))).toEqual([]);
    });

    it("GIVEN a dead run's lock and its silent lease in the store WHEN a waiter waits THEN both are removed and it returns; a foreign lock times out naming its holder", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-wait-")));
        const taken = new Date(Date.now() - 1000).toISOString();
        await store.write(`${lockDir("br-x")}dead-engine.json`, JSON.stringify({ ...lock, timestamp: taken }));
        await store.write(`${leaseDir("br-x")}dead-run.json`, JSON.stringify(lease(9, "running", lock.hostname, new Date(Date.now() - 5000).toISOString(), taken, 1)));
        const lines: string[] = [];
        const released = await waitForLocks({ store, stack: "br-x", periodSeconds: 1, deadline: Date.now() + 20_000, timeoutSeconds: 20, log: (l) => lines.push(l), pollMs: 100 });
        expect(released).toBe(1);
        expect(await store.list(".pulumi/")).toEqual([]);
        expect(await store.list(".dataops/")).toEqual([]);
        expect(lines.at(-1)).toContain("was locked by runner@runner-7-concurrent-0 (pid 4242)");

        await store.write(`${lockDir("br-y")}by-hand.json`, JSON.stringify({ ...lock, hostname: "laptop", timestamp: taken }));
        const told: string[] = [];
        await expect(waitForLocks({ store, stack: "br-y", periodSeconds: 1, deadline: Date.now() + 1500, timeoutSeconds: 1, log: (l) => told.push(l), pollMs: 100 })).rejects.toThrow(
            /br-y is locked by another update \(runner@laptop \(pid 4242\) since .*\) and did not become free within 1s/,
        );
        expect(told[0]).toContain("not by a dataops run; waiting up to 1s. If that process is gone, release it with: pulumi cancel --stack br-y --yes");
        expect((await store.list(lockDir("br-y"))).map((o) => o.key)).toEqual([`${lockDir("br-y")}by-hand.json`]);
    });
});

describe("a process of this machine that is gone", () => {
    it("GIVEN this process, a finished one and a zombie nobody reaps THEN only this one is alive", async () => {
        expect(processGone(process.pid)).toBe(false);
        const done = spawnSync("true");
        expect(processGone(done.pid!)).toBe(true);
        // `sleep 0` ends at once; its parent then runs `sleep 5`, which never reaps it: a zombie, as a
        // SIGKILLed engine is until init reaps it.
        const parent = spawn("sh", ["-c", "sleep 0 & echo $!; exec sleep 5"], { stdio: ["ignore", "pipe", "ignore"] });
        const zombie = Number(await new Promise<string>((r) => parent.stdout!.once("data", (b: Buffer) => r(b.toString().trim()))));
        await new Promise((r) => setTimeout(r, 300));
        expect(processGone(zombie)).toBe(true);
        parent.kill();
    });

    it("GIVEN a file backend's lock of this host whose process is gone WHEN a waiter waits THEN it is released at once, without a lease period", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-pid-")));
        const dead = spawnSync("true").pid!;
        await store.write(`${lockDir("br-z")}engine.json`, JSON.stringify({ pid: dead, username: "me", hostname: hostname(), timestamp: new Date().toISOString() }));
        const lines: string[] = [];
        expect(await waitForLocks({ store, stack: "br-z", periodSeconds: 3600, deadline: Date.now() + 5000, timeoutSeconds: 5, log: (l) => lines.push(l), samePidSpace: true })).toBe(1);
        expect(lines).toEqual([`dataops: br-z was locked by process ${dead}, which is gone; releasing its lock`]);
        expect(await store.list(lockDir("br-z"))).toEqual([]);
    });
});

describe("a lease left by a run that died long before the lock was taken", () => {
    it("GIVEN a lease whose last renewal is more than 1.5 beats before the lock's time THEN it does not explain the lock; one renewed within 1.5 beats, or after, does", () => {
        // period 60 s: a beat every 10 s, so 15 s of tolerance before the lock's time (10:00:05).
        expect(explains(lease(3, "waiting", lock.hostname, "2026-12-01T09:00:00.000Z", "2026-12-01T09:10:00.000Z"), lock)).toBe(false);
        expect(explains(lease(3, "running", lock.hostname, "2026-12-01T09:59:00.000Z", "2026-12-01T09:59:49.000Z"), lock)).toBe(false);
        expect(explains(lease(3, "running", lock.hostname, "2026-12-01T09:59:00.000Z", "2026-12-01T09:59:51.000Z"), lock)).toBe(true);
        expect(explains(lease(9, "running", lock.hostname, "2026-12-01T09:59:00.000Z", "2026-12-01T10:30:00.000Z"), lock)).toBe(true);
    });

    it("GIVEN the lease of a run killed while it waited, on the host name a hand-run pulumi up later reuses WHEN a waiter watches that live lock for many periods THEN it is never released", () => {
        // GitLab's docker executor names every container of a runner slot alike (runner-…-concurrent-0).
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        const r = leases({ "killed-waiter.json": lease(3, "waiting", lock.hostname, "2026-12-01T09:00:00.000Z", "2026-12-01T09:10:00.000Z") });
        for (let t = 0; t <= 10 * PERIOD; t += PERIOD / 6) expect(w.observe(t, l, r)).toEqual([]);
    });

    it("GIVEN a lease silent for three of its periods and one still renewed WHEN a waiter waits THEN the silent one is removed and the renewed one stays", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-gc-")));
        const now = new Date().toISOString();
        await store.write(`${lockDir("br-g")}by-hand.json`, JSON.stringify({ ...lock, hostname: "laptop", timestamp: now }));
        const left = `${leaseDir("br-g")}left.json`;
        await store.write(left, JSON.stringify(lease(4, "waiting", lock.hostname, now, now, 1)));
        const live = await holdLease(store, "br-g", 1, () => undefined);
        try {
            await expect(waitForLocks({ store, stack: "br-g", periodSeconds: 1, deadline: Date.now() + 4500, timeoutSeconds: 4, log: () => undefined, pollMs: 100 })).rejects.toThrow(/did not become free/);
            const keys = (await store.list(leaseDir("br-g"))).map((o) => o.key);
            expect(keys).not.toContain(left);
            expect(keys).toContain(live.key);
            expect((await store.list(lockDir("br-g"))).length).toBe(1);
        } finally {
            await live.release();
        }
    });
});

describe("a holder and a waiter with different lease periods", () => {
    it("GIVEN a lease that states a longer period than the waiter's WHEN silent for the waiter's period only THEN its lock is not stale; after the lease's own period it is", () => {
        const w = new LockWatch(PERIOD);
        const l = locks({ "k.json": lock });
        const r = leases({ "slow.json": lease(5, "running", lock.hostname, undefined, undefined, 120) });
        expect(w.observe(0, l, r)).toEqual([]);
        expect(w.observe(PERIOD, l, r)).toEqual([]);
        expect(w.observe(2 * PERIOD - 1, l, r)).toEqual([]);
        expect(w.observe(2 * PERIOD, l, r)).toEqual(["k.json"]);
    });

    it("GIVEN a lease of an older dataops that states no period WHEN a waiter waits THEN it explains nothing: the lock stays, named with the pulumi cancel hint", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-old-")));
        const taken = new Date(Date.now() - 1000).toISOString();
        await store.write(`${lockDir("br-o")}engine.json`, JSON.stringify({ ...lock, timestamp: taken }));
        await store.write(`${leaseDir("br-o")}old.json`, JSON.stringify(lease(9, "running", lock.hostname, new Date(Date.now() - 5000).toISOString(), taken, null)));
        const told: string[] = [];
        await expect(waitForLocks({ store, stack: "br-o", periodSeconds: 1, deadline: Date.now() + 2500, timeoutSeconds: 2, log: (l) => told.push(l), pollMs: 100 })).rejects.toThrow(/did not become free within 2s/);
        expect(told[0]).toContain("not by a dataops run; waiting up to 2s. If that process is gone, release it with: pulumi cancel --stack br-o --yes");
        expect((await store.list(lockDir("br-o"))).length).toBe(1);
    });

    it("GIVEN a lease held WHEN written and renewed THEN it states its period and each renewal's time", async () => {
        const store = fileStore(mkdtempSync(join(tmpdir(), "dataops-period-")));
        let clock = Date.parse("2026-12-01T10:00:00.000Z");
        const held = await holdLease(store, "br-p", 30, () => undefined, () => new Date(clock));
        expect(parseLease(await store.read(held.key))).toMatchObject({ period: 30, beat: 0, beatAt: "2026-12-01T10:00:00.000Z" });
        clock += 5000;
        await held.setPhase("waiting");
        expect(parseLease(await store.read(held.key))).toMatchObject({ period: 30, beat: 1, beatAt: "2026-12-01T10:00:05.000Z" });
        await held.release();
    });
});

describe("a lease renewal that hangs", () => {
    const within = <T>(p: Promise<T>, ms: number) => Promise.race([p, new Promise<"timed out">((r) => setTimeout(() => r("timed out"), ms).unref())]);

    it("GIVEN a store whose renewal hangs WHEN the lease is renewed again THEN the hung write is abandoned and the newest renewal is written at once", async () => {
        const writes: Array<{ beat: number; signal?: AbortSignal }> = [];
        const store: StateStore = {
            where: "memory",
            list: async () => [],
            read: async () => undefined,
            remove: async () => undefined,
            write: (_key, body, options) => {
                const beat = (JSON.parse(body) as LeaseContent).beat;
                writes.push({ beat, signal: options?.signal });
                if (beat !== 1) return Promise.resolve();
                // The first renewal hangs until it is aborted, as a PUT with no answer.
                return new Promise<void>((_, reject) => options?.signal?.addEventListener("abort", () => reject(new Error("aborted"))));
            },
        };
        const lines: string[] = [];
        const held = await holdLease(store, "br-h", 60, (l) => lines.push(l));
        void held.setPhase("waiting");
        expect(await within(held.setPhase("running"), 1000)).toBeUndefined();
        expect(writes.map((w) => w.beat)).toEqual([0, 1, 2]);
        expect(writes[1].signal?.aborted).toBe(true);
        expect(await within(held.release(), 1000)).toBeUndefined();
        expect(lines).toEqual(["dataops: could not renew this run's lease on br-h (no answer within a beat); retrying"]);
    });

    it("GIVEN an S3 endpoint that accepts connections and never answers WHEN a lease is written THEN the write fails within seconds instead of hanging", async () => {
        const sockets: Socket[] = [];
        const server = createServer((s) => sockets.push(s));
        await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
        const port = (server.address() as { port: number }).port;
        try {
            const env = { AWS_ACCESS_KEY_ID: "k", AWS_SECRET_ACCESS_KEY: "s", AWS_REGION: "us-east-1", DATAOPS_LOCK_LEASE_SECONDS: "6" };
            const store = s3Store(`s3://b?endpoint=http://127.0.0.1:${port}&s3ForcePathStyle=true`, env);
            const started = Date.now();
            const outcome = await within(
                store.write(`${leaseDir("br-s")}x.json`, "{}").then(
                    () => "written",
                    (e: Error) => e.message,
                ),
                8000,
            );
            expect(outcome).toMatch(/^s3:\/\/b: writing \.dataops\/leases\/dataops\/br-s\/x\.json failed: TimeoutError/);
            // Each attempt gives up after half a beat (a beat is 1 s here); the SDK tries three times.
            expect(Date.now() - started).toBeLessThan(5000);
        } finally {
            for (const s of sockets) s.destroy();
            server.close();
        }
    });
});

describe("a dead process's lock on a file backend dataops reads", () => {
    it("GIVEN a lock of a process that is gone WHEN an engine call meets it THEN that lock alone is removed by its key, without pulumi cancel (which would delete a lock a parallel run took meanwhile)", async () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-cancel-"));
        const store = fileStore(dir);
        const dead = spawnSync("true").pid!;
        const deadLock = `${lockDir("br-c")}dead-engine.json`;
        await store.write(deadLock, JSON.stringify({ pid: dead, username: "me", hostname: hostname(), timestamp: new Date().toISOString() }));
        // The engine, faked: any call lets a parallel run take its lock first (the race), and
        // `cancel` deletes every lock of the stack, as pulumi cancel does on a file backend.
        const calls: string[][] = [];
        const pulumi = {
            command: "pulumi",
            version: null,
            run: async (args: string[]) => {
                calls.push(args);
                if (calls.length === 1) await store.write(`${lockDir("br-c")}parallel-run.json`, JSON.stringify({ pid: process.pid, username: "me", hostname: hostname(), timestamp: new Date().toISOString() }));
                if (args.includes("cancel")) await store.remove((await store.list(lockDir("br-c"))).map((o) => o.key));
                return { stdout: "", stderr: "", code: 0 };
            },
        };
        const ctx = { root: dir, pulumi, envVars: { PULUMI_BACKEND_URL: `file://${dir}` }, store, leaseSeconds: 60 } as unknown as Parameters<typeof withLockWait>[0];
        let tries = 0;
        const lines: string[] = [];
        const result = await withLockWait(ctx, "br-c", 10, (l) => lines.push(l), async () => {
            if (tries++ === 0) throw new Error("the stack is currently locked by 1 lock(s)");
            return "updated";
        });
        expect(result).toBe("updated");
        expect(calls).toEqual([]);
        expect(await store.list(lockDir("br-c"))).toEqual([]);
        expect(lines).toEqual([`dataops: br-c was locked by process ${dead}, which is gone; releasing its lock`]);
    });
});

describe("the purge after a stack is removed", () => {
    it("GIVEN a lease renewed within its period (a run that started after stack rm) and one silent for longer WHEN the stack is purged THEN only the silent one is removed", async () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-purge-"));
        const store = fileStore(dir);
        const fresh = `${leaseDir("br-u")}new-push.json`;
        const old = `${leaseDir("br-u")}dead-run.json`;
        const slow = `${leaseDir("br-u")}slow-holder.json`;
        const t = new Date().toISOString();
        await store.write(fresh, JSON.stringify(lease(1, "running", hostname(), t, t, 60)));
        await store.write(old, JSON.stringify(lease(7, "running", hostname(), t, t, 60)));
        // A holder with a longer period renews less often: judged on its own period.
        await store.write(slow, JSON.stringify(lease(2, "running", hostname(), t, t, 600)));
        const ago = (s: number) => new Date(Date.now() - s * 1000);
        utimesSync(join(dir, ...old.split("/")), ago(90), ago(90));
        utimesSync(join(dir, ...slow.split("/")), ago(90), ago(90));
        const removed = await purgeStack(store, "br-u", false, 60);
        expect(removed).toEqual([old]);
        expect((await store.list(leaseDir("br-u"))).map((o) => o.key).sort()).toEqual([fresh, slow].sort());
    });
});
