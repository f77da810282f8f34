// Wiring only: read the stack's config once, hand typed values to the components.
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { currentCommit } from "./cli/git";
import { ConfigError } from "./config/errors";
import { readStackFile } from "./config/stackFiles";
import { PRODUCTION_STACK, isBranchStack } from "./naming";
import { defineEnvironment, stackValues } from "./program";

const stack = pulumi.getStack();
const config = new pulumi.Config("dataops");
const root = __dirname;
const productionFile = path.join(root, `Pulumi.${PRODUCTION_STACK}.yaml`);

function define() {
    try {
        return defineEnvironment({
            stack,
            values: stackValues(pulumi.runtime.allConfig()),
            // A branch mirrors production's committed text, not production's stack: no secret can come along.
            production: isBranchStack(stack) ? readStackFile(productionFile).values : undefined,
            serverAdminPassword: config.getSecret("serverAdminPassword"),
            loaderSecrets: config.getSecretObject<Record<string, Record<string, string>>>("loaderSecrets"),
            build: {
                projectVersion: (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }).version,
                commit: currentCommit(process.env, root),
            },
        });
    } catch (e) {
        // A config error is the user's to fix: show the message, not a stack trace.
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
}

const { platform } = define();

export const environment = platform.summary;
export const userPasswords = platform.access.userPasswords;
// Secret: the warehouse's admin connection, for `dataops env --admin` (never printed by up).
export const adminConnection = platform.warehouse.admin;
export const loaderConnections = pulumi.secret(pulumi.all(Object.fromEntries(Object.entries(platform.loaders).map(([n, l]) => [n, l.connection]))));
