// The embedded server's guards that need no running server.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EmbeddedRefused, ensureEmbeddedServer } from "../local/embedded";

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
