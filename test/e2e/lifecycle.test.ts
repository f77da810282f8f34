// The branch lifecycle end to end, through the dataops CLI on the real engine and the
// embedded PostgreSQL: prune (branch gone, TTL passed, kept), destroy idempotent and
// refusing what is not a branch environment, and an up killed mid-update recovered.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LocalWorkspace } from "@pulumi/pulumi/automation";
import { Client } from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, type Io } from "../../cli/main";
import { destroyStack, Refused } from "../../lifecycle/environments";
import { TAG } from "../../lifecycle/policy";
import { type EmbeddedServer, ensureEmbeddedServer, stopEmbeddedServer } from "../../local/embedded";
import { type LocalContext, localContext, postgresqlPluginInstalled, sqlEngineChoice, workspace } from "../../local/workspace";
import { stackNameForBranch } from "../../naming";
import { stackObjects } from "../../lifecycle/purge";
import { fileStore } from "../../local/stateStore";

const root = resolve(__dirname, "..", "..");
const B = { gone: "e2e/gone", expired: "e2e/expired", kept: "e2e/kept", killed: "e2e/killed", refused: "e2e/refused", unreachable: "e2e/unreachable", engine: "e2e/engine" } as const;
let ctx: LocalContext;
let server: EmbeddedServer;

function io(now = new Date()): Io & { lines: string[] } {
    const lines: string[] = [];
    return { lines, out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: root, now: () => now, interactive: false };
}

async function stacks(): Promise<string[]> {
    return (await (await workspace(ctx)).listStacks()).map((s) => s.name);
}

async function databases(): Promise<string[]> {
    const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database: "postgres" });
    await c.connect();
    try {
        return (await c.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname LIKE 'br_e2e_%' ORDER BY 1")).rows.map((r) => r.datname);
    } finally {
        await c.end();
    }
}

beforeAll(async () => {
    ctx = await localContext(root, (l) => process.stderr.write(`${l}\n`));
    server = await ensureEmbeddedServer(root);
    for (const b of Object.values(B)) await main(["destroy", "--branch", b, "--yes"], io());
});

afterAll(async () => {
    for (const b of Object.values(B)) await main(["destroy", "--branch", b, "--yes"], io());
    if (server?.startedNow) await stopEmbeddedServer(root);
});

describe("prune", () => {
    it("GIVEN three branch environments WHEN pruned against the branch list THEN the gone and the expired are destroyed and the kept one stays", async () => {
        for (const b of [B.gone, B.expired, B.kept]) expect(await main(["up", "--embedded", "--branch", b], io())).toBe(0);
        const ws = await workspace(ctx);
        const past = "2026-01-01T00:00:00.000Z";
        await ws.setTag(stackNameForBranch(B.expired), TAG.expiresAt, past);
        await ws.setTag(stackNameForBranch(B.kept), TAG.expiresAt, past);
        await ws.setTag(stackNameForBranch(B.kept), TAG.keep, "true");
        const list = join(mkdtempSync(join(tmpdir(), "dataops-")), "branches.txt");
        writeFileSync(list, `main\n${B.expired}\n${B.kept}\n`);

        const dry = io();
        expect(await main(["prune", "--dry-run", "--branches-from", list], dry)).toBe(0);
        expect(dry.lines.filter((l) => !l.startsWith("engine:"))).toEqual([
            `would destroy ${stackNameForBranch(B.expired)}: expired ${past}`,
            `would destroy ${stackNameForBranch(B.gone)}: branch ${B.gone} is gone from the remote`,
            `kept      ${stackNameForBranch(B.kept)}: expired ${past} (kept: dataops:keep=true)`,
        ]);
        expect(await stacks()).toEqual(expect.arrayContaining([B.gone, B.expired, B.kept].map(stackNameForBranch)));

        const run = io();
        const said: string[] = [];
        expect(await main(["prune", "--branches-from", list, "--json"], { ...run, err: (l) => said.push(l) })).toBe(0);
        const result = JSON.parse(run.lines.join("\n")) as Array<{ stack: string; action: string; done: boolean }>;
        // Both held only their catalogs: destroyed without the engine.
        expect(said.filter((l) => l.endsWith("so no engine run was needed"))).toHaveLength(2);
        expect(result.map((r) => [r.stack, r.action, r.done])).toEqual([
            [stackNameForBranch(B.expired), "destroy", true],
            [stackNameForBranch(B.gone), "destroy", true],
            [stackNameForBranch(B.kept), "keep", false],
        ]);
        const left = await stacks();
        expect(left).toContain(stackNameForBranch(B.kept));
        expect(left).not.toContain(stackNameForBranch(B.gone));
        expect(left).not.toContain(stackNameForBranch(B.expired));
        expect((await databases()).length).toBe(1);
        // Nothing the file backend kept for them is left: no backups, history, .bak or lease.
        const store = fileStore(ctx.envVars.PULUMI_BACKEND_URL!.slice("file://".length));
        for (const b of [B.gone, B.expired]) expect(await stackObjects(store, stackNameForBranch(b))).toEqual([]);
        expect(await stackObjects(store, stackNameForBranch(B.kept))).not.toEqual([]);
    });

    it("GIVEN environments WHEN listed as JSON THEN each has its branch, target, expiry, last update and resource count", async () => {
        const out = io();
        expect(await main(["ls", "--json"], out)).toBe(0);
        const rows = JSON.parse(out.lines.filter((l) => !l.startsWith("engine:")).join("\n")) as Array<Record<string, unknown>>;
        const kept = rows.find((r) => r.stack === stackNameForBranch(B.kept));
        expect(kept).toMatchObject({ branch: B.kept, kind: "branch", target: "server", keep: true, expiresAt: "2026-01-01T00:00:00.000Z" });
        // The stack, its components, the generated passwords and one SqlCatalog.
        expect(kept?.resourceCount).toBeGreaterThan(10);
        // dataops writes the tags object itself (lifecycle/bucketList.ts); the engine reads it, with
        // the tags set through the engine beside them (keep, expires-at above).
        const engine = await (await workspace(ctx)).listTags(stackNameForBranch(B.kept));
        expect(engine).toMatchObject({ [TAG.kind]: "branch", [TAG.branch]: B.kept, [TAG.target]: "server", [TAG.keep]: "true", [TAG.expiresAt]: "2026-01-01T00:00:00.000Z", [TAG.createdAt]: expect.any(String), [TAG.commit]: expect.any(String), [TAG.postgres]: expect.stringMatching(/^16\.\d+ \(pinned 16\.\d+\)$/) });
    });
});

describe("destroy", () => {
    it("GIVEN a branch WHEN destroyed twice THEN both exit 0 and the second says there was nothing", async () => {
        const first = io();
        expect(await main(["destroy", "--branch", B.kept, "--yes"], first)).toBe(0);
        expect(first.lines).toContain(`${stackNameForBranch(B.kept)}: destroyed and removed`);
        // Its state held only its catalog: dropped by dataops itself (lifecycle/directDestroy.ts), removed as `pulumi stack rm` does.
        expect(first.lines).toContainEqual(expect.stringMatching(new RegExp(`^dataops: ${stackNameForBranch(B.kept)}: dropped br_e2e_kept_\\w+_analytics and \\d+ roles; its state held nothing else, so no engine run was needed$`)));
        expect(existsSync(join(root, `Pulumi.${stackNameForBranch(B.kept)}.yaml`))).toBe(false);
        expect(await stacks()).not.toContain(stackNameForBranch(B.kept));
        const second = io();
        expect(await main(["destroy", "--branch", B.kept, "--yes"], second)).toBe(0);
        expect(second.lines).toContain(`${stackNameForBranch(B.kept)}: no such stack; nothing to destroy`);
        expect(await databases()).toEqual([]);
        expect(await stackObjects(fileStore(ctx.envVars.PULUMI_BACKEND_URL!.slice("file://".length)), stackNameForBranch(B.kept))).toEqual([]);
    });

    it("GIVEN prod, dev or a stack not made for a branch WHEN destroy is asked THEN it refuses and the stack stays", async () => {
        await expect(destroyStack(ctx, "prod", () => undefined)).rejects.toThrow(new Refused("prod is not a branch environment; destroy refuses it (use pulumi directly if you really mean it)"));
        await expect(destroyStack(ctx, "dev", () => undefined)).rejects.toThrow(Refused);
        const manual = "br-made-by-hand";
        await LocalWorkspace.createStack({ stackName: manual, workDir: root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
        try {
            await expect(destroyStack(ctx, manual, () => undefined)).rejects.toThrow(`${manual} was not created for a branch (no dataops:kind=branch tag); destroy refuses it`);
            expect(await stacks()).toContain(manual);
        } finally {
            await (await workspace(ctx)).removeStack(manual);
        }
    });
});

describe("an interrupted up", () => {
    it("GIVEN an up killed mid-update WHEN up runs again THEN it recovers the stack and converges", async () => {
        const child = spawn(process.execPath, [join(root, "bin", "dataops.js"), "up", "--embedded", "--branch", B.killed], { cwd: root, detached: true, stdio: ["ignore", "ignore", "pipe"] });
        let seen = "";
        await new Promise<void>((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`the update never started applying the catalog:\n${seen.slice(-2000)}`)), 300_000);
            child.stderr.on("data", (chunk: Buffer) => {
                seen += chunk.toString();
                if (/SqlCatalog \S+ creating/.test(seen)) {
                    clearTimeout(timer);
                    // The whole process group: the CLI, the engine and the program.
                    process.kill(-child.pid!, "SIGKILL");
                    done();
                }
            });
        });
        await new Promise((r) => child.once("exit", r));

        const again = io();
        expect(await main(["up", "--embedded", "--branch", B.killed, "--json"], again)).toBe(0);
        const text = again.lines.join("\n");
        expect(text).toMatch(/pending operations? from an interrupted update|was locked by process \d+, which is gone/);
        const json = JSON.parse(again.lines.filter((l) => l.startsWith("{") || !/^(engine:|dataops:|embedded)/.test(l)).join("\n")) as { recovered: boolean; environment: { database: string } };
        expect(json.recovered).toBe(true);
        expect(await databases()).toEqual([json.environment.database]);
        // And it is whole: a further up changes nothing.
        const third = io();
        expect(await main(["up", "--embedded", "--branch", B.killed, "--json"], third)).toBe(0);
        expect((JSON.parse(third.lines.filter((l) => !/^(engine:|dataops:|embedded)/.test(l)).join("\n")) as { changes: Record<string, number> }).changes).toEqual({ same: expect.any(Number) });
    });
});

describe("an up that cannot reach production's shared branch server (as in CI)", () => {
    it("GIVEN no DATAOPS_SERVER_ADMIN_PASSWORD WHEN up runs THEN it is refused (exit 2), its summary says why, and no stack is left", async () => {
        const summary = join(mkdtempSync(join(tmpdir(), "dataops-")), "summary.md");
        const out = io();
        expect(await main(["up", "--branch", B.refused, "--summary-file", summary], out)).toBe(2);
        expect(out.lines.join("\n")).toContain("DATAOPS_SERVER_ADMIN_PASSWORD is not set");
        expect(readFileSync(summary, "utf8")).toContain("DATAOPS_SERVER_ADMIN_PASSWORD is not set");
        expect(await stacks()).not.toContain(stackNameForBranch(B.refused));
    });

    it("GIVEN the branch server unreachable WHEN up runs THEN the error is said once, then the key, the host and what to do; no stack is made, and destroy exits 0", async () => {
        const summary = join(mkdtempSync(join(tmpdir(), "dataops-")), "summary.md");
        const out = { ...io(), env: { DATAOPS_SERVER_ADMIN_PASSWORD: "not-the-real-one" } };
        expect(await main(["up", "--branch", B.unreachable, "--summary-file", summary], out)).toBe(1);
        const text = out.lines.join("\n");
        expect(text).toContain("The branch server branches-pg.internal.acme.example:5432 (dataops:branches.server in Pulumi.prod.yaml) could not be reached from here.");
        expect(text).not.toMatch(/err\?:|stderr:|stdout:/);
        expect(readFileSync(summary, "utf8")).toContain(": the update failed");
        // The server is reached (its version checked) before the stack is made: nothing is left behind.
        expect(await stacks()).not.toContain(stackNameForBranch(B.unreachable));
        const down = { ...io(), env: { DATAOPS_SERVER_ADMIN_PASSWORD: "not-the-real-one" } };
        expect(await main(["destroy", "--branch", B.unreachable, "--yes"], down)).toBe(0);
        expect(await stacks()).not.toContain(stackNameForBranch(B.unreachable));
    });
});

describe("the SQL engine a user chose", () => {
    it("GIVEN dataops:sqlEngine set on a branch stack by its user WHEN up runs THEN the CLI keeps it; DATAOPS_SQL_ENGINE changes it", async () => {
        const name = stackNameForBranch(B.engine);
        expect(await main(["up", "--embedded", "--branch", B.engine], io())).toBe(0);
        const stack = await LocalWorkspace.selectStack({ stackName: name, workDir: root }, { pulumiCommand: ctx.pulumi, envVars: ctx.envVars });
        // Created with the default: sql where no postgresql plugin is installed, provider where one is.
        expect((await stack.getConfig("dataops:sqlEngine")).value).toBe(sqlEngineChoice(process.env).engine);
        await stack.setConfig("dataops:sqlEngine", { value: "provider" });
        const kept = io();
        const code = await main(["up", "--embedded", "--branch", B.engine], kept);
        expect((await stack.getConfig("dataops:sqlEngine")).value).toBe("provider");
        // Without the plugin the provider engine cannot run: the failure itself shows the choice was used.
        if (!postgresqlPluginInstalled(process.env)) expect(code).toBe(1);
        const back = { ...io(), env: { DATAOPS_SQL_ENGINE: "sql" } };
        expect(await main(["up", "--embedded", "--branch", B.engine], back)).toBe(0);
        expect((await stack.getConfig("dataops:sqlEngine")).value).toBe("sql");
        expect(await main(["destroy", "--branch", B.engine, "--yes"], io())).toBe(0);
        expect(await stacks()).not.toContain(name);
    });
});
