// The branch lifecycle on an S3 state backend, as a CI pipeline runs it: every command a fresh
// `dataops` process with PULUMI_BACKEND_URL=s3://…, against a real S3 API (moto's server on
// loopback, started here), the real engine and the embedded PostgreSQL. Kills are SIGKILLs of
// the whole process group, as a cancelled CI job's. A lease period of 10 s (instead of 60 s)
// keeps the waits short; the rule is the same.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leftoversOf } from "./attempt";
import { leaseDir, lockDir } from "../../lifecycle/locks";
import { stackObjects } from "../../lifecycle/purge";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { stateStore, type StateStore } from "../../local/stateStore";
import { environmentPrefix, stackNameForBranch } from "../../naming";
import { type Moto, startMoto } from "./moto";

const root = resolve(__dirname, "..", "..");
const bin = join(root, "bin", "dataops.js");
const BUCKET = "dataops-state";
const B = { killed: "s3/killed", firstKilled: "s3/first-killed", race: "s3/race", foreign: "s3/foreign" } as const;
let moto: Moto;
let server: EmbeddedServer;
let env: Record<string, string>;
let store: StateStore;

/** The CLI in a process of its own, as a CI job runs it. */
function start(args: string[], extra: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, detached: true, env: { ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
    let seen = "";
    child.stdout!.on("data", (b: Buffer) => (seen += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (seen += b.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, output: () => seen, exited };
}

async function dataops(args: string[], extra: Record<string, string> = {}): Promise<{ code: number | null; text: string }> {
    const run = start(args, extra);
    const code = await run.exited;
    return { code, text: run.output() };
}

async function waitFor(output: () => string, pattern: RegExp, count: number, what: string): Promise<void> {
    const deadline = Date.now() + 300_000;
    while ((output().match(new RegExp(pattern, "g")) ?? []).length < count) {
        if (Date.now() > deadline) throw new Error(`never saw ${what}:\n${output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** A fresh checkout, as a new CI job has: no local stack config file, no record of the last up. */
function freshCheckout(branch: string): void {
    const stack = stackNameForBranch(branch);
    rmSync(join(root, `Pulumi.${stack}.yaml`), { force: true });
    rmSync(join(root, ".dataops", "up", `${stack}.json`), { force: true });
}

const leftovers = (branch: string): Promise<string[]> => leftoversOf(server, environmentPrefix(stackNameForBranch(branch)));

const keys = async (prefix: string) => (await store.list(prefix)).map((o) => o.key);
const json = <T>(text: string): T => JSON.parse(text.slice(text.indexOf("\n{") + 1 || text.indexOf("{"), text.lastIndexOf("}") + 1)) as T;

beforeAll(async () => {
    moto = await startMoto(root, (l) => process.stderr.write(`${l}\n`));
    await moto.createBucket(BUCKET);
    env = {
        ...(process.env as Record<string, string>),
        ...moto.env,
        PULUMI_BACKEND_URL: `s3://${BUCKET}?endpoint=${moto.endpoint}&s3ForcePathStyle=true`,
        PULUMI_CONFIG_PASSPHRASE: "s3-suite-passphrase",
        DATAOPS_LOCK_LEASE_SECONDS: "10",
    };
    store = stateStore(env.PULUMI_BACKEND_URL, env)!;
    server = await ensureEmbeddedServer(root);
    for (const b of Object.values(B)) freshCheckout(b);
});

afterAll(async () => {
    if (env) for (const b of Object.values(B)) await dataops(["destroy", "--branch", b, "--yes"]);
    await moto?.stop();
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("a CI job killed mid-update", () => {
    it("GIVEN up SIGKILLed while applying the catalog, its lock left in the bucket WHEN up runs again THEN the dead run's lock is released by the lease rule, and it converges", async () => {
        const stack = stackNameForBranch(B.killed);
        const run = start(["up", "--embedded", "--branch", B.killed]);
        await waitFor(run.output, /SqlCatalog \S+ creating/, 1, "the catalog being created");
        process.kill(-run.child.pid!, "SIGKILL");
        await run.exited;
        // What the issue found: the killed engine's lock stays, with the dead run's lease.
        expect(await keys(lockDir(stack))).toHaveLength(1);
        expect(await keys(leaseDir(stack))).toHaveLength(1);

        const again = await dataops(["up", "--embedded", "--branch", B.killed, "--json"]);
        expect(again.code, again.text.slice(-3000)).toBe(0);
        expect(again.text).toMatch(new RegExp(`${stack} was locked by \\S+@${hostname()} \\(pid \\d+\\) since \\S+, a dataops run whose lease has been silent for 10s: it is gone; releasing its lock`));
        expect(json<{ recovered: boolean }>(again.text).recovered).toBe(true);
        expect(await keys(lockDir(stack))).toEqual([]);
        expect(await keys(leaseDir(stack))).toEqual([]);

        const third = await dataops(["up", "--embedded", "--branch", B.killed, "--json"]);
        expect(third.code, third.text.slice(-3000)).toBe(0);
        const t = json<{ recovered: boolean; changes: Record<string, number> }>(third.text);
        expect(t.changes).toEqual({ same: expect.any(Number) });
        expect(t.recovered).toBe(false);
    });

    it("GIVEN destroy SIGKILLed at its 3rd delete WHEN destroy runs again from a fresh checkout THEN one destroy finishes it: no database, no role, no object of the stack in the bucket", async () => {
        const stack = stackNameForBranch(B.killed);
        freshCheckout(B.killed);
        const run = start(["destroy", "--branch", B.killed, "--yes"]);
        await waitFor(run.output, /deleted/, 3, "3 deletes");
        process.kill(-run.child.pid!, "SIGKILL");
        await run.exited;
        // Killed half-way: its lock is left, and the stack is still there.
        expect(await keys(lockDir(stack))).toHaveLength(1);
        expect(await keys(`.pulumi/stacks/dataops/${stack}.json`)).toContain(`.pulumi/stacks/dataops/${stack}.json`);

        freshCheckout(B.killed);
        const again = await dataops(["destroy", "--branch", B.killed, "--yes"]);
        expect(again.code, again.text.slice(-3000)).toBe(0);
        expect(again.text).toContain(`${stack}: destroyed and removed`);
        expect(again.text).toContain("whose lease has been silent for 10s: it is gone; releasing its lock");
        expect(await leftovers(B.killed)).toEqual([]);
        expect(await stackObjects(store, stack)).toEqual([]);
        expect((await keys("")).filter((k) => k.includes(stack))).toEqual([]);
        expect(existsSync(join(root, `Pulumi.${stack}.yaml`))).toBe(false);
    });
});

describe("a merge request closed while its first up was killed", () => {
    it("GIVEN a first up SIGKILLed before it recorded any output WHEN destroy runs from a fresh checkout THEN one destroy removes the environment, finding its server as up does", async () => {
        const stack = stackNameForBranch(B.firstKilled);
        const run = start(["up", "--embedded", "--branch", B.firstKilled]);
        await waitFor(run.output, /SqlCatalog \S+ creating/, 1, "the catalog being created");
        process.kill(-run.child.pid!, "SIGKILL");
        await run.exited;
        expect(await keys(lockDir(stack))).toHaveLength(1);

        freshCheckout(B.firstKilled);
        const down = await dataops(["destroy", "--branch", B.firstKilled, "--yes"]);
        expect(down.code, down.text.slice(-3000)).toBe(0);
        expect(down.text).toContain(`${stack}: destroyed and removed`);
        expect(await leftovers(B.firstKilled)).toEqual([]);
        expect(await stackObjects(store, stack)).toEqual([]);
    });
});

describe("two pipelines of one new branch", () => {
    it("GIVEN two ups of a branch that has no stack, at once WHEN both run THEN both succeed on one stack and one database", async () => {
        const [a, b] = [start(["up", "--embedded", "--branch", B.race]), start(["up", "--embedded", "--branch", B.race])];
        const codes = await Promise.all([a.exited, b.exited]);
        expect(codes, `${a.output().slice(-2000)}\n----\n${b.output().slice(-2000)}`).toEqual([0, 0]);
        expect((await leftovers(B.race)).filter((n) => n.endsWith("_analytics"))).toHaveLength(1);
        expect(await keys(lockDir(stackNameForBranch(B.race)))).toEqual([]);
    });
});

describe("a lock no dataops run explains", () => {
    it("GIVEN a lock taken by someone's own pulumi on another machine WHEN up waits past its --lock-timeout THEN it fails naming the holder and how to release it, and the lock stays", async () => {
        const made = await dataops(["up", "--embedded", "--branch", B.foreign]);
        expect(made.code, made.text.slice(-2000)).toBe(0);
        const stack = stackNameForBranch(B.foreign);
        const lock = `${lockDir(stack)}by-hand.json`;
        await store.write(lock, JSON.stringify({ pid: 811, username: "alice", hostname: "alices-laptop", timestamp: new Date().toISOString() }));
        freshCheckout(B.foreign); // a new commit: the update cannot be skipped
        const up = await dataops(["up", "--embedded", "--branch", B.foreign, "--lock-timeout", "15"]);
        expect(up.code).toBe(1);
        expect(up.text).toContain(`${stack} is locked by alice@alices-laptop (pid 811)`);
        expect(up.text).toContain(`not by a dataops run; waiting up to 15s. If that process is gone, release it with: pulumi cancel --stack ${stack} --yes`);
        expect(up.text).toMatch(/did not become free within 15s; try again later or raise --lock-timeout/);
        expect(await keys(lockDir(stack))).toEqual([lock]);
        await store.remove([lock]);
    });
});

describe("retention", () => {
    it("GIVEN DATAOPS_KEEP_STATE_HISTORY=true WHEN a branch is destroyed THEN its backups stay; a later destroy without it removes them", async () => {
        const stack = stackNameForBranch(B.foreign);
        const kept = await dataops(["destroy", "--branch", B.foreign, "--yes"], { DATAOPS_KEEP_STATE_HISTORY: "true" });
        expect(kept.code, kept.text.slice(-2000)).toBe(0);
        const left = await stackObjects(store, stack);
        expect(left.filter((k) => k.startsWith(`.pulumi/backups/dataops/${stack}/`)).length).toBeGreaterThan(0);
        expect(left).not.toContain(`.pulumi/stacks/dataops/${stack}.json`);
        const ls = await dataops(["ls", "--json"]);
        expect(ls.text).not.toContain(stack);

        const again = await dataops(["destroy", "--branch", B.foreign, "--yes"]);
        expect(again.code).toBe(0);
        expect(again.text).toContain(`${stack}: no such stack; nothing to destroy`);
        expect(await stackObjects(store, stack)).toEqual([]);
    });
});

describe("ls and prune read the bucket", () => {
    it("GIVEN a branch environment in the bucket WHEN listed, pruned dry and pruned THEN it is listed with its tags, named, then destroyed leaving no object in the bucket", async () => {
        const stack = stackNameForBranch(B.race);
        const ls = await dataops(["ls", "--json"]);
        expect(ls.code, ls.text.slice(-2000)).toBe(0);
        const rows = JSON.parse(ls.text.slice(ls.text.indexOf("["), ls.text.lastIndexOf("]") + 1)) as Array<Record<string, unknown>>;
        const row = rows.find((r) => r.stack === stack);
        expect(row).toMatchObject({ branch: B.race, kind: "branch", target: "server" });
        expect(row?.resourceCount).toBeGreaterThan(10);

        const list = join(mkdtempSync(join(tmpdir(), "dataops-s3-")), "branches.txt");
        writeFileSync(list, "main\n");
        const dry = await dataops(["prune", "--dry-run", "--branches-from", list]);
        expect(dry.code).toBe(0);
        expect(dry.text).toContain(`would destroy ${stack}: branch ${B.race} is gone from the remote`);
        expect(await stackObjects(store, stack)).not.toEqual([]);

        const pruned = await dataops(["prune", "--branches-from", list]);
        expect(pruned.code, pruned.text.slice(-2000)).toBe(0);
        expect(pruned.text).toContain(`destroyed ${stack}: branch ${B.race} is gone from the remote`);
        expect(await leftovers(B.race)).toEqual([]);
        expect(await stackObjects(store, stack)).toEqual([]);
        // Every environment of this suite is gone: the bucket holds only the backend's own marker.
        expect(await keys("")).toEqual([".pulumi/meta.yaml"]);
    });
});

describe("settings, refused with the key named", () => {
    it.each([
        [{ DATAOPS_LOCK_LEASE_SECONDS: "3" }, 'DATAOPS_LOCK_LEASE_SECONDS: a whole number of seconds from 6 to 3600, given "3"'],
        [{ DATAOPS_KEEP_STATE_HISTORY: "yes" }, 'DATAOPS_KEEP_STATE_HISTORY: allowed true | false, given "yes"'],
        [{ PULUMI_BACKEND_URL: `s3://${BUCKET}?role=arn:aws:iam::1:role/ci` }, 'PULUMI_BACKEND_URL: dataops reads the bucket itself and does not support the query parameter "role"'],
    ])("GIVEN %j WHEN ls runs THEN it exits 2 saying what is allowed", async (extra, message) => {
        const r = await dataops(["ls"], extra);
        expect(r.code).toBe(2);
        expect(r.text).toContain(message);
    });
});
