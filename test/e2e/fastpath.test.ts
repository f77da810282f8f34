// End to end: the no-op fast path through the installed CLI (bin/dataops.js, which runs the
// program in-process and so enables it), on the real engine and the embedded PostgreSQL.
// A push that changes nothing is answered without the engine; drift, a new commit and
// --refresh all take the full path; `dataops drift` agrees with what up decided.
import { spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { listFileBackend } from "../../local/fileBackend";
import { localContext, workspace } from "../../local/workspace";
import { environmentPrefix, stackNameForBranch } from "../../naming";

const root = resolve(__dirname, "..", "..");
const BRANCH = "e2e/fast";
const prefix = environmentPrefix(stackNameForBranch(BRANCH));
let server: EmbeddedServer;

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
    return new Promise((done) => {
        const child = spawn(process.execPath, [join(root, "bin", "dataops.js"), ...args], { cwd: root, env: { ...process.env, CI: "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (b: Buffer) => (out += b.toString()));
        child.stderr.on("data", (b: Buffer) => (err += b.toString()));
        child.on("exit", (code) => done({ code, out, err }));
    });
}

const up = async (...extra: string[]) => {
    const r = await cli(["up", "--embedded", "--branch", BRANCH, "--json", ...extra]);
    expect(r.code, r.err.slice(-2000)).toBe(0);
    return { ...r, changes: (JSON.parse(r.out) as { changes: Record<string, number> }).changes };
};
const FAST = /no changes \(same inputs as the last update, state untouched, server checked: no drift\)/;

async function asAdmin(sql: string): Promise<void> {
    const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: `${prefix}_analytics` });
    await c.connect();
    try {
        await c.query(sql);
    } finally {
        await c.end();
    }
}

beforeAll(async () => {
    server = await ensureEmbeddedServer(root, () => undefined);
    await cli(["destroy", "--branch", BRANCH, "--yes"]);
});

afterAll(async () => {
    await cli(["destroy", "--branch", BRANCH, "--yes"]);
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("no-op fast path (installed CLI)", () => {
    it("GIVEN an environment just made WHEN up runs again with nothing changed THEN it answers without the engine, with the same summary", async () => {
        const first = await up();
        expect(first.changes.create).toBeGreaterThan(0);
        const again = await up();
        expect(again.err).toMatch(FAST);
        expect(again.changes).toEqual({ same: first.changes.create });
        expect(JSON.parse(again.out).environment).toEqual(JSON.parse(first.out).environment);
    });

    it("GIVEN drift made by hand WHEN up runs THEN it takes the full path and says how to repair; --refresh repairs; then the fast path again", async () => {
        await asAdmin(`REVOKE USAGE ON SCHEMA marts FROM ${prefix}_reporter`);
        const drifted = await cli(["drift", "--branch", BRANCH]);
        expect(drifted.code).toBe(1);
        expect(drifted.out).toContain(`schema marts, for ${prefix}_reporter: expected USAGE, found none`);

        const plain = await up();
        expect(plain.err).not.toMatch(FAST);
        expect(plain.err).toContain("the server drifted from its last update");
        expect(plain.changes).toEqual({ same: expect.any(Number) });

        const repaired = await up("--refresh");
        expect(repaired.changes.update).toBe(1);
        expect((await cli(["drift", "--branch", BRANCH])).code).toBe(0);
        expect((await up()).err).toMatch(FAST);
    });

    it("GIVEN a new commit WHEN up runs THEN the full path records it (the database comment changes)", async () => {
        const pushed = await cli(["up", "--embedded", "--branch", BRANCH, "--json"], { DATAOPS_COMMIT: "0123456789abcdef0123456789abcdef01234567" });
        expect(pushed.code, pushed.err.slice(-2000)).toBe(0);
        expect(pushed.err).not.toMatch(FAST);
        expect(JSON.parse(pushed.out).changes.update).toBe(1);
        expect(JSON.parse(pushed.out).environment.build.commit).toBe("0123456789abcdef0123456789abcdef01234567");
    });

    it("GIVEN a file backend WHEN environments are listed from its files THEN they are what the engine lists", async () => {
        const ctx = await localContext(root, () => undefined);
        const fromFiles = listFileBackend(ctx.envVars.PULUMI_BACKEND_URL!)!;
        const ws = await workspace(ctx);
        const engine = await ws.listStacks();
        expect(fromFiles.map((s) => s.name).sort()).toEqual(engine.map((s) => s.name).sort());
        const name = stackNameForBranch(BRANCH);
        const mine = fromFiles.find((s) => s.name === name)!;
        const theirs = engine.find((s) => s.name === name)!;
        expect(mine.tags).toEqual(await ws.listTags(name));
        expect(mine.resourceCount).toBe(theirs.resourceCount);
        expect(new Date(mine.lastUpdate!).getTime()).toBe(new Date(theirs.lastUpdate!).getTime());
    });

    it("GIVEN destroy WHEN up runs after it THEN it makes the environment again (the record went with the stack)", async () => {
        expect((await cli(["destroy", "--branch", BRANCH, "--yes"])).code).toBe(0);
        const again = await up();
        expect(again.err).not.toMatch(FAST);
        expect(again.changes.create).toBeGreaterThan(0);
    });
});
