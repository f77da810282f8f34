// `dataops up` checks its target before anything is created (lifecycle/environments.ts): a
// branch server that does not answer fails the job fast, and the advice names the target.
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { checkServerVersion } from "../components/catalogSql";
import { PREFLIGHT_CONNECT_TIMEOUT_MS } from "../lifecycle/environments";
import { adviceFor } from "../lifecycle/failure";

describe("up's pre-flight check of the branch server", () => {
    it("GIVEN a server that takes the connection and never answers WHEN checked THEN it gives up after the timeout, and the advice names dataops:branches.server and the host", async () => {
        // A stand-in for a firewall that lets the connection open but nothing through.
        const sockets: Socket[] = [];
        const silent = createServer((s) => sockets.push(s));
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        const { port } = silent.address() as AddressInfo;
        try {
            const conn = { host: "127.0.0.1", port, user: "dataops_admin", password: "x", sslMode: "disable" };
            // Without a limit this would never settle (the server keeps the connection open, silent):
            // the test would time out instead of seeing the error.
            const error = await checkServerVersion(conn, "16.4", { connectTimeoutMs: 1_000 }).then(
                () => undefined,
                (e: unknown) => e as Error,
            );
            expect(String(error?.message)).toMatch(/timeout/i);
            const advice = adviceFor(error, { command: "up", branch: "feature/x", branchServer: { host: "branches-pg.internal.acme.example", port: 5432, adminUser: "dataops_admin", sslMode: "require" } });
            expect(advice).toContain("The branch server branches-pg.internal.acme.example:5432 (dataops:branches.server in Pulumi.prod.yaml) could not be reached from here.");
        } finally {
            for (const s of sockets) s.destroy();
            silent.close();
        }
    });

    it("GIVEN up's pre-flight limit WHEN read THEN it is seconds, not minutes", () => {
        expect(PREFLIGHT_CONNECT_TIMEOUT_MS).toBeGreaterThanOrEqual(5_000);
        expect(PREFLIGHT_CONNECT_TIMEOUT_MS).toBeLessThanOrEqual(30_000);
    });
});
