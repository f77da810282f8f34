import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { expiresAt, parseConfig, resolveEnvironment, type StackInput } from "../config/environment";
import { ConfigError } from "../config/errors";
import { MirrorError, deriveBranchConfig } from "../config/mirror";
import { parseStackFile, readStackFile } from "../config/stackFiles";
import { stackNameForBranch } from "../naming";

type Values = Record<string, unknown>;

const root = path.resolve(__dirname, "..");
const production: Values = readStackFile(path.join(root, "Pulumi.prod.yaml")).values;
const development: Values = readStackFile(path.join(root, "Pulumi.dev.yaml")).values;
const prod = parseConfig(production, "Pulumi.prod.yaml");

const SERVER = { host: "localhost", port: 54329, adminUser: "postgres", sslMode: "disable" } as const;
const STACK = stackNameForBranch("feature/a");

/** A branch stack as `npm run up` leaves it: its branch and the embedded server. */
const branchInput = (values: Values = { branch: "feature/a", server: SERVER }, prodValues: Values = production): StackInput => ({
    stack: STACK,
    values,
    production: prodValues,
});
const withPolicy = (patch: Values): Values => ({ ...production, branches: { ...(production.branches as Values), ...patch } });

function refusal(input: StackInput): string[] {
    try {
        resolveEnvironment(input);
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    throw new Error(`${input.stack} was not refused`);
}

describe("a branch derived from the committed Pulumi.prod.yaml", () => {
    const env = resolveEnvironment(branchInput());
    const w = env.config.warehouse;

    it("is a branch environment of its stack", () => {
        expect([env.kind, env.stack, env.branch, env.ttl]).toEqual(["branch", STACK, "feature/a", "72h"]);
        expect(env.prefix).toMatch(/^br_feature_a_[0-9a-f]{8}$/);
    });

    it("has production's engine, database, schemas, loaders and access", () => {
        expect([w.engineVersion, w.database, w.schemas]).toEqual(["16.4", "analytics", ["staging", "marts"]]);
        expect(env.config.loaders.map((l) => [l.name, l.tool, l.version, l.image, l.schedule])).toEqual([
            ["salesforce", "meltano", "3.5.4", "ghcr.io/acme/meltano-salesforce:2024.11.2", "0 */6 * * *"],
            ["app_db", "airbyte", "3.6.28", undefined, "15 * * * *"],
            ["stripe", "fivetran", undefined, undefined, "0 * * * *"],
            ["web_events", "image", undefined, "ghcr.io/acme/tap-web-events:2.3.1", "*/30 * * * *"],
        ]);
        // Apart from the branch mode, each loader is production's, settings and secret names included.
        const sansMode = <T extends object>(l: T) => ({ ...l, branchMode: undefined });
        expect(env.config.loaders.map(sansMode)).toEqual(prod.loaders.map(sansMode));
        expect(env.config.access).toEqual(prod.access);
        expect(env.config.access.users.map((u) => u.name)).toEqual(["alice", "bob"]);
        expect(env.config.branches).toEqual(prod.branches);
    });

    it("runs on branches.target, capped, unprotected, with one day of backups and no aws settings", () => {
        expect(w.target).toBe("server");
        expect(w.server).toEqual(SERVER);
        expect(w.sizing).toEqual({ instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 });
        expect(w.protection).toEqual({ deletionProtection: false, protect: false });
        expect(w.backups).toEqual({ retentionDays: 1, window: "02:00-03:00" });
        expect(w.aws).toBeUndefined();
        expect(w.docker).toBeUndefined();
    });

    it("samples loaders by policy, except web_events which stays paused", () => {
        expect(env.loaderModes).toEqual({ salesforce: "sample", app_db: "sample", stripe: "sample", web_events: "paused" });
        expect(env.config.loaders.map((l) => l.branchMode)).toEqual(["sample", "sample", "sample", "paused"]);
    });

    it("lists every difference from production with its reason", () => {
        expect(env.differences.map((d) => [d.path, d.reason])).toEqual([
            ["warehouse.target", "branches.target"],
            ["warehouse.sizing", "branches.caps"],
            ["warehouse.backups.retentionDays", "branch environments are disposable"],
            ["warehouse.protection", "branch environments are disposable"],
            ["warehouse.upgrade", "branch environments are disposable"],
            ["warehouse.aws", "branches.target"],
            ["warehouse.server", "dataops:server (the branch stack's server)"],
            ["loaders[0].branchMode", "branches.loaderMode"],
            ["loaders[2].branchMode", "branches.loaderMode"],
        ]);
        expect(env.differences.slice(0, 3).map((d) => [d.production, d.branch])).toEqual([
            ["aws", "server"],
            [
                { instanceClass: "db.r6g.large", instances: 2, storageGb: 100 },
                { instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 },
            ],
            [14, 1],
        ]);
    });

    it("passes the schema again", () => {
        expect(() => parseConfig(env.config, "derived")).not.toThrow();
    });

    it("on --target docker gets a container and says the target came from the stack", () => {
        const docker = resolveEnvironment(branchInput({ branch: "feature/a", target: "docker" }));
        expect([docker.config.warehouse.target, docker.config.warehouse.docker, docker.config.warehouse.server]).toEqual(["docker", {}, undefined]);
        expect(docker.differences.map((d) => [d.path, d.reason])).toEqual([
            ["warehouse.target", "dataops:target (allowed by branches.allowedTargets)"],
            ["warehouse.sizing", "branches.caps"],
            ["warehouse.backups.retentionDays", "branch environments are disposable"],
            ["warehouse.protection", "branch environments are disposable"],
            ["warehouse.upgrade", "branch environments are disposable"],
            ["warehouse.aws", "branches.target"],
            ["warehouse.docker", "branches.target"],
            ["loaders[0].branchMode", "branches.loaderMode"],
            ["loaders[2].branchMode", "branches.loaderMode"],
        ]);
    });

    it("on --target aws keeps production's network, never publicly accessible", () => {
        const aws = resolveEnvironment(branchInput({ target: "aws" }));
        expect(aws.config.warehouse.aws).toEqual({ ...prod.warehouse.aws, publiclyAccessible: false });
        expect(aws.differences.map((d) => d.path)).not.toContain("warehouse.aws");
    });

    it("uses production's branches.server when the stack names none", () => {
        const mirror = deriveBranchConfig(parseConfig(withPolicy({ server: SERVER }), "Pulumi.prod.yaml"));
        expect(mirror.config.warehouse.server).toEqual(SERVER);
        expect(mirror.differences.find((d) => d.path === "warehouse.server")?.reason).toBe("branches.server");
    });
});

describe("branch data (--data, --from)", () => {
    it("GIVEN --data and --from WHEN allowed THEN the branch's policy says them, and the mirror diff names the keys that allowed them", () => {
        const env = resolveEnvironment(branchInput({ branch: "feature/a", server: SERVER, data: "sample", templateDatabase: "br_source_1a2b3c4d_analytics" }));
        expect([env.config.branches.data, env.config.branches.templateDatabase]).toEqual(["sample", "br_source_1a2b3c4d_analytics"]);
        expect(env.differences.filter((d) => d.path.startsWith("branches.")).map((d) => [d.path, d.production, d.branch, d.reason])).toEqual([
            ["branches.data", "empty", "sample", "dataops:data (allowed by branches.allowedData)"],
            ["branches.templateDatabase", "analytics_nightly", "br_source_1a2b3c4d_analytics", "dataops:templateDatabase (dataops up --from, on the embedded server)"],
        ]);
    });

    it("GIVEN a data mode production does not allow THEN it is refused, naming what is allowed", () => {
        const input = branchInput({ data: "clone", server: SERVER }, withPolicy({ allowedData: ["empty", "schema"] }));
        expect(refusal(input)).toEqual([`dataops:data: "clone" is not allowed for branch environments by production's policy (branches.allowedData; allowed: empty | schema)`]);
    });

    it("GIVEN --from the server's own database THEN it is refused", () => {
        expect(refusal(branchInput({ data: "clone", templateDatabase: "template0", server: SERVER }))).toEqual([
            `dataops:templateDatabase: "template0" is a database of the server itself, not an environment's (name production's database, or a snapshot of it)`,
        ]);
    });

    it("GIVEN a copy mode on docker THEN it is refused: a new container has nothing to copy", () => {
        expect(refusal(branchInput({ data: "schema", target: "docker" }))).toEqual(["dataops:data: docker cannot start from schema data; a new container has nothing to copy (allowed on docker: empty)"]);
    });
});

describe("refusals", () => {
    const CHANGE_IN_PROD = "is set on a branch stack, which mirrors production (change it in Pulumi.prod.yaml through a merge request)";

    it("refuses content keys on a branch stack, naming each", () => {
        expect(refusal(branchInput({ warehouse: { engineVersion: "17.2" }, loaders: [], server: SERVER }))).toEqual([
            `dataops:warehouse: ${CHANGE_IN_PROD}`,
            `dataops:loaders: ${CHANGE_IN_PROD}`,
        ]);
        expect(refusal(branchInput({ access: { users: [] } }))).toEqual([`dataops:access: ${CHANGE_IN_PROD}`]);
    });

    it("refuses a target production's policy does not allow", () => {
        // GIVEN a policy allowing server and docker  WHEN a branch asks for aws
        const input = branchInput({ target: "aws" }, withPolicy({ allowedTargets: ["server", "docker"] }));
        // THEN the refusal names the key, the value and what is allowed
        expect(refusal(input)).toEqual([`dataops:target: "aws" is not allowed for branch environments by production's policy (allowed: server | docker)`]);
    });

    it("allows only branches.target when allowedTargets is absent", () => {
        const input = branchInput({ target: "docker" }, withPolicy({ allowedTargets: undefined }));
        expect(refusal(input)).toEqual([`dataops:target: "docker" is not allowed for branch environments by production's policy (allowed: server)`]);
    });

    it("refuses a target that is not a target", () => {
        expect(refusal(branchInput({ target: "gcp" }))).toEqual([`dataops:target: "gcp" is not allowed (allowed: aws | docker | server)`]);
    });

    it("refuses a branch value that belongs to another stack", () => {
        expect(refusal(branchInput({ branch: "feature/b", server: SERVER }))).toEqual([
            `dataops:branch: "feature/b" belongs to stack ${stackNameForBranch("feature/b")}, not ${STACK}`,
        ]);
    });

    it("refuses a branch stack without production's file", () => {
        expect(refusal({ stack: STACK, values: { server: SERVER } })).toEqual(["Pulumi.prod.yaml: is required to derive a branch environment (it was not found)"]);
    });

    it("refuses a server branch with no server", () => {
        const { server: _shared, ...policyWithoutServer } = production.branches as Record<string, unknown>;
        const noShared = { ...production, branches: policyWithoutServer };
        expect(refusal(branchInput({ branch: "feature/a" }, noShared))).toEqual([
            "dataops:server: a branch on the server target needs a server: set branches.server in Pulumi.prod.yaml, or run `npm run up` (the embedded default sets dataops:server)",
        ]);
        expect(() => deriveBranchConfig(parseConfig(noShared, "Pulumi.prod.yaml"))).toThrow(MirrorError);
    });

    it("uses production's shared branch server when the branch stack names none", () => {
        const env = resolveEnvironment(branchInput({ branch: "feature/a" }));
        expect(env.config.warehouse.server).toEqual({ host: "branches-pg.internal.acme.example", port: 5432, adminUser: "dataops_admin", sslMode: "require" });
        expect(env.differences.find((d) => d.path === "warehouse.server")?.reason).toBe("branches.server");
    });

    it("refuses branch and target on prod and dev", () => {
        const onlyBranch = (k: string, fix: string) => `dataops:${k}: is only for branch stacks (br-…); ${fix}`;
        const target = onlyBranch("target", "set warehouse.target in this file instead");
        expect(refusal({ stack: "prod", values: { ...production, branch: "main", target: "aws", data: "clone" } })).toEqual([
            onlyBranch("branch", "remove it"),
            target,
            onlyBranch("data", "a branch's data policy is branches.data in Pulumi.prod.yaml"),
        ]);
        expect(refusal({ stack: "dev", values: { ...development, target: "docker" } })).toEqual([target]);
    });

    // Regression: a server production that allowed aws branches once derived target aws
    // with no warehouse.aws, a config its own schema refuses.
    it("refuses an aws branch when production has no aws settings to mirror", () => {
        const serverProd = { ...development, branches: { target: "server", allowedTargets: ["server", "aws"], server: SERVER } };
        expect(refusal({ stack: STACK, values: { target: "aws" }, production: serverProd })).toEqual([
            "dataops:target: aws needs production's warehouse.aws (VPC and subnets) to mirror, and Pulumi.prod.yaml has none (allowed here: server)",
        ]);
    });

    // Regression: unknown keys on branch stacks were ignored, so `dataops:targt: docker`
    // silently gave a server branch.
    it("refuses an unknown key (a typo) on a branch stack", () => {
        expect(refusal(branchInput({ targt: "docker", server: SERVER }))).toEqual([
            "dataops:targt: is not a known key (allowed on a branch stack: branch, target, data, templateDatabase, server, serverAdminPassword, loaderSecrets, sqlEngine)",
        ]);
    });
});

describe("production and development", () => {
    it.each([
        ["prod", production, "production"],
        ["dev", development, "development"],
    ])("%s is its own config, every loader on schedule", (stack, values, kind) => {
        const env = resolveEnvironment({ stack, values });
        expect([env.kind, env.prefix, env.differences]).toEqual([kind, stack, []]);
        expect(Object.values(env.loaderModes).every((m) => m === "scheduled")).toBe(true);
    });
});

describe("production's secrets", () => {
    it("never reach a branch", () => {
        // GIVEN production's file with loader secrets set by `pulumi config set --secret`
        const text = `${readFileSync(path.join(root, "Pulumi.prod.yaml"), "utf8")}  dataops:loaderSecrets:\n    secure: AAABAPRODCIPHERTEXT\n`;
        const file = parseStackFile(text);
        expect(file.secureKeys).toEqual(["loaderSecrets"]);
        // WHEN a branch is derived from it
        const env = resolveEnvironment(branchInput(undefined, file.values));
        // THEN neither the key nor the ciphertext is anywhere in the branch
        expect(Object.keys(file.values)).not.toContain("loaderSecrets");
        expect(Object.keys(env.config)).not.toContain("loaderSecrets");
        expect(JSON.stringify(env)).not.toMatch(/PRODCIPHERTEXT|loaderSecrets/);
    });

    it("never reach a branch even when a plain value slipped into production's values", () => {
        const env = resolveEnvironment(branchInput(undefined, { ...production, loaderSecrets: { salesforce: { TAP_SALESFORCE_CLIENT_SECRET: "hunter2" } } }));
        expect(JSON.stringify(env)).not.toMatch(/hunter2|loaderSecrets/);
    });
});

describe("expiresAt", () => {
    const from = new Date("2024-03-01T12:00:00Z");

    it("adds the branch TTL", () => {
        const env = resolveEnvironment(branchInput());
        expect(expiresAt(env.ttl ?? "", from).toISOString()).toBe("2024-03-04T12:00:00.000Z");
    });

    it.each([
        ["1h", "2024-03-01T13:00:00.000Z"],
        ["7d", "2024-03-08T12:00:00.000Z"],
        ["30d", "2024-03-31T12:00:00.000Z"],
    ])("adds %s", (ttl, expected) => {
        expect(expiresAt(ttl, from).toISOString()).toBe(expected);
    });
});

describe("size caps never grow a branch past production", () => {
    it("GIVEN production smaller than the cap WHEN derived THEN the branch keeps production's class; otherwise the cap", async () => {
        const { smallerClass } = await import("../config/mirror");
        expect(smallerClass("db.t4g.small", "db.t4g.medium")).toBe("db.t4g.small");
        expect(smallerClass("db.r6g.2xlarge", "db.t4g.medium")).toBe("db.t4g.medium");
        expect(smallerClass("db.r6g.large", "db.t4g.large")).toBe("db.t4g.large");
        expect(smallerClass("db.x2g.unknownsize", "db.t4g.medium")).toBe("db.t4g.medium");
    });
});
