// Which environment a stack is, and its effective config. Pure: index.ts hands it
// the stack's config and production's committed file; tests and the audit call it too.
import { z } from "zod";
import { ConfigError, NAMESPACE, toProblems } from "./errors";
import { deriveBranchConfig, type Difference, MirrorError } from "./mirror";
import { identifier, oneOf, text, TTL_MAX_HOURS, durationHours } from "./rules";
import { BRANCH_DATA, type DataopsConfig, dataopsConfigSchema, type BranchMode, TARGETS, serverConnection } from "./schema";
import { DEVELOPMENT_STACK, PG_IDENTIFIER_MAX, PRODUCTION_STACK, environmentPrefix, isBranchStack, stackNameForBranch } from "../naming";

export type EnvironmentKind = "production" | "development" | "branch" | "custom";
/** How a loader runs here: on its schedule (production-like stacks) or as the branch policy says. */
export type LoaderMode = "scheduled" | BranchMode;

/** Rows a loader in `sample` mode asks its tap for; the runtime gets it as DATAOPS_SAMPLE_ROWS. */
export const SAMPLE_ROWS = 1000;

export interface Environment {
    readonly kind: EnvironmentKind;
    readonly stack: string;
    /** Prefix of database and role names. */
    readonly prefix: string;
    readonly branch?: string;
    /** How long a branch environment lives after its last update. */
    readonly ttl?: string;
    readonly config: DataopsConfig;
    readonly loaderModes: Readonly<Record<string, LoaderMode>>;
    /** Branch only: how it differs from production, and why. */
    readonly differences: readonly Difference[];
}

// Keys a stack may carry besides the schema's. They describe where and as whom the
// environment runs, never what it contains.
const SCHEMA_KEYS = Object.keys(dataopsConfigSchema.shape);
export const RUNTIME_KEYS = ["branch", "target", "data", "templateDatabase", "server", "serverAdminPassword", "loaderSecrets", "sqlEngine"] as const;
const BRANCH_ONLY_KEYS = ["branch", "target", "data", "templateDatabase"];
const branchRuntime = z.object({
    branch: text("the git branch the stack was made for").min(1, { error: "is empty (the git branch name)" }).optional(),
    target: oneOf(TARGETS).optional(),
    data: oneOf(BRANCH_DATA).optional(),
    // Another environment's database on the embedded server: prefix, _ and name, up to PostgreSQL's 63 bytes.
    templateDatabase: identifier("database name", PG_IDENTIFIER_MAX).optional(),
    server: serverConnection.optional(),
});

export interface StackInput {
    readonly stack: string;
    /** The stack's own `dataops:*` values, namespace stripped (objects already parsed). Secrets excluded. */
    readonly values: Readonly<Record<string, unknown>>;
    /** Production's committed `dataops:*` values, needed for branch stacks. */
    readonly production?: Readonly<Record<string, unknown>>;
}

export function parseConfig(values: Readonly<Record<string, unknown>>, source: string): DataopsConfig {
    const known = new Set<string>([...SCHEMA_KEYS, ...RUNTIME_KEYS]);
    const unknown = Object.keys(values).filter((k) => !known.has(k));
    const picked = Object.fromEntries(Object.entries(values).filter(([k]) => SCHEMA_KEYS.includes(k)));
    const result = dataopsConfigSchema.safeParse(picked, { reportInput: true });
    const problems = unknown.map((k) => `${NAMESPACE}:${k}: is not a known key (allowed: ${[...known].join(", ")})`);
    if (!result.success) problems.push(...toProblems(result.error));
    if (problems.length > 0) throw new ConfigError(source, problems);
    return result.data!;
}

export function resolveEnvironment(input: StackInput): Environment {
    const { stack, values } = input;
    const prefix = environmentPrefix(stack);
    if (!isBranchStack(stack)) {
        const source = `Pulumi.${stack}.yaml`;
        const misplaced = Object.keys(values).filter((k) => BRANCH_ONLY_KEYS.includes(k));
        if (misplaced.length > 0)
            throw new ConfigError(source, misplaced.map((k) => `${NAMESPACE}:${k}: is only for branch stacks (br-…); ${k === "target" ? "set warehouse.target in this file instead" : k === "branch" ? "remove it" : "a branch's data policy is branches.data in Pulumi.prod.yaml"}`));
        const config = parseConfig(values, source);
        const kind: EnvironmentKind = stack === PRODUCTION_STACK ? "production" : stack === DEVELOPMENT_STACK ? "development" : "custom";
        return { kind, stack, prefix, config, loaderModes: Object.fromEntries(config.loaders.map((l) => [l.name, "scheduled"])), differences: [] };
    }

    const source = `stack ${stack}`;
    const known = new Set<string>([...SCHEMA_KEYS, ...RUNTIME_KEYS]);
    const unknown = Object.keys(values).filter((k) => !known.has(k));
    if (unknown.length > 0)
        throw new ConfigError(source, unknown.map((k) => `${NAMESPACE}:${k}: is not a known key (allowed on a branch stack: ${RUNTIME_KEYS.join(", ")})`));
    // Mirror by construction: a branch stack may say where it runs, never what it contains.
    const contentKeys = Object.keys(values).filter((k) => SCHEMA_KEYS.includes(k));
    if (contentKeys.length > 0)
        throw new ConfigError(
            source,
            contentKeys.map((k) => `${NAMESPACE}:${k}: is set on a branch stack, which mirrors production (change it in Pulumi.prod.yaml through a merge request)`),
        );
    const runtime = branchRuntime.safeParse(
        Object.fromEntries(Object.entries(values).filter(([k]) => ["branch", "target", "data", "templateDatabase", "server"].includes(k))),
        { reportInput: true },
    );
    if (!runtime.success) throw new ConfigError(source, toProblems(runtime.error));
    if (!input.production) throw new ConfigError(source, [`Pulumi.${PRODUCTION_STACK}.yaml: is required to derive a branch environment (it was not found)`]);
    const branch = runtime.data.branch;
    if (branch !== undefined && stackNameForBranch(branch) !== stack)
        throw new ConfigError(source, [`${NAMESPACE}:branch: "${branch}" belongs to stack ${stackNameForBranch(branch)}, not ${stack}`]);

    const prod = parseConfig(input.production, `Pulumi.${PRODUCTION_STACK}.yaml`);
    let mirror;
    try {
        mirror = deriveBranchConfig(prod, { target: runtime.data.target, server: runtime.data.server, data: runtime.data.data, templateDatabase: runtime.data.templateDatabase });
    } catch (e) {
        if (e instanceof MirrorError) throw new ConfigError(source, [e.message]);
        throw e;
    }
    return {
        kind: "branch",
        stack,
        prefix,
        branch,
        ttl: prod.branches.ttl,
        config: mirror.config,
        loaderModes: Object.fromEntries(mirror.config.loaders.map((l) => [l.name, l.branchMode ?? prod.branches.loaderMode])),
        differences: mirror.differences,
    };
}

/** When a branch environment updated at `from` expires. */
export function expiresAt(ttl: string, from: Date): Date {
    const hours = durationHours(ttl) ?? TTL_MAX_HOURS;
    return new Date(from.getTime() + hours * 3_600_000);
}
