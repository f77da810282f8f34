// The `provider` engine's objects wait for the version check: a server that does not run the
// pinned version is refused before any @pulumi/postgresql object changes. The postgresql
// classes are replaced by recorders here, so each object's options can be read.
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it, vi } from "vitest";
import { installMocks, settle } from "./mocks";

const made: Array<{ kind: string; name: string; opts: pulumi.CustomResourceOptions }> = [];
vi.mock("@pulumi/postgresql", () => {
    const recorder = (kind: string) =>
        class {
            name = pulumi.output("x");
            constructor(name: string, _args: unknown, opts: pulumi.CustomResourceOptions) {
                made.push({ kind, name, opts });
            }
        };
    return { Role: recorder("Role"), Database: recorder("Database"), Schema: recorder("Schema"), Grant: recorder("Grant"), DefaultPrivileges: recorder("DefaultPrivileges"), Provider: recorder("Provider") };
});

installMocks("prod");

describe("provider engine: the pin is checked first", () => {
    it("GIVEN the provider engine WHEN objects are declared THEN each depends on the ServerVersion check, besides its own dependencies", async () => {
        const { providerObjects } = await import("../components/pg");
        const { ServerVersion } = await import("../components/serverVersion");
        const postgresql = await import("@pulumi/postgresql");
        const admin = { host: "db", port: 5432, user: "admin", password: "pw", sslMode: "require" };
        const pg = providerObjects(new postgresql.Provider("p", {}) as never, admin, { name: "env-server-version", engineVersion: "16.4", opts: {} });
        const other = new ServerVersion("unrelated", { connection: admin, engineVersion: "16.4" });
        pg.role("r", { name: "r" }, {});
        pg.schema("s", { name: "s" }, { dependsOn: other });
        pg.grant("g", { role: "r", database: "d", objectType: "database", privileges: [] }, { dependsOn: [other] });
        await settle();
        const byName = Object.fromEntries(made.filter((m) => m.kind !== "Provider").map((m) => [m.name, m.opts.dependsOn as pulumi.Resource[]]));
        const isCheck = (r: pulumi.Resource) => r instanceof ServerVersion && r !== other;
        expect(byName.r.filter(isCheck)).toHaveLength(1);
        expect(byName.s).toHaveLength(2);
        expect(byName.s.filter(isCheck)).toHaveLength(1);
        expect(byName.s).toContain(other);
        expect(byName.g).toContain(other);
        expect(byName.g.filter(isCheck)).toHaveLength(1);
        expect(pg.serverVersion).toBeDefined();
    });
});
