// The stack files dataops writes itself (local/stackConfig.ts) are the engine's own: the real
// engine lists the stack, decrypts its secret config and runs an update on it; and dataops
// opens what the engine wrote.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { KeyRing, newCheckpoint, writeStackConfig } from "../../local/stackConfig";
import { ensureEngine } from "../../local/workspace";

const root = resolve(__dirname, "..", "..");
let pulumi: string;
let version: string;

beforeAll(async () => {
    const cmd = await ensureEngine(root, () => undefined);
    pulumi = cmd.command;
    version = cmd.version!.version;
});

function project(): { dir: string; run: (...args: string[]) => string } {
    const dir = mkdtempSync(join(tmpdir(), "dataops-stackfiles-"));
    mkdirSync(join(dir, "state"));
    writeFileSync(join(dir, "Pulumi.yaml"), "name: dataops\nruntime: nodejs\n");
    const env = { ...process.env, PULUMI_BACKEND_URL: `file://${join(dir, "state")}`, PULUMI_CONFIG_PASSPHRASE: "pass phrase", PULUMI_SKIP_UPDATE_CHECK: "true", PULUMI_HOME: process.env.PULUMI_HOME };
    return { dir, run: (...args) => execFileSync(pulumi, [...args, "--non-interactive"], { cwd: dir, env, encoding: "utf8" }) };
}

describe("stack files written by dataops, read by the engine", () => {
    it("GIVEN a new stack's checkpoint and config written by dataops THEN the engine lists it and decrypts its secret", () => {
        const p = project();
        const key = writeStackConfig(p.dir, "br-x", new KeyRing("pass phrase"), { "dataops:branch": { value: "feature/x" }, "dataops:serverAdminPassword": { value: "s3cret: with 'quotes'", secret: true } })!;
        mkdirSync(join(p.dir, "state", ".pulumi", "stacks", "dataops"), { recursive: true });
        writeFileSync(join(p.dir, "state", ".pulumi", "meta.yaml"), "version: 1\n");
        writeFileSync(join(p.dir, "state", ".pulumi", "stacks", "dataops", "br-x.json"), newCheckpoint("dataops", "br-x", version, key, new Date()));
        expect(p.run("stack", "ls", "--json")).toContain('"name": "br-x"');
        expect(JSON.parse(p.run("config", "--show-secrets", "--json", "--stack", "br-x"))).toEqual({
            "dataops:branch": { value: "feature/x", secret: false },
            "dataops:serverAdminPassword": { value: "s3cret: with 'quotes'", secret: true },
        });
        // The engine's own writes keep working on it.
        p.run("config", "set", "--secret", "dataops:other", "x", "--stack", "br-x");
        expect(JSON.parse(p.run("config", "--show-secrets", "--json", "--stack", "br-x"))["dataops:other"]).toEqual({ value: "x", secret: true });
    });

    it("GIVEN a stack the engine made and configured THEN dataops opens its salt, reads its secret and keeps it", () => {
        const p = project();
        p.run("stack", "init", "br-y");
        p.run("config", "set", "--secret", "dataops:serverAdminPassword", "from-the-engine", "--stack", "br-y");
        const doc = parse(readFileSync(join(p.dir, "Pulumi.br-y.yaml"), "utf8")) as { encryptionsalt: string; config: Record<string, { secure: string }> };
        const key = new KeyRing("pass phrase").open(doc.encryptionsalt)!;
        expect(key.decrypt(doc.config["dataops:serverAdminPassword"].secure)).toBe("from-the-engine");
        writeStackConfig(p.dir, "br-y", new KeyRing("pass phrase"), { "dataops:branch": { value: "b" }, "dataops:serverAdminPassword": { value: "from-the-engine", secret: true } });
        expect(JSON.parse(p.run("config", "--show-secrets", "--json", "--stack", "br-y"))).toEqual({
            "dataops:branch": { value: "b", secret: false },
            "dataops:serverAdminPassword": { value: "from-the-engine", secret: true },
        });
        expect(new KeyRing("another").open(doc.encryptionsalt)).toBeUndefined();
    });
});
