// One bad config per validation rule (test/audit/fixtures/validation-*), each with the
// exact finding: the same schema and checks as the program, every problem with its file.
import { describe, it, expect } from "vitest";
import { readdirSync } from "node:fs";
import { auditProject, validateStack } from "../../audit";
import { FIXTURES, fixture } from "./helpers";

/** Fixture (without `validation-`) → [key, message] of each finding, in order. */
const EXPECTED: Record<string, Array<[string, string]>> = {
    "allowed-targets": [["dataops:branches.allowedTargets", '["docker"] must include branches.target (server)']],
    "aws-id": [["dataops:warehouse.aws.vpcId", '"my-vpc" is not an AWS id "vpc-" followed by 8 to 17 hex digits']],
    "aws-required": [["dataops:warehouse.aws", "is required when warehouse.target is aws (vpcId, subnetIds)"]],
    "backup-window": [["dataops:warehouse.backups.window", '"3am" is not a UTC window "HH:MM-HH:MM", e.g. "03:00-04:00"']],
    "branch-only-key": [["dataops:target", "is only for branch stacks (br-…); set warehouse.target in this file instead"]],
    "cidr": [["dataops:warehouse.aws.allowedCidrs[0]", '"10.20.0.0/33" is not an IPv4 CIDR block such as "10.0.0.0/16"']],
    "clone-needs-aws": [["dataops:branches.data", '"clone" on the aws target needs production on aws (a copy-on-write clone of its cluster)']],
    "cron": [["dataops:loaders[0].schedule", '"every hour" is not a five-field cron expression "minute hour day-of-month month day-of-week" using *, N, N-M, /STEP and commas, not restricting both day of month and day of week, e.g. "0 */6 * * *"']],
    "data-docker": [["dataops:branches.data", '"schema" is not available on the docker target, whose new container has nothing to copy (allowed there: empty)']],
    "duplicate-loader": [
        ["dataops:loaders[1].name", '"salesforce" is used by another loader (loader names must be unique)'],
        ["dataops:loaders[1].schema", '"raw_salesforce" is already used by loaders[0].schema (schema names must be unique)'],
    ],
    "duplicate-schema": [["dataops:loaders[1].schema", '"staging" is already used by warehouse.schemas[0] (schema names must be unique)']],
    "duplicate-user": [["dataops:access.users[1].name", '"alice" is used by another user (user names must be unique)']],
    "duration": [["dataops:branches.ttl", '"3 days" is not a duration like "72h" or "7d", at least 1h and at most 30d']],
    "engine-version": [["dataops:warehouse.engineVersion", '"12.1" is not a pinned PostgreSQL version MAJOR.MINOR with major 13, 14, 15, 16, 17, e.g. "16.4"']],
    "flag": [["dataops:warehouse.protection.protect", '"yes" is not true or false (true or false)']],
    "hostname": [["dataops:branches.server.host", '"branches pg" is not a host name or IP address']],
    "identifier": [["dataops:loaders[1].schema", '"raw; drop" is not a valid schema name (lowercase letters, digits and _, starting with a letter, not starting with pg_; at most 40 characters)']],
    "image": [["dataops:loaders[0].image", '"ghcr.io/acme/meltano-salesforce:latest" is not a container image with a pinned tag or sha256 digest (not "latest"), e.g. "ghcr.io/acme/tap-orders:1.4.2"']],
    "image-required": [["dataops:loaders[2].image", "is required for tool image (a container image with a pinned tag or digest)"]],
    "instance-class": [["dataops:warehouse.sizing.instanceClass", '"large" is not an RDS instance class such as "db.r6g.large"']],
    "integer": [["dataops:warehouse.backups.retentionDays", "40 is not a whole number from 1 to 35"]],
    "list": [["dataops:warehouse.schemas", '"staging" is not a list (a list of schema names)']],
    "not-a-stack-file": [["", "is not a Pulumi stack file (a map with a config: map)"]],
    "object": [["dataops:warehouse.backups", '"daily" is not an object (keys: retentionDays, window)']],
    "one-of": [["dataops:warehouse.target", '"gcp" is not allowed (allowed: aws | docker | server)']],
    "pattern-no-schema": [["dataops:access.roles.reporter.read[0]", '"finance" matches no schema of the environment (schemas: staging, marts, raw_salesforce, raw_stripe)']],
    "region": [["dataops:warehouse.aws.region", '"Europe" is not an AWS region such as "eu-west-1"']],
    "required": [["dataops:warehouse.engineVersion", 'is required (a pinned PostgreSQL version MAJOR.MINOR with major 13, 14, 15, 16, 17, e.g. "16.4")']],
    "reserved-role": [["dataops:access.roles.owner", '"owner" is a reserved role name (not allowed: owner, loader, public, loader_*)']],
    "schema-on-aws": [["dataops:branches.data", '"schema" is not available on the aws target (allowed there: empty | clone)']],
    "schema-pattern": [["dataops:access.roles.reporter.read[0]", '"ma*rts" is not a schema name or a prefix ending in *, e.g. "marts" or "raw_*"']],
    "secret-name": [["dataops:loaders[0].secrets[0]", '"client_secret" is not a valid setting name (upper-case letters, digits and _, starting with a letter; at most 64 characters)']],
    "secure-content": [["dataops:access", "is a secure value (only dataops:serverAdminPassword and dataops:loaderSecrets may be secret; everything else is committed text)"]],
    "server-required": [["dataops:warehouse.server", "is required when warehouse.target is server (host, port, adminUser)"]],
    "setting-key": [["dataops:loaders[0].settings", '{"start date":"2024-01-01"} has a setting name that is not letters, digits, _ . - (at most 100 characters)']],
    "source": [["dataops:loaders[0].source", '"Tap Salesforce" is not an extractor or source name (lowercase letters, digits, . _ -), e.g. "tap-salesforce"']],
    "subnets": [["dataops:warehouse.aws.subnetIds", '["subnet-0a1b2c3d"] needs at least 2 subnets in different availability zones']],
    "template-database": [["dataops:branches.templateDatabase", "is required when branches.data is clone on the server target (the database to copy)"]],
    "template-branch": [["dataops:branches.templateDatabase", '"br_feature_1a2b3c4d_analytics" is a branch environment\'s database (br_…), which is disposable and another branch\'s work (name production\'s database, or a snapshot of it)']],
    "template-system": [["dataops:branches.templateDatabase", '"template1" is a database of the server itself, not an environment\'s (name production\'s database, or a snapshot of it)']],
    "text": [["dataops:loaders[1].source", "42 is not a string (an extractor or source name such as tap-salesforce)"]],
    "unknown-key": [["dataops:colour", "is not a known key (allowed: warehouse, loaders, access, branches, branch, target, data, templateDatabase, server, serverAdminPassword, loaderSecrets, sqlEngine)"]],
    "unknown-nested-key": [["dataops:warehouse.sizing.instanceType", "is not a known key (allowed: instanceClass, instances, storageGb)"]],
    "user-is-role": [["dataops:access.users[1].name", '"reporter" collides with a role name (a user needs a name of its own)']],
    "user-role-unknown": [["dataops:access.users[0].roles[0]", '"analyst" is not a role of this config (allowed: transformer, reporter, owner)']],
    "user-roles": [["dataops:access.users[0].roles", "[] needs at least one role"]],
    "version": [["dataops:loaders[0].version", '"latest" is not a pinned version such as "3.5.4" or "v1.2.0" (not "latest")']],
    "version-required": [["dataops:loaders[0].version", 'is required for tool meltano (a pinned version such as "3.5.4")']],
    "yaml": [["", "is not valid YAML: Flow map in block collection must be sufficiently indented and end with a } at line 4, column 1"]],
};

const audit = (name: string) => auditProject(fixture(`validation-${name}`), { mirror: { skip: "not under test" }, base: { skip: "not under test" } });

describe("validation of every stack file", () => {
    it("has an expectation for every fixture and a fixture for every expectation", () => {
        const folders = readdirSync(FIXTURES).filter((n) => n.startsWith("validation-")).map((n) => n.slice("validation-".length));
        expect(folders.sort()).toEqual(Object.keys(EXPECTED).sort());
    });

    for (const [name, expected] of Object.entries(EXPECTED)) {
        it(`GIVEN ${name} THEN it reports exactly that`, () => {
            const report = audit(name);
            expect(report.findings.map((f) => [f.id, f.severity, f.file, f.key, f.message])).toEqual(
                expected.map(([key, message]) => ["validation", "error", "Pulumi.prod.yaml", key, message]),
            );
            // Policies wait until the file is valid; they are not guessed from a broken config.
            expect(report.skipped).toEqual([{ file: "Pulumi.prod.yaml", reason: "policies not checked until its validation errors are fixed (secrets were scanned)" }]);
        });
    }

    it("reads as the program's message with the file in front", () => {
        const f = audit("identifier").findings[0];
        expect(`${f.file}: ${f.key}: ${f.message}`).toBe(
            'Pulumi.prod.yaml: dataops:loaders[1].schema: "raw; drop" is not a valid schema name (lowercase letters, digits and _, starting with a letter, not starting with pg_; at most 40 characters)',
        );
        expect(f.fix).toBe("change dataops:loaders[1].schema to an allowed value (README: Config reference)");
    });

    it("collects every problem of a file, not only the first", () => {
        const text = [
            "config:",
            "  dataops:target: docker",
            "  dataops:warehouse:",
            '    engineVersion: "12.1"',
            "    target: gcp",
            "  dataops:loaders:",
            "    - {name: Bad Name, tool: meltano, source: tap-x}",
        ].join("\n");
        const { findings } = validateStack({ name: "Pulumi.staging.yaml", text });
        expect(findings.map((f) => `${f.file}: ${f.key}: ${f.message}`)).toEqual([
            "Pulumi.staging.yaml: dataops:target: is only for branch stacks (br-…); set warehouse.target in this file instead",
            'Pulumi.staging.yaml: dataops:warehouse.engineVersion: "12.1" is not a pinned PostgreSQL version MAJOR.MINOR with major 13, 14, 15, 16, 17, e.g. "16.4"',
            'Pulumi.staging.yaml: dataops:warehouse.target: "gcp" is not allowed (allowed: aws | docker | server)',
            'Pulumi.staging.yaml: dataops:loaders[0].name: "Bad Name" is not a valid loader name (lowercase letters, digits and _, starting with a letter, not starting with pg_; at most 30 characters)',
        ]);
    });

    it("accepts the stack-local keys and never needs a secure value's plaintext", () => {
        const text = ["config:", "  dataops:serverAdminPassword: {secure: v1:AAAA}", "  dataops:sqlEngine: sql", "  dataops:warehouse: {engineVersion: \"16.4\", target: server, server: {host: localhost}}"].join("\n");
        expect(validateStack({ name: "Pulumi.dev.yaml", text }).findings).toEqual([]);
    });
});
