import { describe, it, expect } from "vitest";
import fc from "fast-check";
import * as path from "node:path";
import { parseConfig } from "../config/environment";
import { ConfigError } from "../config/errors";
import { isIdentifier } from "../config/rules";
import { loaderSchema } from "../config/schema";
import { MAX_STACK_FILE_BYTES, parseStackFile, readStackFile } from "../config/stackFiles";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";

type Values = Record<string, unknown>;

const WAREHOUSE: Values = { engineVersion: "16.4", target: "docker" };
const ORDERS: Values = { name: "orders", tool: "image", image: "ghcr.io/acme/tap-orders:1.4.2", source: "tap-orders" };

/** The smallest config that parses: a docker warehouse and one image loader. */
const valid = (): Values => ({ warehouse: { ...WAREHOUSE }, loaders: [{ ...ORDERS }] });
const withWarehouse = (patch: Values): Values => ({ ...valid(), warehouse: { ...WAREHOUSE, ...patch } });
const withLoader = (patch: Values): Values => ({ ...valid(), loaders: [{ ...ORDERS, ...patch }] });
const withKey = (key: string, value: unknown): Values => ({ ...valid(), [key]: value });

function problemsOf(values: Values): string[] {
    try {
        parseConfig(values, "Pulumi.test.yaml");
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
    return [];
}

const SCHEMA_RULE = "(lowercase letters, digits and _, starting with a letter, not starting with pg_; at most 40 characters)";
const ENGINE_RULE = `a pinned PostgreSQL version MAJOR.MINOR with major 13, 14, 15, 16, 17, e.g. "16.4"`;
const CRON_RULE = `a five-field cron expression "minute hour day-of-month month day-of-week" using *, N, N-M, /STEP and commas, not restricting both day of month and day of week, e.g. "0 */6 * * *"`;
const IMAGE_RULE = `a container image with a pinned tag or sha256 digest (not "latest"), e.g. "ghcr.io/acme/tap-orders:1.4.2"`;
const TTL_RULE = `a duration like "72h" or "7d", at least 1h and at most 30d`;

describe("parseConfig: one exact problem line per bad input", () => {
    it.each<[string, Values, string]>([
        ["an SQL injection attempt as a schema", withLoader({ schema: "raw; drop table x" }), `dataops:loaders[0].schema: "raw; drop table x" is not a valid schema name ${SCHEMA_RULE}`],
        ["an uppercase schema", withLoader({ schema: "Raw" }), `dataops:loaders[0].schema: "Raw" is not a valid schema name ${SCHEMA_RULE}`],
        ["a pg_ schema", withLoader({ schema: "pg_raw" }), `dataops:loaders[0].schema: "pg_raw" is not a valid schema name ${SCHEMA_RULE}`],
        // Reserved schemas: public belongs to the database and PUBLIC; destroying it failed and orphaned the environment.
        ["public as a loader's schema", withLoader({ schema: "public" }), `dataops:loaders[0].schema: "public" is a reserved schema (not allowed: public, information_schema, pg_*; choose a schema of the environment's own, e.g. staging)`],
        ["public in the layout", withWarehouse({ schemas: ["staging", "public"] }), `dataops:warehouse.schemas[1]: "public" is a reserved schema (not allowed: public, information_schema, pg_*; choose a schema of the environment's own, e.g. staging)`],
        ["information_schema in the layout", withWarehouse({ schemas: ["information_schema"] }), `dataops:warehouse.schemas[0]: "information_schema" is a reserved schema (not allowed: public, information_schema, pg_*; choose a schema of the environment's own, e.g. staging)`],
        ["a 41-character schema", withLoader({ schema: "a".repeat(41) }), `dataops:loaders[0].schema: "${"a".repeat(41)}" is not a valid schema name ${SCHEMA_RULE}`],
        ["a target outside the enum", withWarehouse({ target: "gcp" }), `dataops:warehouse.target: "gcp" is not allowed (allowed: aws | docker | server)`],
        ["an unsupported major", withWarehouse({ engineVersion: "12.1" }), `dataops:warehouse.engineVersion: "12.1" is not ${ENGINE_RULE}`],
        ["a major without minor", withWarehouse({ engineVersion: "16" }), `dataops:warehouse.engineVersion: "16" is not ${ENGINE_RULE}`],
        ["latest as a version", withWarehouse({ engineVersion: "latest" }), `dataops:warehouse.engineVersion: "latest" is not ${ENGINE_RULE}`],
        ["a version as a YAML number", withWarehouse({ engineVersion: 16.4 }), `dataops:warehouse.engineVersion: 16.4 is not a string (${ENGINE_RULE})`],
        [
            "a typo at the top level",
            withKey("loaderz", []),
            "dataops:loaderz: is not a known key (allowed: warehouse, loaders, access, branches, branch, target, data, templateDatabase, server, serverAdminPassword, loaderSecrets, sqlEngine)",
        ],
        [
            "a typo in the warehouse",
            withWarehouse({ engineVersoin: "16.4" }),
            "dataops:warehouse.engineVersoin: is not a known key (allowed: engineVersion, target, database, schemas, sizing, backups, protection, upgrade, aws, docker, server)",
        ],
        [
            "a typo in a loader",
            withLoader({ shcedule: "0 * * * *" }),
            "dataops:loaders[0].shcedule: is not a known key (allowed: name, tool, version, image, source, schema, schedule, settings, secrets, branchMode)",
        ],
        ["a missing warehouse.target", { warehouse: { engineVersion: "16.4" } }, "dataops:warehouse.target: is required (allowed: aws | docker | server)"],
        ["a string for a number", withWarehouse({ sizing: { instances: "2" } }), `dataops:warehouse.sizing.instances: "2" is not a number (a whole number from 1 to 15)`],
        ["a number out of range", withWarehouse({ sizing: { instances: 0 } }), "dataops:warehouse.sizing.instances: 0 is not a whole number from 1 to 15"],
        ["a number for a string", withLoader({ source: 42 }), "dataops:loaders[0].source: 42 is not a string (an extractor or source name such as tap-salesforce)"],
        ["a string for a list", withWarehouse({ schemas: "staging" }), `dataops:warehouse.schemas: "staging" is not a list (a list of schema names)`],
        ["minute 61", withLoader({ schedule: "61 * * * *" }), `dataops:loaders[0].schedule: "61 * * * *" is not ${CRON_RULE}`],
        ["both day of month and day of week", withLoader({ schedule: "0 0 1 * 1" }), `dataops:loaders[0].schedule: "0 0 1 * 1" is not ${CRON_RULE}`],
        ["an image tagged latest", withLoader({ image: "ghcr.io/acme/tap-orders:latest" }), `dataops:loaders[0].image: "ghcr.io/acme/tap-orders:latest" is not ${IMAGE_RULE}`],
        ["an image without a tag", withLoader({ image: "ghcr.io/acme/tap-orders" }), `dataops:loaders[0].image: "ghcr.io/acme/tap-orders" is not ${IMAGE_RULE}`],
        [
            "meltano without a version",
            withKey("loaders", [{ name: "sf", tool: "meltano", source: "tap-salesforce" }]),
            `dataops:loaders[0].version: is required for tool meltano (a pinned version such as "3.5.4")`,
        ],
        [
            "two loaders with one name",
            withKey("loaders", [ORDERS, { ...ORDERS, schema: "raw_other" }]),
            `dataops:loaders[1].name: "orders" is used by another loader (loader names must be unique)`,
        ],
        [
            "a loader writing a layout schema",
            withLoader({ schema: "marts" }),
            `dataops:loaders[0].schema: "marts" is already used by warehouse.schemas[1] (schema names must be unique)`,
        ],
        [
            "a role reading a schema that does not exist",
            withKey("access", { roles: { analyst: { read: ["finance"] } } }),
            `dataops:access.roles.analyst.read[0]: "finance" matches no schema of the environment (schemas: staging, marts, raw_orders)`,
        ],
        [
            "a user in an unknown role",
            withKey("access", { users: [{ name: "carol", roles: ["admin"] }] }),
            `dataops:access.users[0].roles[0]: "admin" is not a role of this config (allowed: transformer, reporter, owner)`,
        ],
        [
            "a role named owner",
            withKey("access", { roles: { owner: { read: ["marts"] } } }),
            `dataops:access.roles.owner: "owner" is a reserved role name (not allowed: owner, loader, public, loader_*)`,
        ],
        ["a TTL over 30 days", withKey("branches", { ttl: "45d" }), `dataops:branches.ttl: "45d" is not ${TTL_RULE}`],
        ["a TTL of zero", withKey("branches", { ttl: "0h" }), `dataops:branches.ttl: "0h" is not ${TTL_RULE}`],
        [
            "allowedTargets without the target",
            withKey("branches", { target: "server", allowedTargets: ["docker", "aws"] }),
            `dataops:branches.allowedTargets: ["docker","aws"] must include branches.target (server)`,
        ],
        [
            "a clone on docker",
            withKey("branches", { target: "docker", data: "clone" }),
            `dataops:branches.data: "clone" is not available on the docker target, whose new container has nothing to copy (allowed there: empty)`,
        ],
        [
            "a server target without a server",
            withWarehouse({ target: "server" }),
            "dataops:warehouse.server: is required when warehouse.target is server (host, port, adminUser)",
        ],
    ])("GIVEN %s THEN exactly that problem is reported", (_what, values, line) => {
        expect(problemsOf(values)).toEqual([line]);
    });

    it("reports every problem at once, in a message that names the file", () => {
        // GIVEN two independent mistakes
        const values = { ...withLoader({ schema: "Raw" }), warehouse: { ...WAREHOUSE, target: "gcp" } };
        // WHEN parsed
        const error = (() => {
            try {
                parseConfig(values, "Pulumi.test.yaml");
            } catch (e) {
                return e;
            }
            return undefined;
        })();
        // THEN one ConfigError lists both, one a line
        expect(error).toBeInstanceOf(ConfigError);
        const lines = [
            `dataops:warehouse.target: "gcp" is not allowed (allowed: aws | docker | server)`,
            `dataops:loaders[0].schema: "Raw" is not a valid schema name ${SCHEMA_RULE}`,
        ];
        expect(error instanceof ConfigError && error.problems).toEqual(lines);
        expect(error instanceof ConfigError && error.message).toBe(`Pulumi.test.yaml: invalid configuration\n${lines.map((l) => `  - ${l}`).join("\n")}`);
    });
});

describe("parseConfig: defaults", () => {
    it("fills the layout, sizing, access and branch policy", () => {
        // GIVEN the minimal config  WHEN parsed
        const config = parseConfig(valid(), "Pulumi.test.yaml");
        // THEN every default is applied
        expect(config.warehouse).toEqual({
            engineVersion: "16.4",
            target: "docker",
            database: "analytics",
            schemas: ["staging", "marts"],
            sizing: { instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 },
            backups: { retentionDays: 7, window: "03:00-04:00" },
            protection: { deletionProtection: false, protect: false },
            upgrade: { allowMajor: false, applyImmediately: false },
        });
        expect(config.access).toEqual({
            roles: { transformer: { read: ["raw_*"], write: ["staging", "marts"] }, reporter: { read: ["marts"], write: [] } },
            users: [],
        });
        expect(config.branches).toEqual({
            target: "server",
            ttl: "72h",
            data: "empty",
            sample: { rows: 1000 },
            copyWaitSeconds: 60,
            allowVersionAhead: false,
            caps: { instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 },
            loaderMode: "paused",
        });
    });

    it("gives a loader raw_<name>, the default schedule and no branch mode of its own", () => {
        const [loader] = parseConfig(valid(), "Pulumi.test.yaml").loaders;
        expect(loader.schema).toBeUndefined();
        expect(loaderSchema(loader)).toBe("raw_orders");
        expect(loader.schedule).toBe("0 */6 * * *");
        expect(loader.settings).toEqual({});
        expect(loader.secrets).toEqual([]);
        expect(loader.branchMode).toBeUndefined();
    });

    it("keeps a loader's own schema", () => {
        const [loader] = parseConfig(withLoader({ schema: "orders_raw" }), "Pulumi.test.yaml").loaders;
        expect(loaderSchema(loader)).toBe("orders_raw");
    });
});

describe("committed stack files", () => {
    const root = path.resolve(__dirname, "..");

    it.each(["prod", "dev"])("Pulumi.%s.yaml parses and holds no secure value", (stack) => {
        const file = readStackFile(path.join(root, `Pulumi.${stack}.yaml`));
        expect(file.secureKeys).toEqual([]);
        expect(() => parseConfig(file.values, `Pulumi.${stack}.yaml`)).not.toThrow();
    });
});

describe("parseStackFile", () => {
    it("drops secure values, top-level and nested, and lists their keys", () => {
        // GIVEN a stack file with secrets at the top of a key and deep inside one
        const text = [
            "config:",
            "  aws:region: eu-west-1",
            "  dataops:loaderSecrets:",
            "    secure: AAABAKLOADERCIPHER",
            "  dataops:warehouse:",
            "    engineVersion: '16.4'",
            "    server:",
            "      host: db.internal",
            "      password:",
            "        secure: AAABANESTEDCIPHER",
            "  dataops:access:",
            "    users:",
            "      - name: alice",
            "        token: { secure: AAABALISTCIPHER }",
            "  dataops:loaders: []",
            "  dataops:branches:",
            "    ttl: 24h",
        ].join("\n");
        // WHEN read
        const file = parseStackFile(text);
        // THEN only plain dataops values remain, and the secret keys are named
        expect(file.values).toEqual({ loaders: [], branches: { ttl: "24h" } });
        expect(file.secureKeys).toEqual(["loaderSecrets", "warehouse", "access"]);
        expect(JSON.stringify(file.values)).not.toMatch(/CIPHER|secure/);
    });

    it("reads an empty file as no values", () => {
        expect(parseStackFile("")).toEqual({ values: {}, secureKeys: [] });
    });
});

describe("isIdentifier", () => {
    const candidates = fc.oneof(
        fc.string({ unit: "grapheme", maxLength: 50 }),
        fc.string({ unit: "binary", maxLength: 50 }),
        fc.stringMatching(/^[a-z][a-z0-9_;'" -]{0,45}$/),
        fc.stringMatching(/^[a-z][a-z0-9_]{0,45}$/),
    );

    it("never passes a quote, semicolon, space, dash or anything outside [a-z0-9_]", () => {
        fc.assert(
            fc.property(candidates, (s) => {
                if (!isIdentifier(s)) return;
                expect(s).toMatch(/^[a-z0-9_]+$/);
                expect(s).not.toMatch(/['";\s-]/);
            }),
            { numRuns: 2000 },
        );
    });

    it("passes every lowercase name of at most 40 characters not starting with pg_", () => {
        fc.assert(
            fc.property(fc.stringMatching(/^[a-z][a-z0-9_]{0,39}$/), (s) => {
                expect(isIdentifier(s)).toBe(!s.startsWith("pg_"));
            }),
        );
    });
});

describe("readStackFile: a file that cannot be read is named, with what to do", () => {
    const dir = () => mkdtempSync(path.join(tmpdir(), "dataops-stackfile-"));

    it("GIVEN no production file WHEN read THEN a ConfigError names it and says how to restore it", () => {
        const d = dir();
        expect(() => readStackFile(path.join(d, "Pulumi.prod.yaml"))).toThrow(ConfigError);
        expect(() => readStackFile(path.join(d, "Pulumi.prod.yaml"))).toThrow(`Pulumi.prod.yaml: invalid configuration\n  - is missing from ${d} (every environment is checked against it; restore it from git: git checkout -- Pulumi.prod.yaml)`);
    });

    it("GIVEN a YAML syntax error WHEN read THEN the file is named with the parser's line", () => {
        const d = dir();
        writeFileSync(path.join(d, "Pulumi.prod.yaml"), "config:\n  dataops:warehouse: {target: server\n");
        expect(() => readStackFile(path.join(d, "Pulumi.prod.yaml"))).toThrow(/^Pulumi\.prod\.yaml: invalid configuration\n {2}- is not valid YAML: /);
    });

    it("GIVEN a file over the size limit WHEN read THEN it is refused before parsing", () => {
        const d = dir();
        writeFileSync(path.join(d, "Pulumi.prod.yaml"), `config:\n  dataops:x: "${"y".repeat(MAX_STACK_FILE_BYTES)}"\n`);
        expect(() => readStackFile(path.join(d, "Pulumi.prod.yaml"))).toThrow("a stack file may be at most 1 MiB (it holds config, not data)");
    });
});

describe("parseConfig: the branch data policy", () => {
    const SERVER = { host: "branches-pg.internal", port: 5432, adminUser: "dataops_admin", sslMode: "require" };
    const policy = (patch: Values): Values => ({ ...valid(), branches: { target: "server", server: SERVER, ...patch } });
    it.each<[string, Values, string[]]>([
        ["a copy mode with no template", policy({ data: "sample" }), ["dataops:branches.templateDatabase: is required when branches.data is sample on the server target (the database to copy)"]],
        ["an allowed copy mode with no template", policy({ allowedData: ["empty", "clone"] }), ["dataops:branches.templateDatabase: is required when branches.data is clone on the server target (the database to copy)"]],
        ["a default outside the allowed modes", policy({ data: "clone", templateDatabase: "analytics_nightly", allowedData: ["empty"] }), ['dataops:branches.allowedData: ["empty"] must include branches.data (clone)']],
        ["the server's own database", policy({ data: "clone", templateDatabase: "template1" }), ['dataops:branches.templateDatabase: "template1" is a database of the server itself, not an environment\'s (name production\'s database, or a snapshot of it)']],
        ["postgres", policy({ data: "schema", templateDatabase: "postgres" }), ['dataops:branches.templateDatabase: "postgres" is a database of the server itself, not an environment\'s (name production\'s database, or a snapshot of it)']],
        ["another branch's database", policy({ data: "clone", templateDatabase: "br_feature_1a2b3c4d_analytics" }), ['dataops:branches.templateDatabase: "br_feature_1a2b3c4d_analytics" is a branch environment\'s database (br_…), which is disposable and another branch\'s work (name production\'s database, or a snapshot of it)']],
        ["a sample with both sizes", policy({ data: "sample", templateDatabase: "t", sample: { rows: 10, percent: 5 } }), ['dataops:branches.sample: {"rows":10,"percent":5} needs exactly one of rows or percent (e.g. rows: 1000)']],
        ["a sample percent over 100", policy({ data: "sample", templateDatabase: "t", sample: { percent: 120 } }), ["dataops:branches.sample.percent: 120 is not a percentage greater than 0 and at most 100"]],
        ["a copy wait that is not seconds", policy({ copyWaitSeconds: 1.5 }), ["dataops:branches.copyWaitSeconds: 1.5 is not a whole number from 0 to 3600"]],
        ["sample on aws", { ...valid(), warehouse: { ...WAREHOUSE, target: "aws", aws: { vpcId: "vpc-0a1b2c3d", subnetIds: ["subnet-0a1b2c3d", "subnet-0a1b2c3e"] } }, branches: { target: "aws", data: "sample" } }, ['dataops:branches.data: "sample" is not available on the aws target (allowed there: empty | clone)']],
    ])("GIVEN %s THEN exactly that problem is reported", (_name, values, expected) => {
        expect(problemsOf(values)).toEqual(expected);
    });

    it("GIVEN a valid sampling policy THEN it parses with every key", () => {
        const c = parseConfig(policy({ data: "empty", allowedData: ["empty", "sample"], templateDatabase: "analytics_nightly", sample: { percent: 2.5 }, copyWaitSeconds: 5 }), "Pulumi.test.yaml");
        expect(c.branches).toMatchObject({ data: "empty", allowedData: ["empty", "sample"], templateDatabase: "analytics_nightly", sample: { percent: 2.5 }, copyWaitSeconds: 5 });
    });
});
