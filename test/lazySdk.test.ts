// bin/lazy-sdk.js: the SDK loads without typescript and @npmcli/arborist, and each is loaded,
// whole, the first time it is used.
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(__dirname, "..");
const node = (script: string, hook = true) =>
    execFileSync(process.execPath, [...(hook ? ["-r", resolve(root, "bin", "lazy-sdk.js")] : []), "-e", script], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
const loaded = `const l = (n) => Object.keys(require.cache).some((f) => f.includes("/node_modules/" + n + "/"));`;

describe("the SDK without what a process never uses", () => {
    it("GIVEN the hook WHEN the Automation API and the runtime load THEN neither typescript nor arborist is loaded; without it both are", () => {
        expect(node(`${loaded} require("@pulumi/pulumi/automation"); require("@pulumi/pulumi/runtime"); console.log(l("typescript"), l("@npmcli/arborist"))`)).toBe("false false");
        expect(node(`${loaded} require("@pulumi/pulumi/automation"); console.log(l("typescript"), l("@npmcli/arborist"))`, false)).toBe("true true");
    });

    it("GIVEN the hook WHEN a provider is serialized and code paths are computed THEN each module loads on use and works as itself", () => {
        const out = node(`${loaded}
            const pulumi = require("@pulumi/pulumi");
            (async () => {
                const before = l("typescript");
                const f = await pulumi.runtime.serializeFunction(() => 6 * 7);
                const shim = require("@pulumi/pulumi/typescript-shim");
                console.log(before, l("typescript"), typeof shim.createSourceFile, f.text.includes("6 * 7"));
                const paths = await pulumi.runtime.computeCodePaths({ extraIncludePackages: ["semver"] });
                console.log(l("@npmcli/arborist"), [...paths.keys()].some((k) => k.includes("semver")));
            })();`);
        expect(out.split("\n")).toEqual(["false true function true", "true true"]);
    });
});
