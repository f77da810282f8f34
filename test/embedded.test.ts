// The embedded server's guards that need no running server.
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EmbeddedRefused, ensureEmbeddedServer, isRunning } from "../local/embedded";

describe("a checkout the server's user cannot reach", () => {
    it("GIVEN a checkout inside a 0700 folder WHEN the embedded server is ensured as root THEN it is refused before anything is created, saying what to change", async () => {
        const closed = mkdtempSync(join(tmpdir(), "dataops-closed-"));
        const checkout = join(closed, "project");
        mkdirSync(checkout);
        chmodSync(closed, 0o700);
        try {
            if (userInfo().uid === 0) {
                // As root the server runs as `postgres`, who cannot enter `closed`.
                const refused = ensureEmbeddedServer(checkout);
                await expect(refused).rejects.toThrow(EmbeddedRefused);
                await expect(ensureEmbeddedServer(checkout)).rejects.toThrow(
                    `embedded PostgreSQL: the postgres user (the server cannot run as root) cannot reach ${checkout}: a folder above it is closed to other users. Move the checkout to a folder others may enter (e.g. under /work or /srv), or open the folders above it to others (chmod o+x each one); nothing was created`,
                );
                expect(existsSync(join(checkout, ".dataops"))).toBe(false);
            } else {
                // Not root: the server runs as this user, who can reach the checkout; nothing to refuse.
                expect(userInfo().uid).toBeGreaterThan(0);
            }
        } finally {
            chmodSync(closed, 0o755);
            rmSync(closed, { recursive: true, force: true });
        }
    });
});

describe("one embedded server per PostgreSQL major", () => {
    it("GIVEN the pinned majors WHEN servers are addressed THEN the default keeps port 54329 and every other major has a port of its own, read back to its major", async () => {
        const { EMBEDDED_MAJORS, embeddedPort, embeddedMajorAt, embeddedServer, embeddedDataDir } = await import("../local/embedded");
        expect(embeddedPort(16)).toBe(54329);
        expect(EMBEDDED_MAJORS.map(embeddedPort)).toEqual([54314, 54315, 54329, 54317, 54318]);
        for (const m of EMBEDDED_MAJORS) expect(embeddedMajorAt("localhost", embeddedPort(m))).toBe(m);
        expect(embeddedMajorAt("localhost", 5432)).toBeUndefined();
        expect(embeddedMajorAt("branches-pg.internal", 54329)).toBeUndefined();
        expect(embeddedServer(17)).toEqual({ host: "localhost", port: 54317, adminUser: "postgres", sslMode: "disable" });
        expect(embeddedDataDir("/p", 16)).toBe("/p/.dataops/pg/data");
        expect(embeddedDataDir("/p", 17)).toBe("/p/.dataops/pg-17/data");
    });

    it("GIVEN a pin WHEN its major has no embedded build THEN it is refused naming the key, what is allowed and what was given", async () => {
        const { embeddedMajorFor } = await import("../local/embedded");
        expect(embeddedMajorFor("17.2")).toBe(17);
        expect(embeddedMajorFor("14.9")).toBe(14);
        expect(() => embeddedMajorFor("12.4")).toThrow(EmbeddedRefused);
        expect(() => embeddedMajorFor("12.4")).toThrow(
            'dataops:warehouse.engineVersion: the embedded PostgreSQL has no build of major 12 (allowed: 14, 15, 16, 17, 18; pinned in engine/postgres.json); given "12.4"',
        );
        await expect(ensureEmbeddedServer("/nonexistent", () => undefined, 19)).rejects.toThrow("embedded PostgreSQL: no build of major 19 is pinned (allowed: 14, 15, 16, 17, 18; engine/postgres.json)");
    });

    it("GIVEN a branch's stack file in the checkout WHEN its server is read THEN up knows where the environment's data is", async () => {
        const { recordedServer } = await import("../lifecycle/environments");
        const dir = mkdtempSync(join(tmpdir(), "dataops-recorded-"));
        try {
            const { writeFileSync } = await import("node:fs");
            writeFileSync(join(dir, "Pulumi.br-x.yaml"), `config:\n  dataops:branch: x\n  dataops:server: '{"host":"localhost","port":54317,"adminUser":"postgres","sslMode":"disable"}'\n`);
            expect(recordedServer(dir, "br-x")).toEqual({ host: "localhost", port: 54317 });
            expect(recordedServer(dir, "br-none")).toBeUndefined();
            writeFileSync(join(dir, "Pulumi.br-y.yaml"), "config:\n  dataops:branch: y\n");
            expect(recordedServer(dir, "br-y")).toBeUndefined();
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("whether the embedded server runs, read as pg_ctl status reads it", () => {
    it("GIVEN a data folder THEN it runs only while its postmaster.pid names a live process", () => {
        const data = mkdtempSync(join(tmpdir(), "dataops-pgdata-"));
        expect(isRunning("pg_ctl", data)).toBe(false); // not a cluster
        writeFileSync(join(data, "PG_VERSION"), "16\n");
        expect(isRunning("pg_ctl", data)).toBe(false); // stopped: no pid file
        writeFileSync(join(data, "postmaster.pid"), `${process.pid}\n${data}\n1764633600\n54329\n`);
        expect(isRunning("pg_ctl", data)).toBe(true);
        writeFileSync(join(data, "postmaster.pid"), `${spawnSync("true").pid}\n${data}\n`);
        expect(isRunning("pg_ctl", data)).toBe(false); // left by a server that was killed
        writeFileSync(join(data, "postmaster.pid"), "");
        expect(isRunning("pg_ctl", data)).toBe(false); // cut short
    });
});
