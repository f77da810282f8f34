// End to end: the real Pulumi engine (Automation API) against the real embedded
// PostgreSQL. Two branch environments side by side; the access matrix proven by
// connecting as each role; a second up changes nothing; destroy leaves nothing.
// If the engine cannot be obtained, beforeAll fails with the bootstrap's reason.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { Client } from "pg";
import { asAdmin, attempt } from "./attempt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EnvironmentSummary } from "../../components/dataPlatform";
import { type EmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { branchStack, ensureLocalServer, type LocalContext, localContext, workspace } from "../../local/workspace";
import { stackNameForBranch } from "../../naming";

const root = resolve(__dirname, "..", "..");
const BRANCHES = { a: "e2e/alpha", b: "e2e/beta" } as const;
type Env = keyof typeof BRANCHES;

interface Deployed {
    stack: Stack;
    summary: EnvironmentSummary;
    users: Record<string, string>;
    loaders: Record<string, { user: string; password: string }>;
}

const log = (line: string) => process.stderr.write(`${line}\n`);
const prodHash = () => createHash("sha256").update(readFileSync(join(root, "Pulumi.prod.yaml"))).digest("hex");

let ctx: LocalContext;
let server: EmbeddedServer;
const env = {} as Record<Env, Deployed>;
const prodBefore = prodHash();
const open: Client[] = [];
const terminated: string[] = [];

const admin = <T>(fn: (c: Client) => Promise<T>, database = "postgres"): Promise<T> => asAdmin(server, fn, database);

async function connectAs(e: Env, user: string, password: string, database = env[e].summary.database): Promise<Client> {
    const c = new Client({ host: server.host, port: server.port, user, password, database });
    // Teardown drops databases WITH (FORCE), which ends these sessions on purpose; record it, don't crash.
    c.on("error", (e: Error & { code?: string }) => {
        terminated.push(e.code ?? "unknown");
    });
    await c.connect();
    open.push(c);
    return c;
}

const asUser = (e: Env, name: string, database?: string) => connectAs(e, env[e].summary.users[name].login, env[e].users[name], database);
const asLoader = (e: Env, name: string) => connectAs(e, env[e].loaders[name].user, env[e].loaders[name].password);

async function deploy(e: Env): Promise<Deployed> {
    const stack = await branchStack(ctx, stackNameForBranch(BRANCHES[e]), BRANCHES[e], server);
    const result = await stack.up({ color: "never" });
    const o = result.outputs;
    const loaders = o.loaderConnections.value as Record<string, { user: string; password: string }>;
    return { stack, summary: o.environment.value as EnvironmentSummary, users: o.userPasswords.value as Record<string, string>, loaders };
}

async function destroyIfPresent(branch: string): Promise<void> {
    const name = stackNameForBranch(branch);
    const ws = await workspace(ctx);
    if (!(await ws.listStacks()).some((s) => s.name === name)) return;
    const stack = await branchStack(ctx, name, branch, server);
    await stack.destroy({ color: "never" });
    await ws.removeStack(name);
}

beforeAll(async () => {
    ctx = await localContext(root, log);
    server = await ensureLocalServer(root, log);
    // A run that died halfway must not make this one fail or pass by accident.
    for (const b of Object.values(BRANCHES)) await destroyIfPresent(b);
    env.a = await deploy("a");
    env.b = await deploy("b");
});

afterAll(async () => {
    await Promise.all(open.map((c) => c.end().catch(() => undefined)));
    if (ctx && server) for (const b of Object.values(BRANCHES)) await destroyIfPresent(b);
    // Leave the machine as it was: stop the server if these tests started it.
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("two branch environments on one server", () => {
    it("GIVEN two branches WHEN both are up THEN each has its own database and prefixed roles", async () => {
        expect(env.a.summary.database).not.toBe(env.b.summary.database);
        const dbs = await admin((c) => c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname = ANY($1)", [[env.a.summary.database, env.b.summary.database]]));
        expect(dbs.rowCount).toBe(2);
        const schemas = await admin((c) => c.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema' ORDER BY 1"), env.a.summary.database);
        expect(schemas.rows.map((r) => r.nspname)).toEqual(["marts", "public", "raw_app_db", "raw_salesforce", "raw_stripe", "raw_web_events", "staging"]);
        const comment = await admin((c) => c.query<{ d: string }>("SELECT shobj_description(oid, 'pg_database') AS d FROM pg_database WHERE datname = $1", [env.a.summary.database]));
        expect(comment.rows[0].d).toContain(`dataops environment ${env.a.summary.stack} (branch, branch e2e/alpha)`);
        expect(comment.rows[0].d).toMatch(/commit ([0-9a-f]{40}|unknown)/);
    });
});

describe("access matrix (connecting as each role)", () => {
    it("GIVEN a loader WHEN it writes THEN it can create and fill tables in its own raw schema only", async () => {
        const stripe = await asLoader("a", "stripe");
        expect(await attempt(stripe, "CREATE TABLE raw_stripe.charges (id int, amount numeric)")).toBe("ok");
        expect(await attempt(stripe, "INSERT INTO raw_stripe.charges VALUES (1, 9.99)")).toBe("ok");
        // Denials: other loaders' schemas, the layout schemas, public.
        expect(await attempt(stripe, "CREATE TABLE raw_salesforce.sneaky (id int)")).toBe("42501");
        expect(await attempt(stripe, "CREATE TABLE staging.sneaky (id int)")).toBe("42501");
        expect(await attempt(stripe, "CREATE TABLE marts.sneaky (id int)")).toBe("42501");
        expect(await attempt(stripe, "CREATE TABLE public.sneaky (id int)")).toBe("42501");
        // Tables created after the grants were made (default privileges must cover them).
        const salesforce = await asLoader("a", "salesforce");
        expect(await attempt(salesforce, "CREATE TABLE raw_salesforce.accounts (id int, name text)")).toBe("ok");
        expect(await attempt(salesforce, "INSERT INTO raw_salesforce.accounts VALUES (1, 'Acme')")).toBe("ok");
        expect(await attempt(stripe, "SELECT * FROM raw_salesforce.accounts")).toBe("42501");
        expect(await attempt(salesforce, "SELECT * FROM raw_stripe.charges")).toBe("42501");
    });

    it("GIVEN the transformer (user alice) WHEN it works THEN it reads every raw schema, writes staging and marts, and cannot write raw", async () => {
        const alice = await asUser("a", "alice");
        expect((await alice.query("SELECT count(*)::int AS n FROM raw_stripe.charges")).rows[0].n).toBe(1);
        expect((await alice.query("SELECT name FROM raw_salesforce.accounts")).rows).toEqual([{ name: "Acme" }]);
        expect(await attempt(alice, "CREATE TABLE staging.stg_charges AS SELECT * FROM raw_stripe.charges")).toBe("ok");
        expect(await attempt(alice, "CREATE TABLE marts.fct_revenue AS SELECT sum(amount) AS revenue FROM staging.stg_charges")).toBe("ok");
        expect(await attempt(alice, "INSERT INTO raw_stripe.charges VALUES (2, 1)")).toBe("42501");
        expect(await attempt(alice, "CREATE TABLE raw_stripe.sneaky (id int)")).toBe("42501");
        expect(await attempt(alice, "DROP TABLE raw_salesforce.accounts")).toBe("42501");
    });

    it("GIVEN the reporter (user bob) WHEN it reads THEN it reads marts only and writes nothing", async () => {
        const bob = await asUser("a", "bob");
        expect((await bob.query("SELECT revenue::text FROM marts.fct_revenue")).rows).toEqual([{ revenue: "9.99" }]);
        expect(await attempt(bob, "SELECT * FROM staging.stg_charges")).toBe("42501");
        expect(await attempt(bob, "SELECT * FROM raw_stripe.charges")).toBe("42501");
        expect(await attempt(bob, "INSERT INTO marts.fct_revenue VALUES (1)")).toBe("42501");
        expect(await attempt(bob, "CREATE TABLE marts.sneaky (id int)")).toBe("42501");
        expect(await attempt(bob, "DELETE FROM marts.fct_revenue")).toBe("42501");
    });

    it("GIVEN two environments WHEN a role of one connects to the other's database THEN it is refused", async () => {
        const refused = async (e: Env, other: Env, login: string, password: string) => {
            const c = new Client({ host: server.host, port: server.port, user: login, password, database: env[other].summary.database });
            try {
                await c.connect();
                await c.end();
                return "connected";
            } catch (err) {
                return (err as { code?: string }).code;
            }
        };
        expect(await refused("a", "b", env.a.summary.users.alice.login, env.a.users.alice)).toBe("42501");
        expect(await refused("b", "a", env.b.summary.users.bob.login, env.b.users.bob)).toBe("42501");
        expect(await refused("a", "b", env.a.loaders.stripe.user, env.a.loaders.stripe.password)).toBe("42501");
        // And passwords are per environment: alice of b is another role with another password.
        expect(env.a.users.alice).not.toBe(env.b.users.alice);
    });
});

describe("idempotence", () => {
    it("GIVEN an environment that is up WHEN up runs again THEN nothing changes", async () => {
        const again = await env.a.stack.up({ color: "never" });
        const changes = Object.fromEntries(Object.entries(again.summary.resourceChanges ?? {}).filter(([op]) => op !== "same"));
        expect(changes).toEqual({});
    });
});

describe("teardown", () => {
    it("GIVEN tables created by loaders and a session still connected WHEN both are destroyed THEN no database, role or stack of either remains", async () => {
        const lingering = await asLoader("a", "stripe");
        await lingering.query("SELECT 1");
        const b = await asLoader("b", "salesforce");
        await b.query("CREATE TABLE raw_salesforce.leads (id int)");
        const ws = await workspace(ctx);
        for (const e of ["a", "b"] as const) {
            await env[e].stack.destroy({ color: "never" });
            await ws.removeStack(env[e].summary.stack);
        }
        const prefixes = [env.a.summary.database.replace(/_analytics$/, "_%"), env.b.summary.database.replace(/_analytics$/, "_%")];
        const roles = await admin((c) => c.query("SELECT rolname FROM pg_roles WHERE rolname LIKE ANY($1)", [prefixes]));
        const dbs = await admin((c) => c.query("SELECT datname FROM pg_database WHERE datname LIKE ANY($1)", [prefixes]));
        expect(roles.rows).toEqual([]);
        // The lingering sessions were ended by the server (57P01: terminated by administrator command).
        expect(terminated).toContain("57P01");
        expect(dbs.rows).toEqual([]);
        const stacks = (await ws.listStacks()).map((s) => s.name);
        expect(stacks).not.toContain(env.a.summary.stack);
        expect(stacks).not.toContain(env.b.summary.stack);
        // Production-shaped config was read, never written, and no production stack appeared.
        expect(prodHash()).toBe(prodBefore);
        expect(stacks).not.toContain("prod");
    });
});
