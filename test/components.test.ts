// Each component on each target, under mocks: what it creates, with exact privileges
// and pinned names so a refactor cannot replace resources silently.
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { byType, installMocks, named, PASSWORD_TYPE, promiseOf, settle, type Recorded } from "./mocks";
import { readStackFile } from "../config/stackFiles";
import { accessMatrix, creators, Warehouse } from "../components";
import { defineEnvironment } from "../program";
import { parseConfig } from "../config/environment";

const recorded: Recorded[] = installMocks("dev");
const build = { projectVersion: "0.1.0", commit: "0123abc" };
const production = readStackFile("Pulumi.prod.yaml").values;
const base = { engineVersion: "16.4", sizing: { instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 }, backups: { retentionDays: 7, window: "03:00-04:00" }, protection: { deletionProtection: false, protect: false } };

beforeEach(() => {
    recorded.length = 0;
});

describe("Warehouse", () => {
    it("GIVEN the docker target WHEN created THEN it runs the pinned postgres image with a volume and a generated admin password", async () => {
        const w = new Warehouse("wh-docker", { ...base, target: "docker", physicalName: "br-x-1234", docker: {} });
        expect(await promiseOf(w.port)).toBe(55432);
        expect(await pulumi.isSecret(w.adminPassword)).toBe(true);
        await settle();
        expect(named(recorded, "wh-docker-image").inputs).toMatchObject({ name: "postgres:16.4" });
        expect(named(recorded, "wh-docker-data").inputs).toMatchObject({ name: "br-x-1234-pgdata" });
        expect(named(recorded, "wh-docker-container").inputs).toMatchObject({ name: "br-x-1234-warehouse", restart: "unless-stopped" });
        expect(byType(recorded, PASSWORD_TYPE).map((r) => r.name)).toEqual(["wh-docker-admin-password"]);
        expect(named(recorded, "wh-docker-provider").inputs).toMatchObject({ host: "localhost", port: "55432", username: "postgres", sslmode: "disable", superuser: "true" });
    });

    it("GIVEN the docker target WHEN created THEN the volume's major is recorded, and a pin of another major is refused with the upgrade's steps before the container goes", async () => {
        new Warehouse("wh-docker", { ...base, engineVersion: "17.2", target: "docker", physicalName: "br-x-1234", docker: {} });
        await settle();
        expect(named(recorded, "wh-docker-data-major").inputs).toMatchObject({ major: 17, container: "br-x-1234-warehouse", volume: "br-x-1234-pgdata" });
        const { dataMajorProvider } = await import("../components/dataMajor");
        const was = { major: 16, container: "br-x-1234-warehouse", volume: "br-x-1234-pgdata" };
        // A minor bump (16.4 to 16.8) is the same major: nothing to do, the image is replaced as before.
        expect((await dataMajorProvider.diff!("v", was, { ...was })).changes).toBe(false);
        // WHEN the major changes THEN the update (which runs before the container's, its dependent) refuses.
        const now = { ...was, major: 17 };
        expect((await dataMajorProvider.diff!("v", was, now)).changes).toBe(true);
        await expect(dataMajorProvider.update!("v", was, now)).rejects.toThrow(
            "dataops:warehouse.engineVersion: the docker volume br-x-1234-pgdata holds PostgreSQL 16 data, which a 17 server cannot open; nothing was changed (the 16 container still runs). To upgrade: 1) dump it: docker exec br-x-1234-warehouse pg_dumpall -U postgres > warehouse-16.sql;",
        );
        // A new volume (another environment's name) starts empty: any major may initialise it.
        await expect(dataMajorProvider.update!("v", was, { ...now, volume: "br-y-5678-pgdata" })).resolves.toMatchObject({ outs: { major: 17 } });
    });

    it("GIVEN the server target WHEN created THEN it only configures a provider for the existing server", async () => {
        const w = new Warehouse("wh-server", { ...base, target: "server", physicalName: "dev", server: { host: "db.internal", port: 5433, adminUser: "admin", adminPassword: "pw", sslMode: "require" } });
        expect(await promiseOf(w.host)).toBe("db.internal");
        await settle();
        expect(recorded.map((r) => r.type)).toEqual(["dataops:warehouse:Warehouse", "pulumi:providers:postgresql"]);
        expect(named(recorded, "wh-server-provider").inputs).toMatchObject({ host: "db.internal", port: "5433", username: "admin", sslmode: "require", expectedVersion: "16.4" });
    });

    it("GIVEN rds instead of aurora WHEN created THEN a single encrypted private instance with a postgres parameter group", async () => {
        new Warehouse("wh-rds", { ...base, target: "aws", physicalName: "stage", aws: { engine: "rds", vpcId: "vpc-01234567", subnetIds: ["subnet-01234567", "subnet-89abcdef"] } });
        await settle();
        expect(named(recorded, "wh-rds-params").inputs).toMatchObject({ family: "postgres16" });
        expect(named(recorded, "wh-rds-instance").inputs).toMatchObject({ engine: "postgres", storageEncrypted: true, publiclyAccessible: false, allocatedStorage: 20, manageMasterUserPassword: true });
        expect(byType(recorded, "aws:rds/cluster:Cluster")).toEqual([]);
    });

    it("GIVEN a bad physical name or missing target settings WHEN created THEN it is refused naming the argument", () => {
        expect(() => new Warehouse("bad1", { ...base, target: "server", physicalName: "Has_Underscore" })).toThrow(
            'Warehouse bad1: physicalName must be lowercase letters, digits and single hyphens, 2 to 52 characters; given "Has_Underscore"',
        );
        expect(() => new Warehouse("bad2", { ...base, target: "aws", physicalName: "ok-name" })).toThrow("Warehouse bad2: target aws needs [aws] settings; only one of [aws], [docker] or [server] applies");
    });
});

describe("AccessRoles and loaders", () => {
    const config = parseConfig(production, "Pulumi.prod.yaml");
    const schemas = ["staging", "marts", "raw_salesforce", "raw_app_db", "raw_stripe", "raw_web_events"];
    const loaders = config.loaders.map((l) => ({ name: l.name, schema: `raw_${l.name}` }));

    it("GIVEN prod's access config WHEN the matrix is computed THEN transformer reads raw and writes staging/marts, reporter reads marts, each loader writes only its schema", () => {
        expect(accessMatrix(config.access, schemas, loaders)).toEqual({
            transformer: { staging: "write", marts: "write", raw_salesforce: "read", raw_app_db: "read", raw_stripe: "read", raw_web_events: "read" },
            reporter: { marts: "read" },
            loader_salesforce: { raw_salesforce: "write" },
            loader_app_db: { raw_app_db: "write" },
            loader_stripe: { raw_stripe: "write" },
            loader_web_events: { raw_web_events: "write" },
        });
        const m = accessMatrix(config.access, schemas, loaders);
        expect(creators(m, "raw_stripe")).toEqual(["loader_stripe"]);
        expect(creators(m, "marts")).toEqual(["transformer"]);
    });

    async function branch() {
        const p = defineEnvironment({ stack: "br-main", values: { server: { host: "localhost", port: 54329 } }, production, build, serverAdminPassword: "pw" });
        await promiseOf(p.platform.summary);
        await settle();
        return p;
    }

    it("GIVEN a branch WHEN created THEN grants carry exact privilege lists, and default privileges cover tables created later", async () => {
        await branch();
        const grants = byType(recorded, "postgresql:index/grant:Grant").map((g) => [g.name.replace("br_main_b4144f9f-", ""), g.inputs.objectType, g.inputs.schema ?? null, g.inputs.privileges]);
        expect(grants).toContainEqual(["db-revoke-public-connect", "database", null, []]);
        expect(grants).toContainEqual(["db-revoke-public-schema", "schema", "public", []]);
        expect(grants).toContainEqual(["loader-stripe-schema-grant", "schema", "raw_stripe", ["CREATE", "USAGE"]]);
        expect(grants).toContainEqual(["loader-stripe-connect", "database", null, ["CONNECT", "TEMPORARY"]]);
        expect(grants).toContainEqual(["access-transformer-connect", "database", null, ["CONNECT", "TEMPORARY"]]);
        // The reporter only reads: no temporary tables; and no role gets CREATE on the database.
        expect(grants).toContainEqual(["access-reporter-connect", "database", null, ["CONNECT"]]);
        expect(grants.filter((g) => g[1] === "database" && (g[3] as string[]).includes("CREATE"))).toEqual([]);
        expect(grants).toContainEqual(["access-transformer-tables-raw_stripe", "table", "raw_stripe", ["SELECT"]]);
        expect(grants).toContainEqual(["access-transformer-schema-raw_stripe", "schema", "raw_stripe", ["USAGE"]]);
        expect(grants).toContainEqual(["access-transformer-schema-marts", "schema", "marts", ["CREATE", "USAGE"]]);
        expect(grants).toContainEqual(["access-transformer-tables-marts", "table", "marts", ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"]]);
        expect(grants).toContainEqual(["access-reporter-tables-marts", "table", "marts", ["SELECT"]]);
        // The reporter gets nothing outside marts, and no loader anything outside its own schema.
        const where = (prefix: string) => grants.filter((g) => String(g[0]).startsWith(prefix)).map((g) => String(g[2])).sort();
        expect(where("access-reporter-")).toEqual(["marts", "marts", "null"]);
        expect(where("loader-stripe-")).toEqual(["null", "raw_stripe"]);
        const defaults = byType(recorded, "postgresql:index/defaultPrivileges:DefaultPrivileges").map((d) => [d.inputs.owner, d.inputs.role, d.inputs.schema, d.inputs.privileges]);
        expect(defaults).toContainEqual(["br_main_b4144f9f_loader_stripe", "br_main_b4144f9f_transformer", "raw_stripe", ["SELECT"]]);
        expect(defaults).toContainEqual(["br_main_b4144f9f_transformer", "br_main_b4144f9f_reporter", "marts", ["SELECT"]]);
        // A writer also on its own future tables (the transformer in staging and marts).
        expect(defaults).toContainEqual(["br_main_b4144f9f_transformer", "br_main_b4144f9f_transformer", "marts", ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"]]);
        expect(defaults).toHaveLength(7);
    });

    it("GIVEN users WHEN created THEN they log in with generated secret passwords and act as their writing role", async () => {
        const p = await branch();
        expect(named(recorded, "br_main_b4144f9f-access-user-alice").inputs).toMatchObject({ name: "br_main_b4144f9f_alice", login: true, roles: ["br_main_b4144f9f_transformer"], assumeRole: "br_main_b4144f9f_transformer" });
        expect(named(recorded, "br_main_b4144f9f-access-user-bob").inputs).toMatchObject({ name: "br_main_b4144f9f_bob", roles: ["br_main_b4144f9f_reporter"] });
        expect(named(recorded, "br_main_b4144f9f-access-user-bob").inputs.assumeRole).toBeUndefined();
        expect(await pulumi.isSecret(p.platform.access.userPasswords)).toBe(true);
        expect(named(recorded, "br_main_b4144f9f-loader-stripe-role").inputs).toMatchObject({ name: "br_main_b4144f9f_loader_stripe", login: true });
    });

    it("GIVEN grants on the same object WHEN created THEN they are chained, so PostgreSQL never updates one ACL from two sessions", async () => {
        const p = await branch();
        expect(p).toBeDefined();
        // Every grant on the database waits for the previous one: loader connects and role connects form one chain.
        const onDatabase = byType(recorded, "postgresql:index/grant:Grant").filter((g) => g.inputs.objectType === "database");
        expect(onDatabase).toHaveLength(1 + 4 + 2);
    });

    it("GIVEN the docker target WHEN a loader is paused THEN its container exists but is not started", async () => {
        const prodDocker = { ...production, branches: { ...(production.branches as object), target: "docker" } };
        const p = defineEnvironment({ stack: "br-main", values: {}, production: prodDocker, build });
        await promiseOf(p.platform.summary);
        await settle();
        const containers = byType(recorded, "docker:index/container:Container");
        expect(Object.fromEntries(containers.map((c) => [c.name.replace("br_main_b4144f9f-", ""), c.inputs.start ?? "default"]))).toEqual({
            "warehouse-container": "default",
            "loader-salesforce-container": true,
            "loader-app_db-container": true,
            "loader-web_events-container": false,
        });
        expect(byType(recorded, "docker:index/remoteImage:RemoteImage").map((i) => i.inputs.name).sort()).toEqual([
            "airbyte/source-postgres:3.6.28",
            "ghcr.io/acme/meltano-salesforce:2024.11.2",
            "ghcr.io/acme/tap-web-events:2.3.1",
            "postgres:16.4",
        ]);
    });
});

describe("pinned names", () => {
    it("GIVEN the committed prod stack WHEN it runs THEN its resource names are exactly these (a rename would replace production resources)", async () => {
        const p = defineEnvironment({ stack: "prod", values: production, build });
        await promiseOf(p.platform.summary);
        await settle();
        expect(recorded.map((r) => `${r.type}::${r.name}`).sort()).toMatchSnapshot();
    });
});
