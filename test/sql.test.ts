// The in-process SQL engine: the same components, recorded into one catalog.
import { beforeEach, describe, expect, it } from "vitest";
import { byType, installMocks, promiseOf, settle, type Recorded } from "./mocks";
import { readStackFile } from "../config/stackFiles";
import { ConfigError } from "../config/errors";
import { type Catalog, differences, type LiveCatalog } from "../components/catalog";
import { toCatalog } from "../components/sql";
import { defineEnvironment } from "../program";

const recorded: Recorded[] = installMocks("br-main");
const production = readStackFile("Pulumi.prod.yaml").values;
const build = { projectVersion: "0.1.0", commit: "abc" };
const server = { host: "localhost", port: 54329, sslMode: "disable" };
const CATALOG = "pulumi-nodejs:dynamic/dataops:SqlCatalog";
const P = "br_main_b4144f9f";

beforeEach(() => {
    recorded.length = 0;
});

async function sqlBranch(): Promise<{ catalog: Catalog; inputs: Record<string, unknown> }> {
    const p = defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "sql" }, production, build, serverAdminPassword: "pw" });
    await promiseOf(p.platform.summary);
    await settle();
    const [resource] = byType(recorded, CATALOG);
    return { catalog: resource.inputs.catalog as Catalog, inputs: resource.inputs };
}

describe("sqlEngine: sql", () => {
    it("GIVEN a branch with the sql engine WHEN it runs THEN no provider is registered and every object is in one SqlCatalog", async () => {
        const { catalog, inputs } = await sqlBranch();
        expect(recorded.filter((r) => r.type.startsWith("postgresql:") || r.type === "pulumi:providers:postgresql")).toEqual([]);
        expect(byType(recorded, CATALOG).map((r) => r.name)).toEqual([`${P}-catalog`]);
        expect(recorded.filter((r) => r.type.includes("dataops:Sql") && r.type !== CATALOG)).toEqual([]);
        // owner, 4 loaders, transformer and reporter, 2 users
        expect(Object.keys(catalog.roles)).toHaveLength(1 + 4 + 2 + 2);
        expect(Object.keys(catalog.schemas).sort()).toEqual(["marts", "raw_app_db", "raw_salesforce", "raw_stripe", "raw_web_events", "staging"]);
        expect(catalog.database).toMatchObject({ name: `${P}_analytics`, owner: `${P}_owner` });
        expect(catalog.database.comment).toMatch(/dataops environment br-main/);
        expect(Object.keys(catalog.defaults)).toHaveLength(7);
        // Same privilege lists as the provider resources get, keyed so a plan names the object.
        expect(catalog.grants[`table marts to ${P}_transformer`]).toEqual({ role: `${P}_transformer`, objectType: "table", schema: "marts", privileges: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"] });
        expect(catalog.grants[`database ${P}_analytics to ${P}_reporter`].privileges).toEqual(["CONNECT"]);
        expect(catalog.grants[`database ${P}_analytics to public`].privileges).toEqual([]);
        expect(catalog.roles[`${P}_alice`]).toEqual({ login: true, memberOf: [`${P}_transformer`], assumeRole: `${P}_transformer` });
        // Passwords are a separate, secret input: the catalog itself holds none.
        expect(JSON.stringify(catalog)).not.toMatch(/generated-/);
        const sealed = inputs.passwords as { "4dabf18193072939515e22adb298388d": string; value: Record<string, string> };
        expect(sealed["4dabf18193072939515e22adb298388d"]).toBe("1b47061264138c4ac30d75fd1eb44270"); // Pulumi's secret signature
        expect(Object.keys(sealed.value).sort()).toEqual([`${P}_alice`, `${P}_bob`, `${P}_loader_app_db`, `${P}_loader_salesforce`, `${P}_loader_stripe`, `${P}_loader_web_events`]);
    });

    it("GIVEN an unknown engine WHEN the program runs THEN it is refused, naming the key and the allowed values", () => {
        expect(() => defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "psql" }, production, build, serverAdminPassword: "pw" })).toThrow(ConfigError);
        try {
            defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "psql" }, production, build, serverAdminPassword: "pw" });
        } catch (e) {
            expect((e as ConfigError).problems).toEqual(['dataops:sqlEngine: "psql" is not allowed (allowed: provider | sql)']);
        }
        expect(recorded).toEqual([]);
    });
});

describe("toCatalog", () => {
    const db = { kind: "database", args: { name: "d", owner: "o" } };
    it("GIVEN a privilege PostgreSQL does not grant on that object WHEN recorded THEN it is refused, naming what is allowed", () => {
        expect(() => toCatalog([db, { kind: "grant", args: { database: "d", role: "r", objectType: "schema", schema: "s", privileges: ["USAGE", "DROP"] } }])).toThrow(
            'privileges: allowed for schema: CREATE, USAGE; given "DROP"',
        );
        expect(() => toCatalog([db, { kind: "grant", args: { database: "d", role: "r", objectType: "view", privileges: [] } }])).toThrow(/objectType: allowed database \| schema \| table \| sequence, given "view"/);
    });
    it("GIVEN no database or two WHEN recorded THEN it is refused", () => {
        expect(() => toCatalog([])).toThrow(/exactly one, given none/);
        expect(() => toCatalog([db, { kind: "database", args: { name: "e", owner: "o" } }])).toThrow(/one per environment, given d and e/);
    });
});

describe("differences (drift)", () => {
    const desired: Catalog = {
        database: { name: "d", owner: "o" },
        roles: { o: { login: false, memberOf: [] }, r: { login: false, memberOf: [] }, u: { login: true, memberOf: ["r"], connectionLimit: 10 } },
        schemas: { marts: { owner: "o" } },
        grants: {
            "database d to r": { role: "r", objectType: "database", privileges: ["CONNECT"] },
            "schema marts to r": { role: "r", objectType: "schema", schema: "marts", privileges: ["USAGE"] },
            "table marts to r": { role: "r", objectType: "table", schema: "marts", privileges: ["SELECT"] },
        },
        defaults: { x: { owner: "o", role: "r", schema: "marts", objectType: "table", privileges: ["SELECT"] } },
    };
    const clean: LiveCatalog = {
        database: { owner: "o" },
        roles: { o: { login: false, connectionLimit: -1, memberOf: [] }, r: { login: false, connectionLimit: -1, memberOf: [] }, u: { login: true, connectionLimit: 10, memberOf: ["r"] } },
        schemas: { marts: { owner: "o" } },
        objects: [
            { object: "database", objectType: "database", owner: "o", acl: { o: ["CONNECT", "CREATE", "TEMPORARY"], r: ["CONNECT"] } },
            { object: "schema marts", objectType: "schema", schema: "marts", owner: "o", acl: { r: ["USAGE"] } },
            { object: "table marts.orders", objectType: "table", schema: "marts", owner: "o", acl: { r: ["SELECT"] } },
            // A table the grantee owns holds every privilege: never drift.
            { object: "table marts.mine", objectType: "table", schema: "marts", owner: "r", acl: { r: ["DELETE", "INSERT", "SELECT"] } },
        ],
        defaults: [{ owner: "o", schema: "marts", objectType: "table", acl: { r: ["SELECT"] } }],
    };

    it("GIVEN the server as declared WHEN compared THEN there is no drift", () => {
        expect(differences(desired, clean)).toEqual([]);
    });

    it("GIVEN a grant revoked, one added, a role attribute changed, a schema dropped and a default privilege revoked WHEN compared THEN each is named", () => {
        const live: LiveCatalog = {
            ...clean,
            roles: { ...clean.roles, u: { login: true, connectionLimit: 99, memberOf: ["r"] } },
            schemas: {},
            objects: [
                { ...clean.objects[0], acl: { o: ["CONNECT"], r: ["CONNECT"], public: ["CONNECT"] } },
                { ...clean.objects[2], acl: { r: ["SELECT", "UPDATE"] } },
            ],
            defaults: [],
        };
        expect(differences(desired, live)).toEqual([
            { object: "role u", expected: "connection limit 10", actual: "connection limit 99" },
            { object: "schema marts", expected: "exists", actual: "missing" },
            { object: "database", role: "public", expected: "none", actual: "CONNECT" },
            { object: "table marts.orders", role: "r", expected: "SELECT", actual: "SELECT, UPDATE" },
            { object: "future tables of o in marts", role: "r", expected: "SELECT", actual: "none" },
        ]);
    });

    it("GIVEN the database is gone WHEN compared THEN that is the one difference", () => {
        expect(differences(desired, { roles: {}, schemas: {}, objects: [], defaults: [] })).toEqual([{ object: "database d", expected: "exists", actual: "missing" }]);
    });
});

describe("an environment does not move between servers", () => {
    const at = (host: string, port: number) => ({ host, port, user: "postgres", password: "pw", sslMode: "disable" });
    it("GIVEN the catalog's last server WHEN the config names another (another embedded major, another host) THEN the update refuses, saying where the data is and what to do", async () => {
        const { serverMoved } = await import("../components/catalogSql");
        expect(serverMoved(at("localhost", 54329), at("localhost", 54329))).toBeUndefined();
        expect(serverMoved(undefined, at("localhost", 54329))).toBeUndefined();
        // A port read back from state as text is the same port.
        expect(serverMoved({ ...at("localhost", 54329), port: "54329" as unknown as number }, at("localhost", 54329))).toBeUndefined();
        expect(serverMoved(at("localhost", 54329), at("localhost", 54317))).toBe(
            "the environment's objects and data are on the server localhost:54329, but its config now names localhost:54317. An environment does not move between servers (a new PostgreSQL major is a new server): destroy it and bring it up again on the new server (dataops destroy, then dataops up), or point it back at its server",
        );
        expect(serverMoved(at("localhost", 5432), at("db.internal", 5432))).toMatch(/^the environment's objects and data are on the server localhost:5432, but its config now names db\.internal:5432\./);
    });
});
