// Branches that start from another environment's data, end to end: a source environment on
// the embedded server is loaded by a real Singer target and built by real dbt; `clone`,
// `schema` and `sample` branches are made from it with `dataops up --data … --from …`. In
// each, every object belongs to the branch's roles, a loader writes and dbt builds; the
// branches and the source cannot reach each other; destroying the branches leaves the source
// as it was. A copy from a source with an open session waits, then fails as documented,
// never ending that session. Real engine, real PostgreSQL, sql engine.
import { resolve } from "node:path";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "../../cli/main";
import type { Catalog } from "../../components/catalog";
import { CopyRefused, copyDatabase } from "../../components/copySql";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { environmentNames, environmentPrefix, stackNameForBranch } from "../../naming";
import { asAdmin, attempt } from "./attempt";

const root = resolve(__dirname, "..", "..");
const SOURCE = "e2e/data-source";
const MODES = ["clone", "schema", "sample"] as const;
const branchOf = (mode: string) => `e2e/data-${mode}`;
const names = (branch: string) => environmentNames(environmentPrefix(stackNameForBranch(branch)), "analytics");
const sourceDb = names(SOURCE).database;
/** Production's policy in Pulumi.prod.yaml: `sample` keeps at most this many rows of each raw table. */
const SAMPLE_ROWS = 500;
/** The source's raw tables and rows after `dataops load --force` (the loaders' own sample mode). */
const RAW = { "raw_app_db.customers": 40, "raw_app_db.orders": 1000, "raw_salesforce.account": 8, "raw_stripe.charges": 60, "raw_web_events.events": 100 };
let server: EmbeddedServer;

async function dataops(...args: string[]): Promise<{ code: number; out: string[]; text: string }> {
    const lines: string[] = [];
    const outs: string[] = [];
    const io: Io = { out: (l) => (outs.push(l), lines.push(l)), err: (l) => lines.push(l), env: {}, cwd: root, now: () => new Date(), interactive: false };
    const code = await main([...args], io);
    return { code, out: outs, text: lines.join("\n") };
}

async function connectAs(branch: string, ...identity: string[]): Promise<Client> {
    const r = await dataops("env", ...identity, "--branch", branch, "--format", "json");
    expect(r.code, r.text).toBe(0);
    const v = JSON.parse(r.out.join("\n")) as Record<string, string>;
    const c = new Client({ host: v.PGHOST, port: Number(v.PGPORT), user: v.PGUSER, password: v.PGPASSWORD, database: v.PGDATABASE });
    await c.connect();
    return c;
}

/** As `identity` of `branch`, connected to another database: the error code, or "ok". */
async function reach(branch: string, identity: string[], database: string): Promise<string> {
    const r = await dataops("env", ...identity, "--branch", branch, "--format", "json");
    const v = JSON.parse(r.out.join("\n")) as Record<string, string>;
    const c = new Client({ host: v.PGHOST, port: Number(v.PGPORT), user: v.PGUSER, password: v.PGPASSWORD, database });
    try {
        await c.connect();
        await c.end();
        return "ok";
    } catch (e) {
        return (e as { code?: string }).code ?? String(e);
    }
}

const admin = <T>(database: string, fn: (c: Client) => Promise<T>) => asAdmin(server, fn, database);

async function rowCounts(database: string, tables: readonly string[]): Promise<Record<string, number>> {
    return admin(database, async (c) => {
        const out: Record<string, number> = {};
        for (const t of tables) out[t] = (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`)).rows[0].n;
        return out;
    });
}

/** Every table, view and schema of the environment's own, with its owner. */
async function owners(database: string): Promise<Array<{ object: string; owner: string }>> {
    return admin(database, async (c) =>
        (
            await c.query<{ object: string; owner: string }>(
                `SELECT n.nspname || '.' || c.relname AS object, pg_get_userbyid(c.relowner) AS owner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname !~ '^pg_' AND c.relkind IN ('r', 'v', 'm', 'S', 'p')
                 UNION ALL SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND nspname !~ '^pg_'
                 ORDER BY 1`,
            )
        ).rows,
    );
}

/** Every role the database's catalogs name in an owner, an ACL or a default ACL. */
async function rolesNamed(database: string): Promise<string[]> {
    return admin(database, async (c) =>
        (
            await c.query<{ rolname: string }>(
                `SELECT DISTINCT r.rolname FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid
                  WHERE d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1`,
            )
        ).rows.map((r) => r.rolname),
    );
}

const sourceCounts: Record<string, number> = {};
const SOURCE_MARTS = ["marts.fct_orders", "marts.dim_customers", "staging.customers_snapshot"];

beforeAll(async () => {
    server = await ensureEmbeddedServer(root);
    for (const b of [SOURCE, ...MODES.map(branchOf)]) await dataops("destroy", "--branch", b, "--yes");
    const up = await dataops("up", "--embedded", "--branch", SOURCE);
    expect(up.code, up.text).toBe(0);
    const load = await dataops("load", "--branch", SOURCE, "--force");
    expect(load.code, load.text).toBe(0);
    const build = await dataops("dbt", "--branch", SOURCE, "build");
    expect(build.code, build.text.slice(-3000)).toBe(0);
    const snapshot = await dataops("dbt", "--branch", SOURCE, "snapshot");
    expect(snapshot.code, snapshot.text.slice(-3000)).toBe(0);
    Object.assign(sourceCounts, await rowCounts(sourceDb, [...Object.keys(RAW), ...SOURCE_MARTS]));
    expect(sourceCounts).toMatchObject(RAW);
});

afterAll(async () => {
    for (const b of [...MODES.map(branchOf), SOURCE]) await dataops("destroy", "--branch", b, "--yes");
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("branch data: clone, schema and sample from a source environment (embedded server, sql engine)", () => {
    it.each(MODES)("GIVEN the source WHEN a %s branch is made THEN its rows are as the mode says, and the summary says where they came from", async (mode) => {
        const r = await dataops("up", "--embedded", "--branch", branchOf(mode), "--data", mode, "--from", sourceDb, "--json");
        expect(r.code, r.text.slice(-3000)).toBe(0);
        const data = JSON.parse(r.out.join("\n")).environment.data;
        expect(data).toMatchObject({ mode, from: sourceDb, tables: 10, rowsEstimated: mode === "clone" });
        expect(Date.now() - Date.parse(data.at)).toBeLessThan(10 * 60_000);

        const db = names(branchOf(mode)).database;
        const counts = await rowCounts(db, [...Object.keys(RAW), ...SOURCE_MARTS]);
        if (mode === "clone") expect(counts).toEqual(sourceCounts);
        if (mode === "schema") {
            expect(Object.values(counts).every((n) => n === 0)).toBe(true);
            expect(data.rows).toBe(0);
            // Every table of every schema is empty, not only those named here.
            const all = await admin(db, async (c) => (await c.query<{ t: string }>("SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")).rows.map((x) => x.t));
            expect(Object.values(await rowCounts(db, all)).every((n) => n === 0)).toBe(true);
        }
        if (mode === "sample") {
            // Each raw table keeps at most branches.sample.rows; everything dbt built is emptied.
            const raw = Object.fromEntries(Object.entries(RAW).map(([t, n]) => [t, Math.min(n, SAMPLE_ROWS)]));
            expect(counts).toEqual({ ...raw, ...Object.fromEntries(SOURCE_MARTS.map((t) => [t, 0])) });
            expect(data.rows).toBe(Object.values(raw).reduce((a, b) => a + b, 0));
        }

        // Every object belongs to the branch's roles: loader to loader, transformer to transformer, owner to owner.
        const prefix = names(branchOf(mode)).prefix;
        const objects = await owners(db);
        expect(objects.length).toBeGreaterThan(10);
        expect(objects.filter((o) => !o.owner.startsWith(`${prefix}_`))).toEqual([]);
        expect(objects.find((o) => o.object === "raw_app_db.orders")?.owner).toBe(`${prefix}_loader_app_db`);
        expect(objects.find((o) => o.object === "marts.fct_orders")?.owner).toBe(`${prefix}_transformer`);
        expect(objects.find((o) => o.object === "staging")?.owner).toBe(`${prefix}_owner`);
        // The source's roles get nothing here: no ownership, privilege or default privilege names them.
        expect((await rolesNamed(db)).filter((role) => role.startsWith(`${names(SOURCE).prefix}_`))).toEqual([]);

        const drift = await dataops("drift", "--branch", branchOf(mode));
        expect(drift.code, drift.text).toBe(0);
    });

    it.each(MODES)("GIVEN the %s branch WHEN its loaders run and dbt builds THEN both work as the branch's roles", async (mode) => {
        const load = await dataops("load", "--branch", branchOf(mode));
        expect(load.code, load.text).toBe(0);
        expect(load.out).toContain("loaded app_db: customers 40, orders 1000 (200 more left out: sample)");
        const build = await dataops("dbt", "--branch", branchOf(mode), "build");
        expect(build.code, build.text.slice(-3000)).toBe(0);
        expect(build.text).toMatch(/Done\. PASS=26 WARN=0 ERROR=0 SKIP=0/);
        const alice = await connectAs(branchOf(mode), "--user", "alice");
        try {
            expect((await alice.query<{ n: number }>("SELECT count(*)::int AS n FROM marts.dim_customers")).rows[0].n).toBe(40);
            expect(await attempt(alice, "DELETE FROM raw_app_db.orders")).toBe("42501");
        } finally {
            await alice.end();
        }
    });

    it("GIVEN the branches and the source WHEN their roles reach across THEN neither side can connect to the other's database", async () => {
        for (const mode of MODES) {
            const db = names(branchOf(mode)).database;
            expect(await reach(branchOf(mode), ["--user", "alice"], sourceDb)).toBe("42501");
            expect(await reach(branchOf(mode), ["--loader", "app_db"], sourceDb)).toBe("42501");
            expect(await reach(SOURCE, ["--user", "alice"], db)).toBe("42501");
            expect(await reach(SOURCE, ["--loader", "app_db"], db)).toBe("42501");
            expect(await reach(SOURCE, ["--user", "bob"], db)).toBe("42501");
        }
    });

    it("GIVEN the branches WHEN listed THEN dataops ls says where each one's data came from", async () => {
        const ls = await dataops("ls", "--json");
        const rows = JSON.parse(ls.out.join("\n")) as Array<{ stack: string; data: string | null; postgres: string | null }>;
        for (const mode of MODES) expect(rows.find((r) => r.stack === stackNameForBranch(branchOf(mode)))?.data).toMatch(new RegExp(`^${mode} of ${sourceDb} at .*: 10 tables, `));
        // What each server runs, beside the pin (the versioned warehouse).
        for (const b of [SOURCE, ...MODES.map(branchOf)]) expect(rows.find((r) => r.stack === stackNameForBranch(b))?.postgres).toMatch(/^16\.\d+ \(pinned 16\.4\)$/);
        expect(rows.find((r) => r.stack === stackNameForBranch(SOURCE))?.data).toBeNull();
    });

    it("GIVEN a session open on the source WHEN a copy is made THEN it waits within copyWaitSeconds, then fails naming the database and what to do, and the session is untouched", async () => {
        const holder = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: sourceDb });
        await holder.connect();
        const target = "e2e_data_busy_copy";
        const catalog = (waitSeconds: number): Catalog => ({
            database: { name: target, owner: server.user, copy: { mode: "clone", from: sourceDb, via: "template", rawSchemas: [], waitSeconds } },
            roles: {},
            schemas: {},
            grants: {},
            defaults: {},
        });
        const conn = { host: server.host, port: server.port, user: server.user, password: server.password, sslMode: "disable" };
        try {
            const started = Date.now();
            const refused = await copyDatabase(conn, catalog(2)).catch((e: unknown) => e);
            expect(refused).toBeInstanceOf(CopyRefused);
            expect((refused as Error).message).toBe(
                `branches.templateDatabase: "${sourceDb}" on ${server.host}:${server.port} had 1 other session(s) open (users: ${server.user}) for the 2s the copy waits (branches.copyWaitSeconds). ` +
                    "PostgreSQL copies a database only while no one else is connected to it, and dataops never ends anyone's session. " +
                    "Copy from a database nobody connects to instead (for example a nightly snapshot of production, made with CREATE DATABASE … TEMPLATE, named in branches.templateDatabase), or raise branches.copyWaitSeconds; then run up again.",
            );
            expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
            // The source's session was never ended.
            expect((await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM raw_app_db.orders")).rows[0].n).toBe(1000);
            expect(await admin("postgres", async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [target])).rowCount)).toBe(0);

            // A session that ends while the copy waits: the copy goes ahead.
            setTimeout(() => void holder.end(), 1500);
            await copyDatabase(conn, catalog(30));
            expect(await admin("postgres", async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [target])).rowCount)).toBe(1);
        } finally {
            await holder.end().catch(() => undefined);
            await admin("postgres", (c) => c.query(`DROP DATABASE IF EXISTS ${target}`));
        }
    });

    it("GIVEN --from on production's shared server, or a database that is not there THEN up refuses before any stack exists", async () => {
        const shared = await dataops("up", "--branch", "e2e/data-refused", "--data", "clone", "--from", sourceDb);
        expect(shared.code).toBe(2);
        expect(shared.text).toContain(`--from ${sourceDb}: names a database on the embedded server only (npm run up, or --embedded); on production's shared server a branch copies branches.templateDatabase`);
        const missing = await dataops("up", "--embedded", "--branch", "e2e/data-refused", "--data", "sample");
        expect(missing.code).toBe(2);
        expect(missing.text).toContain(
            `branches.templateDatabase: there is no database "analytics_nightly" on the server ${server.host}:${server.port} to copy for data mode sample (production's policy in Pulumi.prod.yaml; on the embedded server, name a local database with --from)`,
        );
        const ls = await dataops("ls", "--json");
        expect(ls.out.join("\n")).not.toContain(stackNameForBranch("e2e/data-refused"));
    });

    it("GIVEN the branches WHEN destroyed THEN the source is exactly as it was", async () => {
        for (const mode of MODES) {
            const r = await dataops("destroy", "--branch", branchOf(mode), "--yes");
            expect(r.code, r.text).toBe(0);
        }
        expect(await rowCounts(sourceDb, [...Object.keys(RAW), ...SOURCE_MARTS])).toEqual(sourceCounts);
        const prefix = names(SOURCE).prefix;
        expect((await owners(sourceDb)).filter((o) => !o.owner.startsWith(`${prefix}_`))).toEqual([]);
        expect(await admin("postgres", async (c) => (await c.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'br_e2e_data_%' AND NOT starts_with(rolname, $1) ORDER BY 1", [prefix])).rows)).toEqual([]);
        const drift = await dataops("drift", "--branch", SOURCE);
        expect(drift.code, drift.text).toBe(0);
        const alice = await connectAs(SOURCE, "--user", "alice");
        try {
            expect((await alice.query<{ n: number }>("SELECT count(*)::int AS n FROM marts.fct_orders")).rows[0].n).toBe(sourceCounts["marts.fct_orders"]);
        } finally {
            await alice.end();
        }
    });
});
