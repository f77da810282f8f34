// Faults injected into the real CLI on the real engine and the embedded PostgreSQL:
// kills at several points of up and destroy, Ctrl-C, two creators of one new branch,
// a hostile branch name, and the files a non-owner could read. Each must end in a
// converged, clean state with nothing orphaned: no database, role, stack or process.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leftoversOf } from "../e2e/attempt";
import { main, type Io } from "../../cli/main";
import { type EmbeddedServer, ensureEmbeddedServer, setAsideIncomplete, stopEmbeddedServer } from "../../local/embedded";
import { orphanedProviders } from "../../local/processes";
import { environmentPrefix, stackNameForBranch } from "../../naming";

const root = resolve(__dirname, "..", "..");
const bin = join(root, "bin", "dataops.js");
const B = { killUp3: "rel/kill-up-3", killUp20: "rel/kill-up-20", killDown: "rel/kill-down", sigint: "rel/sigint", race: "rel/race", killDirect: "rel/kill-direct", hostile: "rel/q'$(touch pwned)'q", corrupt: "rel/corrupt", lost: "rel/lost", busy: "rel/busy", coldA: "rel/cold-a", coldB: "rel/cold-b" } as const;
const checkpoint = (branch: string) => join(root, ".dataops", "state", ".pulumi", "stacks", "dataops", `${stackNameForBranch(branch)}.json`);
let server: EmbeddedServer;
/** For the faults of the engine's destroy: without it, an environment holding only its catalog is destroyed by dataops itself. */
const VIA_ENGINE = { DATAOPS_DESTROY_VIA_ENGINE: "true" };

/** Until a statement starting with `text` waits on a lock held by `holder`'s session. */
async function waitForQuery(holder: Client, text: string, output: () => string): Promise<void> {
    const deadline = Date.now() + 120_000;
    for (;;) {
        // The holder is inside a transaction, which sees one snapshot of the statistics unless told to drop it.
        await holder.query("SELECT pg_stat_clear_snapshot()");
        const r = await holder.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1 AND wait_event_type = 'Lock'", [`${text}%`]);
        if (r.rows[0].n > 0) return;
        if (Date.now() > deadline) throw new Error(`no ${text} waited on the held lock within 120 s:\n${output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

function io(): Io & { lines: string[] } {
    const lines: string[] = [];
    return { lines, out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: root, now: () => new Date(), interactive: false };
}

async function dataops(...args: string[]): Promise<{ code: number; text: string }> {
    const o = io();
    const code = await main(args, o);
    return { code, text: o.lines.join("\n") };
}

/** The CLI as a user runs it, in its own process group; `when` picks the moment to act on its output. */
function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
    const child = spawn(process.execPath, [bin, ...args], { cwd: root, detached: true, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let seen = "";
    child.stdout!.on("data", (b: Buffer) => (seen += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (seen += b.toString()));
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    return { child, output: () => seen, exited };
}

async function waitFor(output: () => string, pattern: RegExp, count: number, what: string): Promise<void> {
    const deadline = Date.now() + 300_000;
    while ((output().match(new RegExp(pattern, "g")) ?? []).length < count) {
        if (Date.now() > deadline) throw new Error(`never saw ${what}:\n${output().slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

const leftovers = (branch: string): Promise<string[]> => leftoversOf(server, environmentPrefix(stackNameForBranch(branch)));

async function stacks(): Promise<string> {
    return (await dataops("ls", "--json")).text;
}

/** The stacks in the local state folder, read directly (no engine call). */
async function stacksText(): Promise<string> {
    const dir = join(root, ".dataops", "state", ".pulumi", "stacks", "dataops");
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")).join("\n") : "";
}

async function gone(branch: string): Promise<void> {
    expect(await leftovers(branch)).toEqual([]);
    expect(await stacks()).not.toContain(stackNameForBranch(branch));
}

/** Figures for the README: each injected fault, and whether the next ordinary command recovered. */
const figures: Array<{ fault: string; recovered: boolean }> = [];
const record = (fault: string, recovered: boolean) => figures.push({ fault, recovered });

beforeAll(async () => {
    server = await ensureEmbeddedServer(root);
    for (const b of Object.values(B)) await dataops("destroy", "--branch", b, "--yes");
});

afterAll(async () => {
    for (const b of Object.values(B)) await dataops("destroy", "--branch", b, "--yes");
    process.stderr.write(`reliability: ${figures.filter((f) => f.recovered).length} of ${figures.length} injected faults recovered by the next ordinary command\n${figures.map((f) => `  ${f.recovered ? "recovered" : "NOT RECOVERED"}  ${f.fault}`).join("\n")}\n`);
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("kills", () => {
    it.each([
        ["after the 3rd password", B.killUp3, /GeneratedPassword \S+ created/, 3],
        ["while the catalog is being applied", B.killUp20, /SqlCatalog \S+ creating/, 1],
    ])("GIVEN up SIGKILLed %s WHEN up runs again THEN it converges, with no provider process left running", async (where, branch, pattern, n) => {
        const run = start(["up", "--embedded", "--branch", branch]);
        await waitFor(run.output, pattern, n, `${n} × ${pattern}`);
        process.kill(-run.child.pid!, "SIGKILL");
        await run.exited;
        const again = await dataops("up", "--embedded", "--branch", branch);
        expect(again.code, again.text.slice(-2000)).toBe(0);
        // The provider host the killed engine started is ended by the next run.
        expect(orphanedProviders(root)).toEqual([]);
        const third = await dataops("up", "--embedded", "--branch", branch, "--json");
        expect(third.code).toBe(0);
        expect(third.text).toMatch(/"changes": \{\s*"same": \d+\s*\}/);
        // Recovered once: the next, clean update says nothing of it.
        expect(third.text).not.toMatch(/interrupted update|pending operation/);
        expect(third.text).toMatch(/"recovered": false/);
        record(`up killed ${where}`, true);
    });

    it.each([
        ["at the 1st delete", /deleted/, 1],
        ["at the 5th delete", /deleted/, 5],
        ["at the 10th delete", /deleted/, 10],
    ])("GIVEN destroy SIGKILLed %s WHEN destroy runs again THEN one destroy finishes it, leaving nothing", async (where, pattern, n) => {
        expect((await dataops("up", "--embedded", "--branch", B.killDown)).code).toBe(0);
        // The engine's destroy (an environment holding only its catalog is otherwise destroyed without it, below).
        const run = start(["destroy", "--branch", B.killDown, "--yes"], VIA_ENGINE);
        await waitFor(run.output, pattern, n, `${n} deletes`);
        process.kill(-run.child.pid!, "SIGKILL");
        await run.exited;
        const again = await dataops("destroy", "--branch", B.killDown, "--yes");
        expect(again.code, again.text.slice(-2000)).toBe(0);
        await gone(B.killDown);
        expect(orphanedProviders(root)).toEqual([]);
        record(`destroy killed ${where}`, true);
    });

    it("GIVEN a destroy without the engine SIGKILLed while it drops the roles WHEN destroy runs again THEN it finishes, leaving nothing", async () => {
        expect((await dataops("up", "--embedded", "--branch", B.killDirect)).code).toBe(0);
        // A session holds a role's catalog row: DROP ROLE waits on it, and the kill lands mid-drop.
        const holder = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: "postgres" });
        await holder.connect();
        await holder.query("BEGIN");
        await holder.query(`ALTER ROLE ${environmentPrefix(stackNameForBranch(B.killDirect))}_reporter CONNECTION LIMIT 3`);
        const run = start(["destroy", "--branch", B.killDirect, "--yes"]);
        try {
            await waitForQuery(holder, "DROP ROLE", run.output);
        } finally {
            process.kill(-run.child.pid!, "SIGKILL");
            await run.exited;
            await holder.query("ROLLBACK");
            await holder.end();
        }
        // Killed under the stack's lock, with the stack still there.
        expect(readdirSync(join(root, ".dataops", "state", ".pulumi", "locks", "organization", "dataops", stackNameForBranch(B.killDirect)))).toHaveLength(1);
        const again = await dataops("destroy", "--branch", B.killDirect, "--yes");
        expect(again.code, again.text.slice(-2000)).toBe(0);
        await gone(B.killDirect);
        expect(existsSync(join(root, `Pulumi.${stackNameForBranch(B.killDirect)}.yaml`))).toBe(false);
        record("destroy without the engine killed mid-drop", true);
    });
});

describe("Ctrl-C", () => {
    it("GIVEN up interrupted by SIGINT WHEN it stops THEN it exits 130 after a clean cancel, and the next up converges", async () => {
        const run = start(["up", "--embedded", "--branch", B.sigint]);
        await waitFor(run.output, /GeneratedPassword \S+ created/, 2, "passwords created");
        process.kill(run.child.pid!, "SIGINT");
        expect(await run.exited).toBe(130);
        expect(run.output()).toContain("dataops up: cancelled. The engine saved its state; run the same command again to go on from there.");
        expect(orphanedProviders(root)).toEqual([]);
        const again = await dataops("up", "--embedded", "--branch", B.sigint);
        expect(again.code, again.text.slice(-2000)).toBe(0);
        record("up interrupted by SIGINT", true);
    });

    it("GIVEN destroy interrupted by SIGINT WHEN destroy runs again THEN it finishes", async () => {
        // A session holds a role's catalog row, so the catalog's delete (DROP ROLE) waits on it: the
        // signal arrives while a delete is under way, whatever the machine's speed.
        const holder = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: "postgres" });
        await holder.connect();
        await holder.query("BEGIN");
        await holder.query(`ALTER ROLE ${environmentPrefix(stackNameForBranch(B.sigint))}_reporter CONNECTION LIMIT 3`);
        const run = start(["destroy", "--branch", B.sigint, "--yes"], VIA_ENGINE);
        await waitFor(run.output, /SqlCatalog \S+ deleting/, 1, "the catalog's delete");
        process.kill(run.child.pid!, "SIGINT");
        await new Promise((r) => setTimeout(r, 2000));
        await holder.query("ROLLBACK");
        await holder.end();
        expect(await run.exited).toBe(130);
        const again = await dataops("destroy", "--branch", B.sigint, "--yes");
        expect(again.code, again.text.slice(-2000)).toBe(0);
        await gone(B.sigint);
        record("destroy interrupted by SIGINT", true);
    });
});

describe("races", () => {
    it("GIVEN two ups of one new branch at once WHEN both run THEN both succeed on one stack", async () => {
        const [a, b] = [start(["up", "--embedded", "--branch", B.race]), start(["up", "--embedded", "--branch", B.race])];
        const codes = await Promise.all([a.exited, b.exited]);
        expect(codes, `${a.output().slice(-1500)}\n----\n${b.output().slice(-1500)}`).toEqual([0, 0]);
        expect((await leftovers(B.race)).filter((n) => n.endsWith("_analytics"))).toHaveLength(1);
        // They took turns in this checkout (local/checkoutLock.ts): neither lost the other's config or tags.
        expect(`${a.output()}${b.output()}`).toContain("dataops: waiting for another run in this checkout (dataops up --branch rel/race");
        const listed = io();
        expect(await main(["ls", "--json"], { ...listed, err: () => undefined })).toBe(0);
        const row = (JSON.parse(listed.lines.join("\n")) as Array<Record<string, unknown>>).find((r) => r.stack === stackNameForBranch(B.race));
        expect(row).toMatchObject({ branch: B.race, kind: "branch", target: "server", expiresAt: expect.any(String), createdAt: expect.any(String) });
        record("two ups of one new branch at once", true);
        const down = await dataops("destroy", "--branch", B.race, "--yes");
        expect(down.code, down.text.slice(-1500)).toBe(0);
        await gone(B.race);
    });
});

describe("a stopped server, two ups", () => {
    it("GIVEN the embedded server stopped WHEN ups of two new branches start at once THEN one starts it, the other uses it, and both end tagged and removable", async () => {
        await stopEmbeddedServer(root);
        const [a, b] = [start(["up", "--embedded", "--branch", B.coldA]), start(["up", "--embedded", "--branch", B.coldB])];
        const codes = await Promise.all([a.exited, b.exited]);
        expect(codes, `${a.output().slice(-1500)}\n----\n${b.output().slice(-1500)}`).toEqual([0, 0]);
        server = await ensureEmbeddedServer(root);
        const listed = await stacks();
        for (const branch of [B.coldA, B.coldB]) {
            expect(listed).toContain(stackNameForBranch(branch));
            expect((await leftovers(branch)).filter((n) => n.endsWith("_analytics"))).toHaveLength(1);
            // destroy refuses a stack not tagged as a branch's: both were tagged when made.
            const down = await dataops("destroy", "--branch", branch, "--yes");
            expect(down.code, down.text.slice(-1500)).toBe(0);
            await gone(branch);
        }
        record("two ups at once while the embedded server is stopped", true);
    });
});

describe("a broken state file", () => {
    it("GIVEN one stack's checkpoint cut short WHEN ls, up and destroy run THEN the others are listed, its backup is restored, and it converges and goes", async () => {
        for (const b of [B.corrupt, B.lost]) expect((await dataops("up", "--embedded", "--branch", b)).code).toBe(0);
        const file = checkpoint(B.corrupt);
        writeFileSync(file, readFileSync(file, "utf8").slice(0, 200));
        const ls = await dataops("ls", "--json");
        expect(ls.code, ls.text.slice(-2000)).toBe(0);
        expect(ls.text).toContain(stackNameForBranch(B.lost));
        expect(ls.text).toMatch(/the state of br-rel-corrupt_\w+ was cut short by an interrupted write; restored the engine's previous checkpoint/);
        const up = await dataops("up", "--embedded", "--branch", B.corrupt);
        expect(up.code, up.text.slice(-2000)).toBe(0);
        expect((await dataops("destroy", "--branch", B.corrupt, "--yes")).code).toBe(0);
        await gone(B.corrupt);
        record("a checkpoint cut short", true);
    });

    it("GIVEN a stack whose state is lost altogether WHEN destroy runs THEN it lists the environment's objects and removes them by name", async () => {
        const file = checkpoint(B.lost);
        for (const f of [file, `${file}.attrs`, `${file}.bak`, `${file}.bak.attrs`]) if (existsSync(f)) rmSync(f);
        expect(await leftovers(B.lost)).not.toEqual([]);
        const r = await dataops("destroy", "--branch", B.lost, "--yes");
        expect(r.code, r.text.slice(-2000)).toBe(0);
        expect(r.text).toContain(`${stackNameForBranch(B.lost)} has no stack, but localhost:54329 still holds its objects:`);
        expect(r.text).toContain(`${stackNameForBranch(B.lost)}: its state was lost; removed its objects by name`);
        await gone(B.lost);
        record("a state file lost", true);
    });
});

describe("a busy port", () => {
    it("GIVEN the embedded server stopped and its port taken by another process WHEN up runs THEN it fails non-zero, naming the port, and leaves no stack", async () => {
        await stopEmbeddedServer(root);
        const squatter = createServer();
        await new Promise<void>((r) => squatter.listen(54329, "127.0.0.1", () => r()));
        try {
            const up = await dataops("up", "--embedded", "--branch", B.busy);
            expect(up.code).toBe(1);
            expect(up.text).toContain("embedded PostgreSQL: port 54329 is taken by another server");
            expect(await stacksText()).not.toContain(stackNameForBranch(B.busy));
        } finally {
            await new Promise<void>((r) => squatter.close(() => r()));
            server = await ensureEmbeddedServer(root);
        }
        record("the embedded server's port taken", true);
    });
});

describe("hostile input and what others can read", () => {
    it("GIVEN a branch name made to run a command WHEN up prints its destroy hint and that hint is pasted into a shell THEN it destroys the environment and runs nothing else", async () => {
        const cwd = mkdtempSync(join(tmpdir(), "dataops-hostile-"));
        const up = await dataops("up", "--embedded", "--branch", B.hostile);
        expect(up.code, up.text.slice(-2000)).toBe(0);
        const hint = up.text.split("\n").find((l) => l.startsWith("Destroy it with: "))!.slice("Destroy it with: ".length);
        const pasted = spawnSync("sh", ["-c", hint.replace(/^npx dataops/, `node ${JSON.stringify(bin)}`)], { cwd, encoding: "utf8", timeout: 300_000 });
        expect(pasted.status, pasted.stderr.slice(-2000)).toBe(0);
        expect(readdirSync(cwd)).toEqual([]); // no `pwned` file
        await gone(B.hostile);
        record("a hostile branch name", true);
    });

    it("GIVEN the local files WHEN listed THEN no secret is readable by anyone but the owner, and no admin password is in the temp folder", () => {
        const local = join(root, ".dataops");
        expect(statSync(join(local, "state")).mode & 0o077).toBe(0);
        expect(statSync(join(local, "passphrase")).mode & 0o077).toBe(0);
        expect(statSync(join(local, "pg", "admin-password")).mode & 0o077).toBe(0);
        expect(statSync(join(local, "pg", "data")).mode & 0o077).toBe(0);
        expect(readdirSync(tmpdir()).filter((f) => f.startsWith("pg-password-"))).toEqual([]);
        // Nothing a non-owner can reach under .dataops holds the admin password.
        const password = readFileSync(join(local, "pg", "admin-password"), "utf8").trim();
        const readable: string[] = [];
        const walk = (dir: string) => {
            for (const e of readdirSync(dir, { withFileTypes: true })) {
                const p = join(dir, e.name);
                const mode = statSync(p).mode;
                if ((mode & 0o005) !== 0o005 && e.isDirectory()) continue; // others cannot enter
                if (e.isDirectory()) walk(p);
                else if (e.isFile() && mode & 0o004 && statSync(p).size < 5_000_000 && readFileSync(p, "utf8").includes(password)) readable.push(p);
            }
        };
        walk(local);
        expect(readable).toEqual([]);
    });

    it("GIVEN a data folder a killed first start left without its settings WHEN the server is ensured THEN it is set aside, not used", () => {
        const fake = mkdtempSync(join(tmpdir(), "dataops-halfmade-"));
        const data = join(fake, ".dataops", "pg", "data");
        mkdirSync(data, { recursive: true });
        writeFileSync(join(data, "PG_VERSION"), "16\n");
        writeFileSync(join(data, "postgresql.conf"), "# initdb's defaults, no settings of ours\n");
        const lines: string[] = [];
        setAsideIncomplete(fake, (l) => lines.push(l));
        expect(existsSync(data)).toBe(false);
        expect(readdirSync(join(fake, ".dataops", "pg")).filter((f) => f.startsWith("data.incomplete-"))).toHaveLength(1);
        expect(lines[0]).toMatch(/was left half-made by an interrupted first start; moved it to .*data\.incomplete-\d+ and initialising again$/);
        record("a half-made data folder", true);
    });
});
