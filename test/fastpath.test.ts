// The no-op fast path: it may answer "no changes" only when nothing could have changed.
// Every input that decides an update, and every sign that the state or the server moved,
// must send `up` down the full path.
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Catalog } from "../components/catalog";
import type { EnvironmentSummary } from "../components/dataPlatform";
import { checkFastPath, checkpointFile, fingerprint, forgetRecord, readRecord, writeRecord } from "../lifecycle/fastpath";

const catalog: Catalog = { database: { name: "d", owner: "o" }, roles: {}, schemas: {}, grants: {}, defaults: {} };
const admin = { host: "localhost", port: 1, user: "u", password: "p", sslMode: "disable" };
const stack = "br-x_12345678";
let root: string;
let backendUrl: string;

function touch(file: string, text: string) {
    mkdirSync(join(file, ".."), { recursive: true });
    writeFileSync(file, text);
}

const config = { "dataops:branch": { value: "x" }, "dataops:serverAdminPassword": { value: "secret-1", secret: true } };
const identity = { branch: "x", commit: "c1", author: "a", target: "server", ttl: "72h", engine: "" };
const input = () => ({ root, stack, config, identity, backendUrl, admin });
const clean = async () => [];

beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "dataops-fast-"));
    backendUrl = `file://${join(root, "state")}`;
    for (const f of ["package.json", "package-lock.json", "Pulumi.yaml", "Pulumi.prod.yaml", "engine/versions.json", "bin/build.js"]) touch(join(root, f), `${f} v1`);
    touch(join(root, ".dataops", "build", "stamp.json"), '{"index.ts":"1:1"}');
    touch(checkpointFile(backendUrl, stack)!, '{"checkpoint":{}}');
    touch(join(root, `Pulumi.${stack}.yaml`), "config: {}");
    writeRecord(root, stack, { fingerprint: fingerprint(input())!, catalog, summary: {} as EnvironmentSummary, tags: {}, resources: 16 }, backendUrl);
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("no-op fast path", () => {
    it("GIVEN the same inputs, state and server WHEN checked THEN up may answer without the engine", async () => {
        const v = await checkFastPath(input(), clean);
        expect(v.ok).toBe(true);
        expect(v.ok && v.record.resources).toBe(16);
    });

    it.each([
        ["a source file of the program (the build stamp)", () => touch(join(root, ".dataops", "build", "stamp.json"), '{"index.ts":"2:2"}')],
        ["a dependency (package-lock.json)", () => touch(join(root, "package-lock.json"), "v2")],
        ["production's config (Pulumi.prod.yaml)", () => touch(join(root, "Pulumi.prod.yaml"), "v2")],
        ["the pinned engine", () => touch(join(root, "engine", "versions.json"), "v2")],
        ["the build script", () => touch(join(root, "bin", "build.js"), "v2")],
    ])("GIVEN %s changed WHEN checked THEN the full path runs", async (_what, change) => {
        change();
        expect(await checkFastPath(input(), clean)).toEqual({ ok: false, why: "the program, its dependencies or its config changed" });
    });

    it("GIVEN another commit, author, secret or engine choice WHEN checked THEN the full path runs", async () => {
        for (const changed of [
            { ...input(), identity: { ...identity, commit: "c2" } },
            { ...input(), identity: { ...identity, author: "b" } },
            { ...input(), identity: { ...identity, engine: "provider" } },
            { ...input(), config: { ...config, "dataops:serverAdminPassword": { value: "secret-2", secret: true } } },
        ])
            expect(await checkFastPath(changed, clean)).toMatchObject({ ok: false, why: "the program, its dependencies or its config changed" });
    });

    it("GIVEN the state changed since (an update, refresh or destroy elsewhere, or the stack's config) WHEN checked THEN the full path runs", async () => {
        const cp = checkpointFile(backendUrl, stack)!;
        utimesSync(cp, new Date(), new Date(Date.now() + 5000));
        expect(await checkFastPath(input(), clean)).toMatchObject({ ok: false, why: /state changed/ });
        writeRecord(root, stack, { ...readRecord(root, stack)! }, backendUrl);
        touch(join(root, `Pulumi.${stack}.yaml`), "config: {changed: true}");
        expect(await checkFastPath(input(), clean)).toMatchObject({ ok: false, why: /state changed/ });
    });

    it("GIVEN another update holds the stack's lock WHEN checked THEN the full path runs (and waits for it)", async () => {
        touch(join(root, "state", ".pulumi", "locks", "organization", "dataops", stack, "lock.json"), "{}");
        expect(await checkFastPath(input(), clean)).toEqual({ ok: false, why: "another update holds the stack" });
    });

    it("GIVEN drift on the server, or a server that cannot be read WHEN checked THEN the full path runs", async () => {
        expect(await checkFastPath(input(), async () => [{ object: "schema marts" }])).toEqual({ ok: false, why: "the server drifted" });
        expect(await checkFastPath(input(), async () => Promise.reject(new Error("ECONNREFUSED")))).toEqual({ ok: false, why: "the server could not be read" });
    });

    it("GIVEN --refresh, another backend, no record or a forgotten one WHEN checked THEN the full path runs", async () => {
        expect(await checkFastPath({ ...input(), refresh: true }, clean)).toEqual({ ok: false, why: "--refresh" });
        expect(await checkFastPath({ ...input(), backendUrl: "s3://bucket" }, clean)).toEqual({ ok: false, why: "not a local file backend" });
        expect(await checkFastPath({ ...input(), stack: "br-other_00000000" }, clean)).toMatchObject({ ok: false, why: /no record/ });
        forgetRecord(root, stack);
        expect(await checkFastPath(input(), clean)).toMatchObject({ ok: false, why: /no record/ });
    });

    it("GIVEN the program runs from its sources (no build) WHEN fingerprinted THEN there is no fingerprint, so no fast path", () => {
        rmSync(join(root, ".dataops", "build"), { recursive: true });
        expect(fingerprint(input())).toBeUndefined();
    });

    it("GIVEN a record WHEN written THEN only its owner can read it", async () => {
        const { statSync } = await import("node:fs");
        expect(statSync(join(root, ".dataops", "up", `${stack}.json`)).mode & 0o777).toBe(0o600);
    });
});
