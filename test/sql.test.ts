// The in-process SQL engine: the same components, other resource types, same inputs.
import { beforeEach, describe, expect, it } from "vitest";
import { byType, installMocks, named, promiseOf, settle, type Recorded } from "./mocks";
import { readStackFile } from "../config/stackFiles";
import { ConfigError } from "../config/errors";
import { diff } from "../components/sqlOps";
import { defineEnvironment } from "../program";

const recorded: Recorded[] = installMocks("br-main");
const production = readStackFile("Pulumi.prod.yaml").values;
const build = { projectVersion: "0.1.0", commit: "abc" };
const server = { host: "localhost", port: 54329, sslMode: "disable" };
const connection = { host: "h", port: 1, user: "u", password: "p", sslMode: "disable" };

beforeEach(() => {
    recorded.length = 0;
});

describe("sqlEngine: sql", () => {
    it("GIVEN a branch with the sql engine WHEN it runs THEN no provider is registered and every object is an in-process SQL resource", async () => {
        const p = defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "sql" }, production, build, serverAdminPassword: "pw" });
        await promiseOf(p.platform.summary);
        await settle();
        expect(recorded.filter((r) => r.type.startsWith("postgresql:") || r.type === "pulumi:providers:postgresql")).toEqual([]);
        const kinds = (t: string) => byType(recorded, `pulumi-nodejs:dynamic/dataops:${t}`).length;
        expect([kinds("SqlRole"), kinds("SqlDatabase"), kinds("SqlSchema"), kinds("SqlDefaultPrivileges")]).toEqual([1 + 4 + 2 + 2, 1, 2 + 4, 5]);
        // Same inputs as the provider resources would get.
        expect(named(recorded, "br_main_b4144f9f-access-transformer-tables-marts").inputs).toMatchObject({
            kind: "grant",
            objectType: "table",
            schema: "marts",
            privileges: ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"],
        });
    });

    it("GIVEN an unknown engine WHEN the program runs THEN it is refused, naming the key and the allowed values", () => {
        expect(() => defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "psql" }, production, build, serverAdminPassword: "pw" })).toThrow(ConfigError);
        try {
            defineEnvironment({ stack: "br-main", values: { server, sqlEngine: "psql" }, production, build, serverAdminPassword: "pw" });
        } catch (e) {
            expect((e as ConfigError).problems).toEqual(['dataops:sqlEngine: "psql" is not allowed (allowed: provider | sql)']);
        }
        expect(recorded).toEqual([]);
    });
});

describe("sqlOps.diff", () => {
    it("GIVEN a changed privilege list WHEN diffed THEN it is an in-place update", () => {
        const old = { connection, kind: "grant", database: "d", role: "r", objectType: "schema", schema: "s", privileges: ["USAGE"] };
        expect(diff(old, { ...old, privileges: ["CREATE", "USAGE"] })).toEqual({ changes: true, replaces: [], deleteBeforeReplace: false });
    });

    it("GIVEN a renamed object WHEN diffed THEN it is replaced, the old one first (same physical namespace)", () => {
        const old = { connection, kind: "schema", name: "a", database: "d", owner: "o" };
        expect(diff(old, { ...old, name: "b" })).toEqual({ changes: true, replaces: ["name"], deleteBeforeReplace: true });
    });

    it("GIVEN only the admin connection changed WHEN diffed THEN nothing changes (a new admin password must not recreate objects)", () => {
        const old = { connection, kind: "role", name: "r", login: true };
        expect(diff(old, { ...old, connection: { ...connection, password: "new" } })).toEqual({ changes: false, replaces: [], deleteBeforeReplace: false });
    });
});
