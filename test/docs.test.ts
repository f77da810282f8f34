import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configReference, withReference } from "../config/reference";

describe("README config reference", () => {
    it("GIVEN the schema WHEN the reference is generated THEN the README holds exactly it (run npm run docs:config after a schema change)", () => {
        const readme = readFileSync("README.md", "utf8");
        expect(withReference(readme)).toBe(readme);
    });

    it("GIVEN the schema WHEN the reference is generated THEN every top-level key and the branch policy keys are documented", () => {
        const ref = configReference();
        for (const key of ["dataops:warehouse", "dataops:loaders", "dataops:access", "dataops:branches", "dataops:branches.ttl", "dataops:loaders[].branchMode", "dataops:warehouse.engineVersion"])
            expect(ref).toContain(`| \`${key}\` |`);
    });
});
