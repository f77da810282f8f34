// The versioned warehouse: the server must run the pinned major, and at least the pinned minor.
import { describe, expect, it } from "vitest";
import { parseVersion, versionMismatch } from "../config/version";

describe("PostgreSQL versions", () => {
    it("GIVEN server_version_num or text WHEN parsed THEN MAJOR.MINOR", () => {
        expect(parseVersion("160014")).toEqual({ major: 16, minor: 14 });
        expect(parseVersion("170002")).toEqual({ major: 17, minor: 2 });
        expect(parseVersion("16.4")).toEqual({ major: 16, minor: 4 });
        expect(parseVersion("17.2 (Debian 17.2-1.pgdg120+1)")).toEqual({ major: 17, minor: 2 });
        expect(() => parseVersion("sixteen")).toThrow('not a PostgreSQL version: "sixteen"');
    });

    it("GIVEN the pinned major at the pinned minor or later WHEN checked THEN it is accepted", () => {
        expect(versionMismatch("16.4", { major: 16, minor: 4 }, "the server")).toBeUndefined();
        expect(versionMismatch("16.4", { major: 16, minor: 14 }, "the server")).toBeUndefined();
    });

    it("GIVEN another major WHEN checked THEN it is refused, naming the key, the pin, the server's version and what to do", () => {
        expect(versionMismatch("17.2", { major: 16, minor: 14 }, "the server at localhost:54329")).toBe(
            "dataops:warehouse.engineVersion pins PostgreSQL 17.2, but the server at localhost:54329 runs 16.14 (major 16, not 17): run the branch on a server of major 17, or change the pin in Pulumi.prod.yaml through a merge request",
        );
    });

    it("GIVEN an older minor WHEN checked THEN it is refused", () => {
        expect(versionMismatch("16.20", { major: 16, minor: 14 }, "the server")).toMatch(/^dataops:warehouse.engineVersion pins PostgreSQL 16.20, but the server runs 16.14, an older minor/);
    });
});
