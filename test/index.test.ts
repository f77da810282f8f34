// index.ts itself, as Pulumi runs it: config read from the stack, outputs exported.
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { installMocks, promiseOf, settle } from "./mocks";

describe("index.ts", () => {
    it("GIVEN the dev stack's config WHEN the program runs THEN it exports the environment summary and keeps passwords secret", async () => {
        const { readStackFile } = await import("../config/stackFiles");
        installMocks("dev");
        const dev = readStackFile("Pulumi.dev.yaml").values;
        pulumi.runtime.setAllConfig(
            {
                ...Object.fromEntries(Object.entries(dev).map(([k, v]) => [`dataops:${k}`, JSON.stringify(v)])),
                "dataops:serverAdminPassword": "admin-pw",
            },
            ["dataops:serverAdminPassword"],
        );
        const program = await import("../index");
        const summary = await promiseOf(program.environment);
        await settle();
        expect(summary).toMatchObject({ stack: "dev", kind: "development", database: "dev_analytics", host: "localhost", port: 54329 });
        expect(summary.build.projectVersion).toBe("0.1.0");
        expect(summary.build.commit).toMatch(/^([0-9a-f]{40}|unknown)$/);
        expect(JSON.stringify(summary)).not.toContain("admin-pw");
        expect(await pulumi.isSecret(program.userPasswords)).toBe(true);
        expect(await pulumi.isSecret(program.loaderConnections)).toBe(true);
    });
});
