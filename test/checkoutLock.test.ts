// One run per environment per checkout (local/checkoutLock.ts): a live holder is waited for,
// a gone one (killed, or its pid reused) is broken, and two real processes never overlap.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { acquireCheckoutLock, CheckoutLockTimeout, withCheckoutLock } from "../local/checkoutLock";

const base = () => mkdtempSync(join(tmpdir(), "dataops-lock-"));
const quiet = { what: "test", timeoutSeconds: 5, log: () => undefined, pollMs: 20 };

/** A lock folder as a run of another process leaves it. */
function leftBy(dir: string, owner: Record<string, unknown>): void {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "owner.json"), JSON.stringify({ host: hostname(), what: "dataops up --branch x", since: "2026-12-01T00:00:00.000Z", ...owner }));
}

describe("the checkout's lock of an environment", () => {
    it("GIVEN a holder WHEN a second run asks THEN it waits, says for whom, and goes on once released", async () => {
        const dir = join(base(), "locks", "br-x");
        const first = await acquireCheckoutLock(dir, { ...quiet, what: "dataops up --branch x" });
        const told: string[] = [];
        let second = false;
        const waiting = withCheckoutLock(dir, { ...quiet, log: (l) => told.push(l) }, async () => {
            second = true;
        });
        await new Promise((r) => setTimeout(r, 200));
        expect(second).toBe(false);
        expect(told).toEqual([expect.stringMatching(new RegExp(`^dataops: waiting for another run in this checkout \\(dataops up --branch x, process ${process.pid}, since .*\\) to finish with this environment$`))]);
        first.release();
        await waiting;
        expect(second).toBe(true);
    });

    it("GIVEN a lock whose process is gone (a kill -9) THEN the next run breaks it and takes it", async () => {
        const dir = join(base(), "br-x");
        const gone = spawnSync("true").pid!;
        leftBy(dir, { pid: gone });
        const lock = await acquireCheckoutLock(dir, quiet);
        expect(JSON.parse(readFileSync(join(dir, "owner.json"), "utf8")).pid).toBe(process.pid);
        lock.release();
    });

    it("GIVEN a lock whose pid now names another process (reused) THEN it is broken too", async () => {
        const dir = join(base(), "br-x");
        leftBy(dir, { pid: process.pid, start: "1" });
        const lock = await acquireCheckoutLock(dir, quiet);
        expect(JSON.parse(readFileSync(join(dir, "owner.json"), "utf8")).since).not.toBe("2026-12-01T00:00:00.000Z");
        lock.release();
    });

    it("GIVEN a live holder that does not finish THEN the wait is refused after the timeout, naming it and what to do", async () => {
        const dir = join(base(), "br-x");
        const sleeper = spawn("sleep", ["30"]);
        leftBy(dir, { pid: sleeper.pid });
        try {
            const err = await acquireCheckoutLock(dir, { ...quiet, timeoutSeconds: 0.3 }).catch((e: unknown) => e);
            expect(err).toBeInstanceOf(CheckoutLockTimeout);
            expect(String(err)).toContain(`another run holds ${dir} (dataops up --branch x, process ${sleeper.pid} on ${hostname()}, since 2026-12-01T00:00:00.000Z) and did not finish within 0.3 s; if no such run is going on, remove that folder`);
        } finally {
            sleeper.kill();
        }
    });

    it("GIVEN a waiting run WHEN it is cancelled (Ctrl-C) THEN it stops waiting at once", async () => {
        const dir = join(base(), "br-x");
        const held = await acquireCheckoutLock(dir, quiet);
        const cancel = new AbortController();
        const waiting = acquireCheckoutLock(dir, { ...quiet, signal: cancel.signal }).catch((e: unknown) => e);
        cancel.abort(new Error("cancelled"));
        expect(String(await waiting)).toContain("cancelled");
        held.release();
    });

    it("GIVEN a release by a run that lost its lock to a breaker THEN the new holder's lock stays", async () => {
        const dir = join(base(), "br-x");
        const stale = await acquireCheckoutLock(dir, quiet);
        leftBy(dir, { pid: spawnSync("true").pid! }); // as if this run's lock had been broken and retaken
        const now = await acquireCheckoutLock(dir, quiet);
        stale.release();
        expect(JSON.parse(readFileSync(join(dir, "owner.json"), "utf8")).pid).toBe(process.pid);
        now.release();
    });

    it("GIVEN four processes taking one lock at once THEN their turns never overlap", async () => {
        const dir = join(base(), "br-x");
        const journal = join(dir, "..", "journal");
        const script = `
            const { withCheckoutLock } = require(${JSON.stringify(resolve(__dirname, "..", "local", "checkoutLock.ts"))});
            const { appendFileSync } = require("node:fs");
            withCheckoutLock(${JSON.stringify(dir)}, { what: "p", timeoutSeconds: 60, log: () => undefined, pollMs: 5 }, async () => {
                appendFileSync(${JSON.stringify(journal)}, "in\\n");
                await new Promise((r) => setTimeout(r, 150));
                appendFileSync(${JSON.stringify(journal)}, "out\\n");
            });`;
        const tsx = resolve(__dirname, "..", "node_modules", ".bin", "tsx");
        const runs = Array.from({ length: 4 }, () => new Promise<number | null>((r) => spawn(tsx, ["-e", script], { stdio: "inherit" }).once("exit", r)));
        expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
        expect(readFileSync(journal, "utf8")).toBe("in\nout\n".repeat(4));
    });
});
