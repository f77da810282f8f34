// One bad config per policy (test/audit/fixtures/<id>…), each with the exact finding;
// and the configs that must pass.
import { describe, it, expect } from "vitest";
import { readdirSync } from "node:fs";
import { type AuditReport, auditProject, EXPLAINED_BY, namesSecret, plaintextSecrets } from "../../audit";
import { isExplained } from "../../audit/mirror";
import { FIXTURES, fixture } from "./helpers";

type Row = [id: string, severity: string, key: string, message: string];

/** Fixture → [id, severity, key, message] of each finding, in order. */
const EXPECTED: Record<string, Row[]> = {
    "branch-caps": [["branch-caps", "warning", "dataops:branches.caps", "is not set: branch warehouses get the default size caps, which nobody reviewed"]],
    "branch-caps-partial": [["branch-caps", "warning", "dataops:branches.caps.storageGb", "is not set: branch warehouses get the default, which nobody reviewed"]],
    "branch-ttl": [["branch-ttl", "warning", "dataops:branches.ttl", "is not set: branch environments live for the default 72h, which nobody reviewed"]],
    "clean": [],
    "dev-not-production": [],
    // Every branch derives from production's file; a tree without it must not pass.
    "prod-missing": [["prod-missing", "error", "", "is missing: production's config, from which every branch environment is derived, is not in the tree"]],
    "loader-pin": [
        ["loader-pin", "error", "dataops:loaders[0].version", '"3" moves (a bare major version or a channel), so loader salesforce is not reproducible'],
        ["loader-pin", "error", "dataops:loaders[2].image", '"ghcr.io/acme/tap-events:stable" has the moving tag "stable", so loader events is not reproducible'],
    ],
    "mirror-invalid": [["mirror-invalid", "error", "dataops:target", "aws needs production's warehouse.aws (VPC and subnets) to mirror, and Pulumi.prod.yaml has none (allowed here: none)"]],
    "plaintext-secret-keys": [
        ["plaintext-secret", "error", "dataops:loaders[0].settings.password", "is a plaintext value under a key that names a secret (the value is not shown)"],
        ["plaintext-secret", "error", "aws:secretKey", "is a plaintext value under a key that names a secret (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:serverAdminPassword", "is a plaintext value under a key that names a secret (the value is not shown)"],
    ],
    "plaintext-secret-secure-ok": [],
    "plaintext-secret-shapes": [
        ["plaintext-secret", "error", "dataops:loaders[0].settings.aws_id", "looks like an AWS access key id in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.pem", "looks like a private key in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.dsn", "looks like a connection string with a password in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.slack", "looks like a Slack token in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.github", "looks like a GitHub token in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.stripe", "looks like a Stripe secret key in plaintext (the value is not shown)"],
        ["plaintext-secret", "error", "dataops:loaders[0].settings.jdbc", "looks like a password setting in plaintext (the value is not shown)"],
    ],
    "prod-backups": [["prod-backups", "error", "dataops:warehouse.backups.retentionDays", "3 is below the 7 days production keeps backups"]],
    "prod-deletion-protection": [["prod-deletion-protection", "error", "dataops:warehouse.protection.deletionProtection", "is false: AWS would let production's cluster be deleted"]],
    "prod-encryption": [["prod-encryption", "error", "dataops:warehouse.server.sslMode", '"prefer" allows unencrypted connections to production (allowed: require | verify-ca | verify-full)']],
    "prod-protect": [["prod-protect", "error", "dataops:warehouse.protection.protect", "is false: pulumi destroy would delete production's warehouse and database"]],
    "prod-public-access": [
        ["prod-public-access", "error", "dataops:warehouse.aws.publiclyAccessible", "is true: production's instances get a public address"],
        ["prod-public-access", "error", "dataops:warehouse.aws.allowedCidrs[1]", '"0.0.0.0/0" opens port 5432 to every address'],
    ],
    "raw-write": [
        ["raw-write", "error", "dataops:access.roles.transformer.write[2]", '"raw_*" lets transformer write raw_salesforce, the raw schema of loader salesforce (only loader_salesforce may write there)'],
        ["raw-write", "error", "dataops:access.roles.transformer.write[2]", '"raw_*" lets transformer write raw_stripe, the raw schema of loader stripe (only loader_stripe may write there)'],
    ],
};

function audit(name: string): AuditReport {
    // The mirror is derived only where it is under test, from a branch stack of that fixture.
    return auditProject(fixture(name), { mirror: name.startsWith("mirror-") ? { stack: "br-fixture" } : { skip: "not under test" }, base: { skip: "not under test" } });
}

describe("policies", () => {
    it("has an expectation for every fixture and a fixture for every expectation", () => {
        const folders = readdirSync(FIXTURES).filter((n) => !n.startsWith("validation-"));
        expect(folders.sort()).toEqual(Object.keys(EXPECTED).sort());
    });

    for (const [name, expected] of Object.entries(EXPECTED)) {
        it(`GIVEN ${name} THEN it reports exactly that`, () => {
            const report = audit(name);
            const file = name.startsWith("mirror-") ? "stack br-fixture" : name === "dev-not-production" ? "Pulumi.dev.yaml" : "Pulumi.prod.yaml";
            expect(report.findings.map((f) => [f.id, f.severity, f.key, f.message])).toEqual(expected);
            expect(report.findings.every((f) => f.file === file)).toBe(true);
            expect(report.skipped).toEqual([]);
        });
    }

    it("gives every finding a one-line fix", () => {
        const all = Object.keys(EXPECTED).flatMap((n) => audit(n).findings);
        expect(new Set(all.map((f) => f.id))).toEqual(
            new Set(["prod-missing", "prod-deletion-protection", "prod-protect", "prod-encryption", "prod-backups", "prod-public-access", "plaintext-secret", "branch-ttl", "branch-caps", "loader-pin", "raw-write", "mirror-invalid"]),
        );
        for (const f of all) expect(f.fix).toMatch(/^[^\n]{10,200}$/);
        expect(audit("prod-protect").findings[0].fix).toBe("set dataops:warehouse.protection.protect: true");
        expect(audit("raw-write").findings[0].fix).toBe('remove "raw_*" from transformer\'s write list (read raw_salesforce instead)');
    });

    it("never prints a secret it found", () => {
        const shown = JSON.stringify([...audit("plaintext-secret-keys").findings, ...audit("plaintext-secret-shapes").findings]);
        for (const secret of ["hunter2", "plaintext-aws-secret", "AKIAIOSFODNN7EXAMPLE", "s3cr3t", "BEGIN RSA", "xoxb-", "ghp_", "sk_live_"]) expect(shown).not.toContain(secret);
    });

    it("knows a secret's name by its words", () => {
        const secret = ["password", "serverAdminPassword", "sslpassword", "db_pass", "PWD", "passphrase", "CLIENT_SECRET", "loaderSecrets", "secretKey", "refresh_token", "accessToken", "api_key", "apiKey", "API-KEY", "private_key_id", "privateKey", "credentials"];
        const harmless = ["passenger_count", "compass", "bypass_cache", "tokenizer", "keyspace", "kmsKeyId", "api_type", "username", "secretary_table"];
        expect(secret.filter((k) => !namesSecret(k))).toEqual([]);
        expect(harmless.filter(namesSecret)).toEqual([]);
    });

    it("scans every namespace and depth, but not the names of secret settings nor placeholders", () => {
        const doc = {
            secretsprovider: "awskms://alias/pulumi",
            config: {
                "dataops:loaders": [{ name: "a", secrets: ["CLIENT_SECRET", "API_TOKEN"], settings: { dsn: "postgresql://u:${PASSWORD}@h/db", token_ttl: 3600 } }],
                "other:deep": { list: [{ credentials: { user: "u", key: "k" } }] },
            },
        };
        expect(plaintextSecrets("Pulumi.x.yaml", doc).map((f) => f.key)).toEqual(["other:deep.list[0].credentials.user", "other:deep.list[0].credentials.key"]);
    });

    it("explains a mirror difference only by a branches.* key, the disposable rule, or the branch stack's own server", () => {
        expect(EXPLAINED_BY.length).toBe(3);
        for (const reason of ["branches.target", "branches.caps", "dataops:target (allowed by branches.allowedTargets)", "branch environments are disposable", "dataops:server (the branch stack's server)"])
            expect(isExplained(reason)).toBe(true);
        for (const reason of ["a developer wanted it", "production is big", "branch environments are fun"]) expect(isExplained(reason)).toBe(false);
    });

    it("lists every mirror difference of the clean fixture with its reason, all explained", () => {
        const { mirror, findings } = auditProject(fixture("clean"), { mirror: { stack: "br-feature-a", branch: "feature-a" }, base: { skip: "not under test" } });
        expect(findings).toEqual([]);
        if (mirror.status !== "derived") throw new Error(`mirror not derived: ${JSON.stringify(mirror)}`);
        expect(mirror.server).toBe("embedded local PostgreSQL (localhost:54329), as npm run up");
        expect(mirror.differences.map((d) => [d.path, d.reason, d.explained])).toEqual([
            ["warehouse.target", "branches.target", true],
            ["warehouse.backups.retentionDays", "branch environments are disposable", true],
            ["warehouse.protection", "branch environments are disposable", true],
            ["warehouse.upgrade", "branch environments are disposable", true],
            ["warehouse.aws", "branches.target", true],
            ["warehouse.server", "dataops:server (the branch stack's server)", true],
            ["loaders[0].branchMode", "branches.loaderMode", true],
            ["loaders[1].branchMode", "branches.loaderMode", true],
        ]);
    });

    it("says why there is no mirror for a stack that is not a branch stack", () => {
        const { mirror } = auditProject(fixture("clean"), { mirror: { stack: "prod" }, base: { skip: "not under test" } });
        expect(mirror).toEqual({ status: "not-applicable", stack: "prod", reason: "stack prod is not a branch stack (br-…); it has its own committed file" });
    });
});
