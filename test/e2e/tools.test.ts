// The tools a data team runs, end to end, through the dataops CLI on the real engine
// and the embedded PostgreSQL: a Singer tap piped into meltanolabs-target-postgres
// (both from PyPI) loads as each loader's own role, twice; the example dbt project
// builds as alice (the transformer) twice, then snapshots; bob (the reporter) reads
// marts and nothing else; down leaves nothing. No SQL stands in for a tool here.
//
// SQL engine: the one the CLI gives a new branch stack (provider where the postgresql plugin
// is installed, sql where it is not; DATAOPS_SQL_ENGINE chooses). The plugin cannot be built on
// a machine that reaches only package registries; the suite says which engine ran.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Client } from "pg";
import { attempt } from "./attempt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "../../cli/main";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { postgresqlPluginInstalled, sqlEngineChoice } from "../../local/workspace";
import { stackNameForBranch } from "../../naming";

const root = resolve(__dirname, "..", "..");
const BRANCH = "e2e/tools";
let server: EmbeddedServer;

function io(): Io & { lines: string[]; outs: string[] } {
    const lines: string[] = [];
    const outs: string[] = [];
    return { lines, outs, out: (l) => (outs.push(l), lines.push(l)), err: (l) => lines.push(l), env: {}, cwd: root, now: () => new Date(), interactive: false };
}

async function dataops(...args: string[]): Promise<{ code: number; out: string[]; text: string }> {
    const o = io();
    const code = await main([...args], o);
    return { code, out: o.outs, text: o.lines.join("\n") };
}

/** The connection `dataops env` prints for an identity, as a pg client. */
async function connectAs(...identity: string[]): Promise<Client> {
    const r = await dataops("env", ...identity, "--branch", BRANCH, "--format", "json");
    expect(r.code, r.text).toBe(0);
    const v = JSON.parse(r.out.join("\n")) as Record<string, string>;
    const c = new Client({ host: v.PGHOST, port: Number(v.PGPORT), user: v.PGUSER, password: v.PGPASSWORD, database: v.PGDATABASE });
    c.on("error", () => undefined); // destroy ends sessions on purpose
    await c.connect();
    return c;
}

async function count(c: Client, table: string): Promise<number> {
    return (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;
}

async function adminQuery<T extends object>(sql: string, params: unknown[] = []): Promise<T[]> {
    const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: "postgres" });
    await c.connect();
    try {
        return (await c.query<T>(sql, params)).rows;
    } finally {
        await c.end();
    }
}

const clients: Client[] = [];
const track = async (c: Promise<Client>) => {
    const client = await c;
    clients.push(client);
    return client;
};

beforeAll(async () => {
    // Said on every run, so a missing engine is never a silent pass.
    const { engine } = sqlEngineChoice(process.env);
    const other = engine === "sql" ? "provider" : "sql";
    const why = other === "provider" && !postgresqlPluginInstalled(process.env) ? "no postgresql plugin" : `one engine a run; DATAOPS_SQL_ENGINE=${other} runs it`;
    process.stderr.write(`tools e2e: engine ${engine}: runs; engine ${other}: not run (${why})\n`);
    server = await ensureEmbeddedServer(root);
    await dataops("destroy", "--branch", BRANCH, "--yes");
    const up = await dataops("up", "--embedded", "--branch", BRANCH);
    expect(up.code, up.text).toBe(0);
});

afterAll(async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    await dataops("destroy", "--branch", BRANCH, "--yes");
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("real tools in a branch environment (sql engine)", () => {
    it("GIVEN sample loaders WHEN dataops load runs twice THEN a Singer tap and target-postgres load as each loader, and the second run updates instead of adding", async () => {
        const first = await dataops("load", "--branch", BRANCH);
        expect(first.code, first.text).toBe(0);
        expect(first.out).toEqual([
            "skipped web_events: paused in branch environments (dataops load web_events --force runs it)",
            "loaded app_db: customers 40, orders 1000 (200 more left out: sample)",
            "loaded salesforce: account 8",
            "loaded stripe: charges 60",
        ]);
        const second = await dataops("load", "--branch", BRANCH);
        expect(second.code, second.text).toBe(0);
        const alice = await track(connectAs("--user", "alice", "--branch", BRANCH));
        expect(await count(alice, "raw_app_db.orders")).toBe(1000);
        expect(await count(alice, "raw_app_db.customers")).toBe(40);
        expect(await count(alice, "raw_salesforce.account")).toBe(8);
        expect(await count(alice, "raw_stripe.charges")).toBe(60);
        // The target made its tables after the grants, as the loader: default privileges let the transformer read them.
        const owners = await alice.query<{ tableowner: string }>("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'raw_app_db'");
        expect(owners.rows.map((o) => o.tableowner)).toEqual([expect.stringMatching(/^br_e2e_tools_[0-9a-f]{8}_loader_app_db$/)]);
        // No config file with a password is left behind.
        const run = join(root, ".dataops", "run");
        expect(existsSync(run) ? readdirSync(run) : []).toEqual([]);
    });

    it("GIVEN a paused loader WHEN it is named THEN load refuses without --force, and with --force loads it", async () => {
        const refused = await dataops("load", "web_events", "--branch", BRANCH);
        expect(refused.code).toBe(2);
        expect(refused.text).toContain("web_events is paused in branch environments (a branch must not hammer the source); run it anyway with --force");
        const unknown = await dataops("load", "hubspot", "--branch", BRANCH);
        expect(unknown.code).toBe(2);
        expect(unknown.text).toContain("no loader named hubspot in this environment (loaders: app_db, salesforce, stripe, web_events)");
        const forced = await dataops("load", "web_events", "--force", "--branch", BRANCH);
        expect(forced.code, forced.text).toBe(0);
        expect(forced.out).toEqual(["loaded web_events: events 100"]);
    });

    it("GIVEN loaded raw data WHEN dbt builds twice as alice, then snapshots THEN views, tables, the incremental model, the seed, the snapshot and the tests all pass", async () => {
        const first = await dataops("dbt", "--branch", BRANCH, "build");
        expect(first.code, first.text.slice(-3000)).toBe(0);
        expect(first.text).toMatch(/Done\. PASS=26 WARN=0 ERROR=0 SKIP=0/);
        // The second run takes the incremental path, which stages rows in a temporary table.
        const second = await dataops("dbt", "--branch", BRANCH, "build");
        expect(second.code, second.text.slice(-3000)).toBe(0);
        expect(second.text).toMatch(/OK created sql incremental model marts\.fct_orders \.+ \[INSERT 0 \d+/);
        const snapshot = await dataops("dbt", "--branch", BRANCH, "snapshot");
        expect(snapshot.code, snapshot.text.slice(-3000)).toBe(0);
        const docs = await dataops("dbt", "--branch", BRANCH, "--", "docs", "generate");
        expect(docs.code, docs.text.slice(-3000)).toBe(0);
        const alice = await track(connectAs("--user", "alice", "--branch", BRANCH));
        expect(await count(alice, "marts.fct_orders")).toBe(1000);
        expect(await count(alice, "staging.customers_snapshot")).toBe(40);
        // Custom schemas are used as they are (no staging_marts), and nothing else was created.
        expect((await alice.query("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1")).rows.map((r) => r.nspname)).toEqual([
            "marts", "public", "raw_app_db", "raw_salesforce", "raw_stripe", "raw_web_events", "staging",
        ]);
    });

    it("GIVEN the CI step after up WHEN it runs THEN dbt's result is added to the merge-request summary, slim CI included, and a failure is reported", async () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-ci-"));
        const state = join(dir, "prod-state");
        mkdirSync(state);
        copyFileSync(join(root, "dbt", "target", "manifest.json"), join(state, "manifest.json"));
        const ci = (env: Record<string, string>) =>
            spawnSync("sh", ["ci/dbt-build.sh", join(dir, "summary.md")], { cwd: root, env: { ...process.env, DATAOPS_BRANCH: BRANCH, ...env }, encoding: "utf8" });
        writeFileSync(join(dir, "summary.md"), "");
        const full = ci({});
        expect(full.status, full.stdout + full.stderr).toBe(0);
        const slim = ci({ DATAOPS_DBT_STATE: state });
        expect(slim.status, slim.stdout + slim.stderr).toBe(0);
        // bob only reads: dbt fails, and the summary says so with its last lines.
        const denied = ci({ DATAOPS_DBT_USER: "bob" });
        expect(denied.status).toBe(1);
        const summary = readFileSync(join(dir, "summary.md"), "utf8");
        expect(summary).toContain("#### dbt build (every model)\n\nPassed. Done. PASS=26 WARN=0 ERROR=0 SKIP=0");
        expect(summary).toContain("#### dbt build (slim CI: models changed against production's manifest, the rest deferred to production)\n\nPassed.");
        expect(summary).toMatch(/\*\*Failed\*\* \(exit 1\)[\s\S]*permission denied/);
        expect(summary).not.toMatch(/PGPASSWORD|password=/i);
    });

    it("GIVEN marts built by dbt WHEN bob (the reporter) works THEN he reads marts and is denied raw, staging and every write, temporary tables included", async () => {
        const bob = await track(connectAs("--user", "bob", "--branch", BRANCH));
        expect(await count(bob, "marts.dim_customers")).toBe(40);
        expect(await count(bob, "marts.fct_revenue_by_country")).toBe(5);
        expect(await attempt(bob, "SELECT * FROM raw_app_db.orders")).toBe("42501");
        expect(await attempt(bob, "SELECT * FROM staging.stg_app_db__orders")).toBe("42501");
        expect(await attempt(bob, "INSERT INTO marts.dim_customers (customer_id) VALUES (999)")).toBe("42501");
        expect(await attempt(bob, "DELETE FROM marts.fct_orders")).toBe("42501");
        expect(await attempt(bob, "CREATE TABLE marts.sneaky (id int)")).toBe("42501");
        expect(await attempt(bob, "CREATE TEMP TABLE scratch (id int)")).toBe("42501");
    });

    it("GIVEN the writers WHEN they reach past their grants THEN no role can create a schema, and a loader cannot read another's raw data", async () => {
        const loader = await track(connectAs("--loader", "stripe", "--branch", BRANCH));
        expect(await attempt(loader, "CREATE TEMP TABLE batch (id int)")).toBe("ok");
        expect(await attempt(loader, "CREATE SCHEMA sneaky")).toBe("42501");
        expect(await attempt(loader, "SELECT * FROM raw_app_db.orders")).toBe("42501");
        const alice = await track(connectAs("--user", "alice", "--branch", BRANCH));
        expect(await attempt(alice, "CREATE SCHEMA sneaky")).toBe("42501");
        expect(await attempt(alice, "INSERT INTO raw_stripe.charges (id) VALUES ('x')")).toBe("42501");
    });

    it("GIVEN the environment WHEN destroyed THEN no database, role or stack is left", async () => {
        await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
        const r = await dataops("destroy", "--branch", BRANCH, "--yes");
        expect(r.code, r.text).toBe(0);
        expect(await adminQuery("SELECT datname FROM pg_database WHERE datname LIKE 'br_e2e_tools%'")).toEqual([]);
        expect(await adminQuery("SELECT rolname FROM pg_roles WHERE rolname LIKE 'br_e2e_tools%'")).toEqual([]);
        const ls = await dataops("ls", "--json");
        expect(ls.out.join("\n")).not.toContain(stackNameForBranch(BRANCH));
    });
});
