// The committed stacks, run through the real program under mocks: what production,
// dev and a branch would create, and the policies each must meet.
import * as pulumi from "@pulumi/pulumi";
import { beforeEach, describe, expect, it } from "vitest";
import { byType, COMMENT_TYPE, installMocks, MOCK_ADMIN_PASSWORD, named, promiseOf, settle, type Recorded } from "./mocks";
import { readStackFile } from "../config/stackFiles";
import { ConfigError } from "../config/errors";
import { defineEnvironment, stackValues } from "../program";

const recorded: Recorded[] = installMocks("prod");
const production = readStackFile("Pulumi.prod.yaml").values;
const dev = readStackFile("Pulumi.dev.yaml").values;
const build = { projectVersion: "0.1.0", commit: "0123abc" };
const local = { host: "localhost", port: 54329, sslMode: "disable" };

beforeEach(() => {
    recorded.length = 0;
});

async function run(stack: string, values: Record<string, unknown>, extra: { production?: Record<string, unknown>; serverAdminPassword?: string } = {}) {
    const p = defineEnvironment({ stack, values, build, ...extra });
    const summary = await promiseOf(p.platform.summary);
    await settle();
    return { ...p, summary };
}

function isProtected(r: pulumi.Resource): boolean {
    return (r as unknown as { __protect?: boolean }).__protect === true;
}

/** Print the URN of the offending resource, the way policy packs do. */
function offenders(rs: Recorded[], ok: (r: Recorded) => boolean): string[] {
    return rs.filter((r) => !ok(r)).map((r) => r.urn);
}

describe("production (Pulumi.prod.yaml)", () => {
    it("GIVEN the committed prod stack WHEN it runs THEN the warehouse is protected, encrypted, backed up and private", async () => {
        const { platform } = await run("prod", production);
        const cluster = named(recorded, "prod-warehouse-cluster");
        expect(cluster.inputs).toMatchObject({
            engine: "aurora-postgresql",
            engineVersion: "16.4",
            storageEncrypted: true,
            deletionProtection: true,
            manageMasterUserPassword: true,
            backupRetentionPeriod: 14,
            skipFinalSnapshot: false,
            clusterIdentifier: "prod-warehouse",
            // Production's engine changes major only when its file says so (warehouse.upgrade).
            allowMajorVersionUpgrade: false,
            applyImmediately: false,
        });
        expect(cluster.inputs.restoreToPointInTime).toBeUndefined();
        expect(named(recorded, "prod-warehouse-params").inputs).toMatchObject({ name: "prod-warehouse-pg16", family: "aurora-postgresql16" });
        const instances = byType(recorded, "aws:rds/clusterInstance:ClusterInstance");
        expect(instances.map((i) => i.name)).toEqual(["prod-warehouse-instance-0", "prod-warehouse-instance-1"]);
        expect(offenders(instances, (i) => i.inputs.publiclyAccessible === false)).toEqual([]);
        // protect is a resource option: the mocks do not see it, the resource does.
        expect(isProtected(platform.warehouse.storage!)).toBe(true);
        expect(isProtected(platform.database.database)).toBe(true);
        expect(named(recorded, "prod-warehouse-params").inputs.parameters).toContainEqual({ name: "rds.force_ssl", value: "1" });
        const sg = named(recorded, "prod-warehouse-sg");
        expect(JSON.stringify(sg.inputs.ingress)).not.toContain("0.0.0.0/0");
    });

    it("GIVEN a major upgrade acknowledged in production's file WHEN it runs THEN AWS may upgrade, with a parameter group of the new family made beside the old one", async () => {
        const w = production.warehouse as Record<string, unknown>;
        await run("prod", { ...production, warehouse: { ...w, engineVersion: "17.2", upgrade: { allowMajor: true, applyImmediately: true } } });
        expect(named(recorded, "prod-warehouse-cluster").inputs).toMatchObject({ engineVersion: "17.2", allowMajorVersionUpgrade: true, applyImmediately: true });
        // Another name per family: the new group exists before the cluster moves to it, the old one goes after.
        expect(named(recorded, "prod-warehouse-params").inputs).toMatchObject({ name: "prod-warehouse-pg17", family: "aurora-postgresql17" });
        expect(byType(recorded, "aws:rds/clusterInstance:ClusterInstance").map((i) => [i.inputs.engineVersion, i.inputs.applyImmediately])).toEqual([
            ["17.2", true],
            ["17.2", true],
        ]);
    });

    it("GIVEN prod WHEN it runs THEN every taggable AWS resource records the environment, version and commit", async () => {
        await run("prod", production);
        // Secret versions, inline role policies and scheduler schedules take no tags in AWS.
        const untaggable = ["aws:secretsmanager/secretVersion:SecretVersion", "aws:iam/rolePolicy:RolePolicy", "aws:scheduler/schedule:Schedule"];
        const taggable = recorded.filter((r) => r.type.startsWith("aws:") && !untaggable.includes(r.type));
        expect(taggable.length).toBeGreaterThan(10);
        expect(
            offenders(taggable, (r) => {
                const tags = r.inputs.tags as Record<string, string> | undefined;
                return tags?.["dataops:commit"] === "0123abc" && tags?.["dataops:version"] === "0.1.0" && tags?.["dataops:environment"] === "prod";
            }),
        ).toEqual([]);
        expect(named(recorded, "prod-db-comment").inputs.comment).toBe("dataops environment prod (production); dataops-environments 0.1.0, commit 0123abc");
        expect(byType(recorded, COMMENT_TYPE)).toHaveLength(1);
    });

    it("GIVEN prod WHEN it runs THEN the managed master password feeds the provider as a secret", async () => {
        const { platform } = await run("prod", production);
        expect(await promiseOf(platform.warehouse.adminPassword)).toBe(MOCK_ADMIN_PASSWORD);
        expect(await pulumi.isSecret(platform.warehouse.adminPassword)).toBe(true);
        expect(await promiseOf(platform.warehouse.host)).toBe("prod-warehouse-cluster.cluster.example");
    });

    it("GIVEN prod's loaders WHEN it runs THEN meltano, airbyte and image loaders are scheduled Fargate tasks and fivetran gets connection details only", async () => {
        const { summary, platform } = await run("prod", production);
        expect(Object.fromEntries(Object.entries(summary.loaders).map(([n, l]) => [n, [l.runtime, l.mode]]))).toEqual({
            salesforce: ["fargate", "scheduled"],
            app_db: ["fargate", "scheduled"],
            stripe: ["none", "scheduled"],
            web_events: ["fargate", "scheduled"],
        });
        const schedules = byType(recorded, "aws:scheduler/schedule:Schedule");
        expect(schedules.map((s) => [s.name, s.inputs.state, s.inputs.scheduleExpression])).toEqual([
            ["prod-loader-salesforce-schedule", "ENABLED", "cron(0 */6 * * ? *)"],
            ["prod-loader-app_db-schedule", "ENABLED", "cron(15 * * * ? *)"],
            ["prod-loader-web_events-schedule", "ENABLED", "cron(*/30 * * * ? *)"],
        ]);
        const stripe = await promiseOf(platform.loaders.stripe.connection);
        expect(stripe).toMatchObject({ database: "prod_analytics", schema: "raw_stripe", user: "prod_loader_stripe", port: 5432 });
        expect(await pulumi.isSecret(platform.loaders.stripe.connection)).toBe(true);
    });
});

describe("development (Pulumi.dev.yaml)", () => {
    it("GIVEN the committed dev stack WHEN it runs THEN it uses the local server and creates no cloud or container resource", async () => {
        const { summary } = await run("dev", dev, { serverAdminPassword: "pw" });
        expect(summary).toMatchObject({ kind: "development", target: "server", host: "localhost", port: 54329, database: "dev_analytics" });
        expect(recorded.filter((r) => r.type.startsWith("aws:") || r.type.startsWith("docker:"))).toEqual([]);
    });

    it("GIVEN dev without the admin password WHEN it runs THEN it is refused before anything is registered", () => {
        expect(() => defineEnvironment({ stack: "dev", values: dev, build })).toThrow("the server target needs [serverAdminPassword]");
        expect(recorded).toEqual([]);
    });
});

describe("branch environments (br-…)", () => {
    const values = { branch: "feature/orders", server: local };

    it("GIVEN a branch WHEN it runs THEN it mirrors production on the branch target with nothing protected and its TTL recorded", async () => {
        const { summary, environment, platform } = await run("br-feature-orders_7d1f0c2e", { ...values, branch: undefined }, { production, serverAdminPassword: "pw" });
        expect(environment.kind).toBe("branch");
        expect(summary).toMatchObject({ kind: "branch", target: "server", ttl: "72h", engineVersion: "16.4" });
        expect(summary.schemas).toEqual(["staging", "marts", "raw_salesforce", "raw_app_db", "raw_stripe", "raw_web_events"]);
        expect(Object.keys(summary.users)).toEqual(["alice", "bob"]);
        expect(recorded.filter((r) => r.type.startsWith("aws:"))).toEqual([]);
        expect(environment.config.warehouse.protection).toEqual({ deletionProtection: false, protect: false });
        expect(isProtected(platform.database.database)).toBe(false);
        expect(summary.loaders.salesforce.mode).toBe("sample");
        expect(summary.loaders.app_db.mode).toBe("sample");
        expect(summary.loaders.web_events.mode).toBe("paused");
        expect(platform.warehouse).toBeDefined();
    });

    it("GIVEN a branch WHEN it runs THEN every name carries its prefix so it cannot collide with production's on a shared server", async () => {
        // Without a server of its own, a branch goes to production's shared branch server.
        const shared = await run("br-feature-orders_7d1f0c2e", {}, { production, serverAdminPassword: "pw" });
        expect(shared.summary.host).toBe("branches-pg.internal.acme.example");
        const ok = await run("br-main", { server: local }, { production, serverAdminPassword: "pw" });
        const names = [ok.summary.database, ...Object.values(ok.summary.roles), ...Object.values(ok.summary.loaders).map((l) => l.role)];
        expect(names.every((n) => n.startsWith("br_main_b4144f9f_"))).toBe(true);
        expect(names.every((n) => Buffer.byteLength(n) <= 63)).toBe(true);
    });

    it("GIVEN production's loader secrets WHEN a branch runs THEN the branch gets none of them", async () => {
        const { platform } = await run("br-main", { server: local }, { production, serverAdminPassword: "pw" });
        await settle();
        const secretValues = await Promise.all(Object.values(platform.loaders).map((l) => promiseOf(l.connection)));
        expect(secretValues.every((c) => c.password.startsWith("generated-"))).toBe(true);
        expect(recorded.filter((r) => r.type === "aws:secretsmanager/secretVersion:SecretVersion")).toEqual([]);
    });

    it("GIVEN a branch on aws with data: clone WHEN it runs THEN its cluster is a copy-on-write clone of production's, capped and unprotected, and production's database becomes the branch's", async () => {
        const policy = { ...(production.branches as object), target: "aws", data: "clone" };
        const { summary } = await run("br-main", { sqlEngine: "sql" }, { production: { ...production, branches: policy } });
        const cluster = named(recorded, "br_main_b4144f9f-warehouse-cluster");
        expect(cluster.inputs).toMatchObject({
            clusterIdentifier: "br-main-b4144f9f-warehouse",
            deletionProtection: false,
            skipFinalSnapshot: true,
            backupRetentionPeriod: 1,
            // The clone's master password is the branch's own, made and kept by AWS, not production's.
            manageMasterUserPassword: true,
            // A branch rehearses version changes at once, a major one included.
            allowMajorVersionUpgrade: true,
            applyImmediately: true,
            restoreToPointInTime: { sourceClusterIdentifier: "prod-warehouse", restoreType: "copy-on-write", useLatestRestorableTime: true },
        });
        // Inside the clone: production's database renamed to the branch's, made the branch's own (components/copySql.ts).
        const catalog = named(recorded, "br_main_b4144f9f-catalog").inputs.catalog as { database: { name: string; copy: unknown } };
        expect(catalog.database.name).toBe("br_main_b4144f9f_analytics");
        expect(catalog.database.copy).toEqual({
            mode: "clone",
            via: "rename",
            from: "prod_analytics",
            cluster: "prod-warehouse",
            rawSchemas: ["raw_app_db", "raw_salesforce", "raw_stripe", "raw_web_events"],
            waitSeconds: 60,
        });
        expect(summary.database).toBe("br_main_b4144f9f_analytics");
        expect(byType(recorded, "aws:rds/clusterInstance:ClusterInstance").map((i) => i.inputs.instanceClass)).toEqual(["db.t4g.medium"]);
        const schedules = byType(recorded, "aws:scheduler/schedule:Schedule");
        expect(schedules.map((s) => s.inputs.state)).toEqual(["ENABLED", "ENABLED", "DISABLED"]);
    });

    it("GIVEN a data mode that copies WHEN the provider engine would run it THEN it is refused before any object is made", async () => {
        const policy = { ...(production.branches as object), data: "sample" };
        expect(() => defineEnvironment({ stack: "br-main", values: { server: local }, production: { ...production, branches: policy }, build, serverAdminPassword: "pw" })).toThrow(
            "branches.data sample needs the sql engine (dataops:sqlEngine: sql), which makes the copy the branch's own; the provider engine cannot",
        );
    });

    it("GIVEN a branch stack that sets content keys WHEN it runs THEN it is refused before any resource is registered", () => {
        expect(() => defineEnvironment({ stack: "br-main", values: { server: local, loaders: [] }, production, build, serverAdminPassword: "pw" })).toThrow(ConfigError);
        expect(recorded).toEqual([]);
    });
});

describe("config errors", () => {
    it("GIVEN an injection attempt in a schema name WHEN the program runs THEN nothing is registered and the key is named", () => {
        const bad = { ...dev, warehouse: { ...(dev.warehouse as object), schemas: ["staging", "marts; DROP DATABASE prod"] } };
        let error: unknown;
        try {
            defineEnvironment({ stack: "dev", values: bad, build, serverAdminPassword: "pw" });
        } catch (e) {
            error = e;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems).toEqual([
            'dataops:warehouse.schemas[1]: "marts; DROP DATABASE prod" is not a valid schema name (lowercase letters, digits and _, starting with a letter, not starting with pg_; at most 40 characters)',
        ]);
        expect(recorded).toEqual([]);
    });

    it("GIVEN Pulumi's flat config map WHEN read THEN objects are parsed and secret keys left out", () => {
        expect(
            stackValues({ "dataops:warehouse": '{"target":"server"}', "dataops:branch": "main", "dataops:serverAdminPassword": "s3cret", "aws:region": "eu-west-1" }),
        ).toEqual({ warehouse: { target: "server" }, branch: "main" });
    });
});
