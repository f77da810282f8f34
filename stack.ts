// The stack's program: read the stack's config once, hand typed values to the components,
// return the outputs. index.ts exports them for `pulumi up`; the CLI runs this same function
// in-process (an inline program), which saves a language host and a TypeScript compiler start.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "./config/errors";
import { currentCommit } from "./config/git";
import { projectRoot } from "./config/root";
import { readStackFile } from "./config/stackFiles";
import { isBranchStack, PRODUCTION_STACK } from "./naming";
import { defineEnvironment, stackValues } from "./program";

/** The outputs, and the catalog the environment declares (the CLI keeps it for its no-op fast path). */
export function defineStack() {
    const stack = pulumi.getStack();
    const config = new pulumi.Config("dataops");
    const root = projectRoot(__dirname);
    let platform;
    try {
        platform = defineEnvironment({
            stack,
            values: stackValues(pulumi.runtime.allConfig()),
            // A branch mirrors production's committed text, not production's stack: no secret can come along.
            production: isBranchStack(stack) ? readStackFile(path.join(root, `Pulumi.${PRODUCTION_STACK}.yaml`)).values : undefined,
            serverAdminPassword: config.getSecret("serverAdminPassword"),
            loaderSecrets: config.getSecretObject<Record<string, Record<string, string>>>("loaderSecrets"),
            build: {
                projectVersion: (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version,
                commit: currentCommit(process.env, root),
            },
        }).platform;
    } catch (e) {
        // A config error is the user's to fix: show the message, not a stack trace.
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
    const outputs = {
        environment: platform.summary,
        userPasswords: platform.access.userPasswords,
        // Secret: the warehouse's admin connection, for `dataops env --admin` (never printed by up).
        adminConnection: platform.warehouse.admin,
        loaderConnections: pulumi.secret(pulumi.all(Object.fromEntries(Object.entries(platform.loaders).map(([n, l]) => [n, l.connection])))),
    };
    return { outputs, catalog: platform.catalog };
}
