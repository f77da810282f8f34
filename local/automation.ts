// Pulumi's Automation API, loaded on first use: it brings the whole Pulumi runtime with it
// (about 0.8 s of module loading), which commands that never call the engine (help, audit,
// stack-name, an up that finds nothing to do) must not pay for.
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import type * as Automation from "@pulumi/pulumi/automation";
import { SemVer } from "semver";

let loaded: typeof Automation | undefined;

/** bin/lazy-sdk.js: loads typescript and @npmcli/arborist for the SDK only when used. */
export function lazySdkHook(): string {
    return join(dirname(require.resolve("@pulumi/pulumi/package.json")), "..", "..", "..", "bin", "lazy-sdk.js");
}

export function automation(): typeof Automation {
    if (!loaded) {
        const hook = lazySdkHook();
        if (existsSync(hook)) require(hook);
        loaded = require("@pulumi/pulumi/automation") as typeof Automation;
    }
    return loaded!;
}

/**
 * The engine binary as the Automation API wants it, without asking it its version:
 * PulumiCommand.get runs `pulumi version` (a process start) to learn what the bootstrap's
 * stamp (scripts/engine.mjs) already says. The Automation API itself loads on first use.
 */
export function pulumiCommand(bin: string, version: string): Automation.PulumiCommand {
    let real: Automation.PulumiCommand | undefined;
    const command = join(bin, "pulumi");
    const parsed = new SemVer(version);
    const lazy = {
        command,
        version: parsed,
        run(...args: unknown[]) {
            // Its constructor is private in the type only; get() calls it with exactly these.
            const Ctor = automation().PulumiCommand as unknown as new (command: string, version: SemVer) => Automation.PulumiCommand;
            real ??= new Ctor(command, parsed);
            const call = (real as unknown as { run(...a: unknown[]): Promise<unknown> }).run(...args);
            if (!process.env.DATAOPS_DEBUG) return call;
            // DATAOPS_DEBUG: each engine call and how long it took, where cycle time goes.
            const started = Date.now();
            const said = () => process.stderr.write(`dataops: engine: pulumi ${(args[0] as string[]).filter((a) => !a.startsWith("--")).slice(0, 3).join(" ")}: ${Date.now() - started} ms\n`);
            return call.finally(said);
        },
    };
    return lazy as unknown as Automation.PulumiCommand;
}
