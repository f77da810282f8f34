// End to end: day-2 changes. One live environment that holds data goes through a matrix
// of config changes; each must converge in one update with nothing orphaned, the data of
// untouched schemas intact, no drift, and a second update that changes nothing. Then
// drift made by hand is seen by `differences` and repaired by an update with refresh.
// Real engine, real embedded PostgreSQL; on every SQL engine that is available here.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";
import type { Client } from "pg";
import { asAdmin } from "./attempt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Catalog } from "../../components/catalog";
import { drift } from "../../components/catalogSql";
import { readStackFile } from "../../config/stackFiles";
import { type EmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { ensureLocalServer, type LocalContext, localContext, postgresqlPluginInstalled } from "../../local/workspace";
import { environmentPrefix } from "../../naming";

const root = resolve(__dirname, "..", "..");
const log = (line: string) => process.stderr.write(`${line}\n`);
const production = readStackFile(join(root, "Pulumi.prod.yaml")).values as Record<string, unknown>;

type Loader = { name: string; tool: string; source: string; schedule: string; schema?: string; branchMode?: string; version?: string; image?: string; settings?: object; secrets?: string[] };
interface Config {
    warehouse: { engineVersion: string; target: "server"; database: string; schemas: string[]; server: object };
    loaders: Loader[];
    access: { roles: Record<string, { read?: string[]; write?: string[] }>; users: Array<{ name: string; roles: string[] }> };
}

let ctx: LocalContext;
let server: EmbeddedServer;
let workDir: string;

function baseline(): Config {
    return {
        warehouse: { engineVersion: "16.4", target: "server", database: "analytics", schemas: ["staging", "marts"], server: { host: server.host, port: server.port, adminUser: server.user, sslMode: "disable" } },
        loaders: structuredClone(production.loaders as Loader[]),
        access: structuredClone(production.access as Config["access"]),
    };
}

/** Each change, applied to the previous step's config. The last one goes back to the baseline. */
const STEPS: Array<[string, (c: Config) => void]> = [
    ["add a loader", (c) => c.loaders.push({ name: "hubspot", tool: "fivetran", source: "hubspot", schedule: "0 * * * *" })],
    ["rename a loader (hubspot → crm), after it loaded a table", (c) => (c.loaders.find((l) => l.name === "hubspot")!.name = "crm")],
    ["remove a loader that owns tables", (c) => (c.loaders = c.loaders.filter((l) => l.name !== "crm"))],
    ["add a role", (c) => (c.access.roles.analyst = { read: ["marts"], write: ["staging"] })],
    ["add a user", (c) => c.access.users.push({ name: "carol", roles: ["analyst"] })],
    ["remove the user", (c) => (c.access.users = c.access.users.filter((u) => u.name !== "carol"))],
    ["remove a role that owns tables and is granted on objects", (c) => delete c.access.roles.analyst],
    ["add a layout schema", (c) => c.warehouse.schemas.push("sandbox")],
    ["add a write entry", (c) => (c.access.roles.reporter.write = ["sandbox"])],
    ["add a read entry", (c) => c.access.roles.reporter.read!.push("staging")],
    ["remove the read entry", (c) => (c.access.roles.reporter.read = ["marts"])],
    ["remove the write entry", (c) => delete c.access.roles.reporter.write],
    ["remove the layout schema", (c) => (c.warehouse.schemas = ["staging", "marts"])],
    ["change a loader's schema (stripe → raw_payments)", (c) => (c.loaders.find((l) => l.name === "stripe")!.schema = "raw_payments")],
    ["change a loader's branchMode", (c) => (c.loaders.find((l) => l.name === "web_events")!.branchMode = "sample")],
    ["a minor engine version bump", (c) => (c.warehouse.engineVersion = "16.6")],
    ["back again", (c) => Object.assign(c, baseline())],
];

const admin = <T>(fn: (c: Client) => Promise<T>, database = "postgres"): Promise<T> => asAdmin(server, fn, database);

/** A workspace of its own (its stack file goes to a temporary folder), running the project's program. */
async function stackFor(name: string, engine: string, config: Config): Promise<Stack> {
    const stack = await LocalWorkspace.createOrSelectStack({ stackName: name, workDir }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
    await stack.setAllConfig({
        "dataops:warehouse": { value: JSON.stringify(config.warehouse) },
        "dataops:loaders": { value: JSON.stringify(config.loaders) },
        "dataops:access": { value: JSON.stringify(config.access) },
        "dataops:sqlEngine": { value: engine },
        "dataops:serverAdminPassword": { value: server.password, secret: true },
    });
    return stack;
}

function engines(): Array<{ engine: string; available: boolean; why: string }> {
    const plugin = postgresqlPluginInstalled(process.env);
    return [
        { engine: "sql", available: true, why: "" },
        { engine: "provider", available: plugin, why: "no postgresql plugin" },
    ];
}

beforeAll(async () => {
    ctx = await localContext(root, log);
    server = await ensureLocalServer(root, log);
    workDir = mkdtempSync(join(tmpdir(), "dataops-changes-"));
    writeFileSync(join(workDir, "Pulumi.yaml"), `name: dataops\nruntime:\n  name: nodejs\n  options:\n    typescript: true\nmain: ${root}\n`);
    log(`changes e2e: ${engines().map((e) => `engine ${e.engine}: ${e.available ? "runs" : `not run (${e.why})`}`).join("; ")}`);
});

afterAll(async () => {
    if (workDir) rmSync(workDir, { recursive: true, force: true });
    if (server?.startedNow) await stopEmbeddedServer(root);
});

for (const { engine, available, why } of engines()) {
    describe.skipIf(!available)(`config changes on a live environment, ${engine} engine${available ? "" : ` (not run: ${why})`}`, () => {
        const name = `e2e-changes-${engine}`;
        const prefix = environmentPrefix(name);
        const database = `${prefix}_analytics`;
        let config: Config;
        let stack: Stack;

        const catalog = async (): Promise<Catalog> => {
            const resources = ((await stack.exportStack()).deployment as { resources: Array<{ type: string; outputs?: { catalog?: Catalog } }> }).resources;
            return resources.find((r) => r.type === "pulumi-nodejs:dynamic/dataops:SqlCatalog")!.outputs!.catalog!;
        };
        const count = (table: string) => admin(async (c) => Number((await c.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n), database);
        /** Tables made the way the tools make them: as the role that writes the schema. */
        const fill = (role: string, table: string, rows: number) =>
            admin(async (c) => {
                await c.query(`SET ROLE ${c.escapeIdentifier(`${prefix}_${role}`)}`);
                await c.query(`CREATE TABLE IF NOT EXISTS ${table} AS SELECT g AS id FROM generate_series(1, ${rows}) g`);
            }, database);

        /** Up once; then: no error, no drift, nothing orphaned, and a second up changes nothing. */
        async function converge(step: string) {
            stack = await stackFor(name, engine, config);
            const first = await stack.up({ color: "never" });
            expect(first.summary.result, step).toBe("succeeded");
            const second = await stack.up({ color: "never" });
            expect(Object.keys(second.summary.resourceChanges ?? {}), `${step}: the second up changed something`).toEqual(["same"]);
            if (engine === "sql") {
                const declared = await catalog();
                expect(await drift({ host: server.host, port: server.port, user: server.user, password: server.password, sslMode: "disable" }, declared), step).toEqual([]);
                // Nothing orphaned: the environment's roles and schemas are exactly the declared ones.
                const roles = await admin(async (c) => (await c.query<{ rolname: string }>("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", [`${prefix}_`])).rows.map((r) => r.rolname));
                expect(roles, step).toEqual(Object.keys(declared.roles).sort());
                const schemas = await admin(async (c) => (await c.query<{ nspname: string }>("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema') ORDER BY 1")).rows.map((r) => r.nspname), database);
                expect(schemas, step).toEqual(Object.keys(declared.schemas).sort());
            }
        }

        beforeAll(async () => {
            config = baseline();
            stack = await stackFor(name, engine, config);
            await stack.destroy({ color: "never" }).catch(() => undefined);
            await converge("baseline");
            // Data the changes must not touch: a loader's table and dbt-like tables of the transformer.
            await fill("loader_salesforce", "raw_salesforce.account", 8);
            await fill("transformer", "marts.orders", 100);
            await fill("transformer", "staging.stg_orders", 100);
        });

        afterAll(async () => {
            if (!stack) return;
            await stack.destroy({ color: "never" });
            await stack.workspace.removeStack(name);
        });

        it.each(STEPS.map(([s, f], i) => [i + 1, s, f] as const))("step %i: %s converges in one up", async (_i, step, change) => {
            change(config);
            await converge(step);
            if (step.startsWith("add a loader")) await fill("loader_hubspot", "raw_hubspot.deals", 5);
            if (step.startsWith("add a role")) await fill("analyst", "staging.analyst_notes", 3);
            if (step.startsWith("rename a loader")) {
                // The renamed loader keeps its rows only if its schema stays; with the default schema it is a new one.
                expect(await admin(async (c) => (await c.query("SELECT 1 FROM pg_namespace WHERE nspname = 'raw_hubspot'")).rowCount, database)).toBe(0);
                await fill("loader_crm", "raw_crm.deals", 5);
            }
            expect(await count("raw_salesforce.account"), step).toBe(8);
            expect(await count("marts.orders"), step).toBe(100);
            expect(await count("staging.stg_orders"), step).toBe(100);
        });

        it("GIVEN drift made by hand (grants revoked and added, a role attribute, a dropped schema, a default privilege) WHEN compared THEN each is listed, and an up with refresh repairs all of it", async () => {
            if (engine !== "sql") return; // the provider engine's drift is the engine's own refresh
            await admin(async (c) => {
                await c.query(`REVOKE USAGE ON SCHEMA marts FROM ${prefix}_reporter`);
                await c.query(`GRANT SELECT ON raw_salesforce.account TO ${prefix}_reporter`);
                await c.query(`ALTER ROLE ${prefix}_loader_stripe CONNECTION LIMIT 99`);
                await c.query("DROP SCHEMA raw_web_events CASCADE");
                await c.query(`ALTER DEFAULT PRIVILEGES FOR ROLE ${prefix}_transformer IN SCHEMA marts REVOKE SELECT ON TABLES FROM ${prefix}_reporter`);
            }, database);
            const conn = { host: server.host, port: server.port, user: server.user, password: server.password, sslMode: "disable" };
            const found = await drift(conn, await catalog());
            expect(found.map((d) => `${d.object}${d.role ? ` / ${d.role}` : ""}: ${d.expected} → ${d.actual}`).sort()).toEqual(
                [
                    `role ${prefix}_loader_stripe: connection limit 10 → connection limit 99`,
                    "schema raw_web_events: exists → missing",
                    `schema marts / ${prefix}_reporter: USAGE → none`,
                    `table raw_salesforce.account / ${prefix}_reporter: none → SELECT`,
                    `future tables of ${prefix}_transformer in marts / ${prefix}_reporter: SELECT → none`,
                    `future tables of ${prefix}_loader_web_events in raw_web_events / ${prefix}_transformer: SELECT → none`,
                ].sort(),
            );
            // Without refresh the engine does not look: nothing changes, the drift stays.
            const plain = await stack.up({ color: "never" });
            expect(Object.keys(plain.summary.resourceChanges ?? {})).toEqual(["same"]);
            expect(await drift(conn, await catalog())).toHaveLength(found.length);
            // With refresh (dataops up --refresh): one update repairs everything.
            const repaired = await stack.up({ color: "never", refresh: true });
            expect(repaired.summary.resourceChanges?.update).toBe(1);
            expect(await drift(conn, await catalog())).toEqual([]);
            expect(await count("marts.orders")).toBe(100);
        });
    });
}

describe("the versioned warehouse", () => {
    it("GIVEN a pin of another major than the server's WHEN up runs THEN the update fails before any change, naming the key, the pin and the server's version", async () => {
        const name = "e2e-version-pin";
        const config = baseline();
        config.warehouse.engineVersion = "17.2";
        const stack = await stackFor(name, "sql", config);
        try {
            await expect(stack.up({ color: "never" })).rejects.toThrow(/dataops:warehouse.engineVersion pins PostgreSQL 17.2, but the server at localhost:\d+ runs 16\.\d+ \(major 16, not 17\)/);
            const made = await admin(async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = $1 UNION ALL SELECT 1 FROM pg_roles WHERE starts_with(rolname, $2)", [`${environmentPrefix(name)}_analytics`, `${environmentPrefix(name)}_`])).rowCount);
            expect(made).toBe(0);
            // The real version is in the summary once the pin is honoured.
            config.warehouse.engineVersion = "16.4";
            const ok = await (await stackFor(name, "sql", config)).up({ color: "never" });
            expect((ok.outputs.environment.value as { serverVersion: string }).serverVersion).toMatch(/^16\.\d+$/);
        } finally {
            await stack.destroy({ color: "never" });
            await stack.workspace.removeStack(name);
        }
    });
});
