// The program without Pulumi's config reading, so tests can run it for any stack.
import * as pulumi from "@pulumi/pulumi";
import { type Environment, resolveEnvironment } from "./config/environment";
import { ConfigError, NAMESPACE } from "./config/errors";
import { type BuildInfo, DataPlatform, SQL_ENGINES, type SqlEngine } from "./components";

export interface ProgramInput {
    readonly stack: string;
    /** The stack's own non-secret `dataops:*` values (namespace stripped, objects parsed). */
    readonly values: Readonly<Record<string, unknown>>;
    /** Production's committed non-secret values; needed by branch stacks. */
    readonly production?: Readonly<Record<string, unknown>>;
    readonly serverAdminPassword?: pulumi.Input<string>;
    readonly loaderSecrets?: pulumi.Input<Record<string, Record<string, string>>>;
    readonly build: BuildInfo;
}

export interface Program {
    readonly environment: Environment;
    readonly platform: DataPlatform;
}

export const SECRET_KEYS = ["serverAdminPassword", "loaderSecrets"] as const;

/** Validates everything first: a config error is raised before any resource is registered. */
export function defineEnvironment(input: ProgramInput): Program {
    const environment = resolveEnvironment({ stack: input.stack, values: input.values, production: input.production });
    const sqlEngine = (input.values.sqlEngine ?? "provider") as SqlEngine;
    if (!SQL_ENGINES.includes(sqlEngine))
        throw new ConfigError(`stack ${input.stack}`, [`${NAMESPACE}:sqlEngine: ${JSON.stringify(sqlEngine)} is not allowed (allowed: ${SQL_ENGINES.join(" | ")})`]);
    const platform = new DataPlatform(environment.prefix, {
        sqlEngine,
        environment,
        build: input.build,
        serverAdminPassword: input.serverAdminPassword,
        loaderSecrets: input.loaderSecrets,
    });
    return { environment, platform };
}

/**
 * The stack's non-secret `dataops:*` values from Pulumi's flat config map, where an
 * object arrives as JSON text (`dataops:warehouse` → `{"target":"server",…}`).
 */
export function stackValues(all: Readonly<Record<string, string>>): Record<string, unknown> {
    const values: Record<string, unknown> = {};
    for (const [key, text] of Object.entries(all)) {
        if (!key.startsWith(`${NAMESPACE}:`)) continue;
        const name = key.slice(NAMESPACE.length + 1);
        if ((SECRET_KEYS as readonly string[]).includes(name)) continue;
        try {
            values[name] = JSON.parse(text);
        } catch {
            values[name] = text;
        }
    }
    return values;
}
