// The statements a branch copy runs, where no real server can show them here: an Aurora
// copy-on-write clone (the `aws` target). The clone arrives with production's roles and
// their passwords; the exact SQL below disables them and hands production's database to the
// branch. The same code runs against real PostgreSQL for server copies (test/e2e/data.test.ts).
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { Catalog } from "../components/catalog";
import { copyDatabase, heirOf, undoCopy } from "../components/copySql";

// Hoisted with vi.mock, which runs before the imports below.
const { statements, replies } = vi.hoisted(() => ({
    statements: [] as Array<{ sql: string; params?: unknown[] }>,
    replies: [] as Array<[RegExp, Array<Record<string, unknown>>]>,
}));

// One recording session stands in for every connection the copy opens.
vi.mock("../components/pgSession", () => {
    const client = {
        escapeIdentifier: (s: string) => `"${s.replace(/"/g, '""')}"`,
        escapeLiteral: (s: string) => `'${s.replace(/'/g, "''")}'`,
        async query(sql: string, params?: unknown[]) {
            statements.push({ sql: sql.replace(/\s+/g, " ").trim(), ...(params ? { params } : {}) });
            const rows = replies.find(([re]) => re.test(sql))?.[1] ?? [];
            return { rows, rowCount: rows.length };
        },
    };
    return {
        withClient: async (_conn: unknown, _db: string, fn: (c: unknown) => Promise<unknown>) => fn(client),
        transaction: async (c: { query(s: string): Promise<unknown> }, fn: () => Promise<unknown>) => {
            await c.query("BEGIN");
            const r = await fn();
            await c.query("COMMIT");
            return r;
        },
    };
});


const BR = "br_main_b4144f9f";
const conn = { host: "br-main-b4144f9f-warehouse.cluster.example", port: 5432, user: "dataops_admin", password: "from-secrets-manager", sslMode: "require" };
const catalog: Catalog = {
    database: {
        name: `${BR}_analytics`,
        owner: `${BR}_owner`,
        copy: { mode: "clone", via: "rename", from: "prod_analytics", cluster: "prod-warehouse", rawSchemas: ["raw_app_db", "raw_stripe"], waitSeconds: 60 },
    },
    roles: {
        [`${BR}_owner`]: { login: false, memberOf: [] },
        [`${BR}_transformer`]: { login: false, memberOf: [] },
        [`${BR}_loader_app_db`]: { login: true, memberOf: [] },
        [`${BR}_loader_stripe`]: { login: true, memberOf: [] },
        [`${BR}_alice`]: { login: true, memberOf: [`${BR}_transformer`] },
    },
    schemas: { staging: { owner: `${BR}_owner` }, raw_app_db: { owner: `${BR}_owner` }, raw_stripe: { owner: `${BR}_owner` } },
    grants: {
        "schema raw_app_db": { role: `${BR}_loader_app_db`, objectType: "schema", schema: "raw_app_db", privileges: ["CREATE", "USAGE"] },
        "schema staging": { role: `${BR}_transformer`, objectType: "schema", schema: "staging", privileges: ["CREATE", "USAGE"] },
    },
    defaults: {},
};

beforeEach(() => {
    statements.length = 0;
    replies.length = 0;
});

describe("an Aurora clone becomes the branch's (copySql, via rename)", () => {
    it("GIVEN a clone of production's cluster WHEN the branch's database is made THEN production's logins are disabled and its database is renamed to the branch's, in one transaction", async () => {
        replies.push(
            [/pg_get_userbyid\(datdba\)/, [{ owner: "prod_owner" }]],
            [/FROM pg_roles\s+WHERE rolcanlogin/, [{ rolname: "prod_alice" }, { rolname: "prod_bob" }, { rolname: "prod_loader_app_db" }, { rolname: "prod_loader_stripe" }]],
        );
        const copied = await copyDatabase(conn, catalog);
        expect(copied).toEqual({ spec: catalog.database.copy, sourceOwner: "prod_owner" });
        expect(statements).toEqual([
            { sql: "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1", params: ["prod_analytics"] },
            { sql: "BEGIN" },
            {
                sql: "SELECT rolname FROM pg_roles WHERE rolcanlogin AND NOT rolsuper AND rolname <> current_user AND rolname !~ '^pg_' AND NOT (rolname = ANY($1)) ORDER BY rolname",
                params: [Object.keys(catalog.roles)],
            },
            { sql: 'ALTER ROLE "prod_alice" NOLOGIN PASSWORD NULL' },
            { sql: 'ALTER ROLE "prod_bob" NOLOGIN PASSWORD NULL' },
            { sql: 'ALTER ROLE "prod_loader_app_db" NOLOGIN PASSWORD NULL' },
            { sql: 'ALTER ROLE "prod_loader_stripe" NOLOGIN PASSWORD NULL' },
            { sql: `ALTER DATABASE "prod_analytics" RENAME TO "${BR}_analytics"` },
            { sql: `ALTER DATABASE "${BR}_analytics" OWNER TO "${BR}_owner"` },
            { sql: "COMMIT" },
        ]);
    });

    it("GIVEN a clone without production's database THEN the copy is refused, naming the cluster and the database", async () => {
        await expect(copyDatabase(conn, catalog)).rejects.toThrow('branches.data: the cluster cloned from prod-warehouse has no database "prod_analytics" (production\'s database) to start the branch from');
        expect(statements.filter((s) => /^ALTER/.test(s.sql))).toEqual([]);
    });

    it("GIVEN a clone whose preparation failed WHEN it is undone THEN production's database gets its name back, so the next up starts over", async () => {
        await undoCopy(conn, catalog);
        expect(statements).toEqual([{ sql: `ALTER DATABASE "${BR}_analytics" RENAME TO "prod_analytics"` }]);
    });

    it("GIVEN a server copy that failed WHEN it is undone THEN the copy is dropped, never the source", async () => {
        await undoCopy(conn, { ...catalog, database: { ...catalog.database, copy: { ...catalog.database.copy!, via: "template" } } });
        expect(statements).toEqual([{ sql: `DROP DATABASE IF EXISTS "${BR}_analytics" WITH (FORCE)` }]);
    });
});

describe("who takes over what a source role owned (heirOf)", () => {
    it.each<[string, string | null, string]>([
        ["prod_loader_app_db", "raw_app_db", `${BR}_loader_app_db`],
        ["prod_transformer", "staging", `${BR}_transformer`],
        ["prod_owner", null, `${BR}_owner`],
        ["prod_alice", null, `${BR}_alice`],
        // A loader production has and the branch does not: its schema's writer, else the owner.
        ["prod_loader_hubspot", "raw_app_db", `${BR}_loader_app_db`],
        ["prod_loader_hubspot", "raw_hubspot", `${BR}_owner`],
        // A role of no environment (a snapshot made by hand): by schema, then the owner.
        ["etl_user", "staging", `${BR}_transformer`],
        ["etl_user", null, `${BR}_owner`],
    ])("GIVEN %s's object in %s THEN %s takes it", (role, schema, heir) => {
        expect(heirOf(catalog, "prod_owner", role, schema)).toBe(heir);
    });
});
