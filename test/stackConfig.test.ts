// The stack files dataops writes itself (local/stackConfig.ts): the passphrase provider's formats,
// read back by the real engine in test/e2e/stackConfig.test.ts; here, what is kept, what is
// refused and what is never written.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { enginePassphrase, KeyRing, newCheckpoint, writeStackConfig } from "../local/stackConfig";

const dir = () => mkdtempSync(join(tmpdir(), "dataops-stackconfig-"));
const read = (root: string) => parse(readFileSync(join(root, "Pulumi.br-x.yaml"), "utf8")) as { encryptionsalt: string; config: Record<string, unknown> };

describe("a stack's config file written by dataops", () => {
    it("GIVEN a new stack THEN the file has a salt this passphrase opens, plain values as given and secrets encrypted", () => {
        const root = dir();
        const ring = new KeyRing("correct horse");
        const key = writeStackConfig(root, "br-x", ring, { "dataops:branch": { value: "feature/x" }, "dataops:port": { value: "5432" }, "dataops:serverAdminPassword": { value: "s3cret", secret: true } })!;
        const doc = read(root);
        expect(doc.encryptionsalt).toMatch(/^v1:[A-Za-z0-9+/=]{12}:v1:[A-Za-z0-9+/=]{16}:[A-Za-z0-9+/=]+$/);
        expect(doc.config["dataops:branch"]).toBe("feature/x");
        expect(doc.config["dataops:port"]).toBe("5432"); // a string, as `config set --plaintext` keeps it
        const secure = (doc.config["dataops:serverAdminPassword"] as { secure: string }).secure;
        expect(readFileSync(join(root, "Pulumi.br-x.yaml"), "utf8")).not.toContain("s3cret");
        expect(new KeyRing("correct horse").open(doc.encryptionsalt)?.decrypt(secure)).toBe("s3cret");
        expect(key.decrypt(secure)).toBe("s3cret");
    });

    it("GIVEN a file with other keys and a secret unchanged THEN they are kept, the secret's ciphertext too", () => {
        const root = dir();
        const ring = new KeyRing("pp");
        writeStackConfig(root, "br-x", ring, { "dataops:serverAdminPassword": { value: "a", secret: true }, "dataops:sqlEngine": { value: "provider" } });
        const before = read(root);
        writeStackConfig(root, "br-x", ring, { "dataops:serverAdminPassword": { value: "a", secret: true }, "dataops:branch": { value: "b" } });
        const after = read(root);
        expect(after.encryptionsalt).toBe(before.encryptionsalt);
        expect(after.config["dataops:serverAdminPassword"]).toEqual(before.config["dataops:serverAdminPassword"]);
        expect(after.config["dataops:sqlEngine"]).toBe("provider");
        expect(after.config["dataops:branch"]).toBe("b");
        writeStackConfig(root, "br-x", ring, { "dataops:serverAdminPassword": { value: "changed", secret: true } });
        expect(new KeyRing("pp").open(after.encryptionsalt)?.decrypt((read(root).config["dataops:serverAdminPassword"] as { secure: string }).secure)).toBe("changed");
    });

    it("GIVEN a file whose salt another passphrase made, secrets without a salt, or another secrets provider THEN nothing is written and the engine is left to say why", () => {
        const root = dir();
        writeStackConfig(root, "br-x", new KeyRing("one"), { "dataops:a": { value: "1", secret: true } });
        const text = readFileSync(join(root, "Pulumi.br-x.yaml"), "utf8");
        expect(writeStackConfig(root, "br-x", new KeyRing("two"), { "dataops:a": { value: "2" } })).toBeUndefined();
        expect(readFileSync(join(root, "Pulumi.br-x.yaml"), "utf8")).toBe(text);
        writeFileSync(join(root, "Pulumi.br-x.yaml"), "config:\n  dataops:a:\n    secure: v1:abc:def\n");
        expect(writeStackConfig(root, "br-x", new KeyRing("two"), { "dataops:a": { value: "2" } })).toBeUndefined();
        const kms = "secretsprovider: awskms://alias/dataops\nencryptedkey: AQICAHg=\nconfig:\n  dataops:a: '1'\n";
        writeFileSync(join(root, "Pulumi.br-x.yaml"), kms);
        expect(writeStackConfig(root, "br-x", new KeyRing("two"), { "dataops:a": { value: "2" } })).toBeUndefined();
        expect(readFileSync(join(root, "Pulumi.br-x.yaml"), "utf8")).toBe(kms);
    });

    it("GIVEN the checkout's own passphrase THEN its derived keys are kept, owner-only, and a new stack reuses the newest salt; without a file nothing is written", () => {
        const root = dir();
        const file = join(root, "keys.json");
        writeStackConfig(root, "br-x", new KeyRing("local", file), { "dataops:a": { value: "1" } });
        expect(statSync(file).mode & 0o777).toBe(0o600);
        expect(readFileSync(file, "utf8")).not.toContain("local");
        const salt = read(root).encryptionsalt.split(":")[1];
        const other = dir();
        writeStackConfig(other, "br-x", new KeyRing("local", file), { "dataops:a": { value: "1" } });
        expect(read(other).encryptionsalt.split(":")[1]).toBe(salt);
        // Another passphrase does not use the keys kept for this one.
        const stranger = dir();
        writeStackConfig(stranger, "br-x", new KeyRing("not local", file), { "dataops:a": { value: "1" } });
        expect(read(stranger).encryptionsalt.split(":")[1]).not.toBe(salt);
        expect(new KeyRing("local").open(read(stranger).encryptionsalt)).toBeUndefined();
        const ci = dir();
        writeStackConfig(ci, "br-x", new KeyRing("from the environment"), { "dataops:a": { value: "1", secret: true } });
        expect(readFileSync(join(ci, "Pulumi.br-x.yaml"), "utf8")).not.toContain("from the environment");
    });

    it("GIVEN the engine's variables THEN the passphrase is read as the engine reads it", () => {
        const root = dir();
        writeFileSync(join(root, "pp"), "  from a file \n");
        expect(enginePassphrase({ PULUMI_CONFIG_PASSPHRASE: "direct", PULUMI_CONFIG_PASSPHRASE_FILE: join(root, "pp") })).toBe("direct");
        expect(enginePassphrase({ PULUMI_CONFIG_PASSPHRASE_FILE: join(root, "pp") })).toBe("from a file");
        expect(enginePassphrase({ PULUMI_CONFIG_PASSPHRASE: "" })).toBe("");
        expect(enginePassphrase({})).toBeUndefined();
    });

    it("GIVEN a new stack THEN its checkpoint is the one stack init writes: name, manifest and the passphrase provider's salt", () => {
        const key = new KeyRing("pp").fresh();
        expect(JSON.parse(newCheckpoint("dataops", "br-x", "3.248.0", key, new Date("2026-12-02T00:00:00Z")))).toEqual({
            version: 3,
            checkpoint: {
                stack: "organization/dataops/br-x",
                latest: {
                    manifest: { time: "2026-12-02T00:00:00.000Z", magic: "1c72415da0837d6b54e4fd59aa49d86e7a984759e60a944fc9ff1c8042addcfe", version: "v3.248.0" },
                    secrets_providers: { type: "passphrase", state: { salt: key.state } },
                    metadata: {},
                },
            },
        });
    });
});
