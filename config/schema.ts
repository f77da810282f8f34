// The single source of truth for a stack's `dataops:*` config: types, defaults and
// the messages users see. index.ts, the CLI, the audit and the config reference
// all read it from here.
import { z } from "zod";
import {
    NAME_MAX,
    awsId,
    cidr,
    cron,
    duration,
    engineVersion,
    envName,
    flag,
    hostname,
    identifier,
    instanceClass,
    integer,
    isSettingKey,
    list,
    oneOf,
    pinnedImage,
    pinnedVersion,
    record,
    schemaName,
    schemaPattern,
    text,
} from "./rules";

export const TARGETS = ["aws", "docker", "server"] as const;
export const LOADER_TOOLS = ["meltano", "airbyte", "fivetran", "stitch", "image"] as const;
export const SAAS_TOOLS: readonly LoaderTool[] = ["fivetran", "stitch"];
export const BRANCH_MODES = ["paused", "sample", "live"] as const;
export const BRANCH_DATA = ["empty", "schema", "sample", "clone"] as const;
export const AWS_ENGINES = ["aurora", "rds"] as const;
export const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full"] as const;
/** Role names the project creates itself; a functional role may not take them. */
export const RESERVED_ROLES = ["owner", "loader", "public"] as const;

export type Target = (typeof TARGETS)[number];
export type BranchData = (typeof BRANCH_DATA)[number];
export type LoaderTool = (typeof LOADER_TOOLS)[number];
export type BranchMode = (typeof BRANCH_MODES)[number];

export const serverConnection = record({
    host: hostname().describe("Host name or address of the PostgreSQL server."),
    port: integer(1, 65535).default(5432).describe("Port of the server."),
    adminUser: identifier("role name", 63).default("postgres").describe("A role that can create databases and roles; its password is the secret `dataops:serverAdminPassword`."),
    sslMode: oneOf(SSL_MODES).default("prefer").describe("libpq sslmode used by the provider."),
});

const warehouse = record({
    engineVersion: engineVersion().describe("Pinned PostgreSQL version, MAJOR.MINOR. Changing it is a merge request, rehearsed on a branch first."),
    target: oneOf(TARGETS).describe("Where the warehouse runs: `aws` (Aurora or RDS), `docker` (a local container) or `server` (an existing PostgreSQL)."),
    database: identifier("database name").default("analytics").describe("Name of the environment's database; the environment prefix is put in front of it."),
    schemas: list(schemaName(), "schema names").default(["staging", "marts"]).describe("Schema layout besides the loaders' raw schemas, e.g. staging and marts."),
    sizing: record({
        instanceClass: instanceClass().default("db.t4g.medium").describe("AWS instance class."),
        instances: integer(1, 15).default(1).describe("Aurora instances (writer plus readers); RDS uses one."),
        storageGb: integer(20, 65536).default(20).describe("Allocated storage for RDS, in GiB."),
    })
        .default({ instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 })
        .describe("Size of the warehouse on `aws`."),
    backups: record({
        retentionDays: integer(1, 35).default(7).describe("Days automated backups are kept."),
        window: text(`a UTC window "HH:MM-HH:MM"`)
            .regex(/^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/, { error: `is not a UTC window "HH:MM-HH:MM", e.g. "03:00-04:00"` })
            .default("03:00-04:00")
            .describe("Daily backup window, UTC."),
    })
        .default({ retentionDays: 7, window: "03:00-04:00" })
        .describe("Automated backups on `aws`."),
    protection: record({
        deletionProtection: flag().default(false).describe("AWS deletion protection on the cluster."),
        protect: flag().default(false).describe("Pulumi `protect` on the warehouse and database: `pulumi destroy` refuses until it is lifted."),
    })
        .default({ deletionProtection: false, protect: false })
        .describe("What stops the warehouse from being deleted."),
    upgrade: record({
        allowMajor: flag()
            .default(false)
            .describe("Acknowledges a major version change of `engineVersion` (on `aws`: `allowMajorVersionUpgrade`). `dataops audit --base` flags a major change without it."),
        applyImmediately: flag().default(false).describe("On `aws`: apply version and parameter changes now, not in the next maintenance window."),
    })
        .default({ allowMajor: false, applyImmediately: false })
        .describe("How an engine version change is applied. Branch environments always allow both: they are disposable."),
    aws: record({
        engine: oneOf(AWS_ENGINES).default("aurora").describe("Aurora PostgreSQL cluster or a single RDS PostgreSQL instance."),
        vpcId: awsId("vpc").describe("VPC the warehouse runs in."),
        subnetIds: list(awsId("subnet"), "subnet ids").min(2, { error: "needs at least 2 subnets in different availability zones" }).describe("Private subnets for the subnet group and loader tasks."),
        allowedCidrs: list(cidr(), "CIDR blocks").default([]).describe("Networks allowed to reach port 5432."),
        publiclyAccessible: flag().default(false).describe("Give the instances a public address. Never in production."),
        kmsKeyId: text("a KMS key id or ARN").optional().describe("Customer-managed KMS key for storage encryption; AWS's default key when absent."),
        region: text("an AWS region such as eu-west-1").regex(/^[a-z]{2}(-[a-z]+)+-\d$/, { error: `is not an AWS region such as "eu-west-1"` }).optional().describe("Region, when not the provider's default."),
    })
        .optional()
        .describe("Network and engine settings for the `aws` target (required there)."),
    docker: record({
        hostPort: integer(1024, 65535).optional().describe("Host port the container publishes; Docker picks a free one when absent."),
    })
        .optional()
        .describe("Settings for the `docker` target."),
    server: serverConnection.optional().describe("The existing server for the `server` target (required there)."),
});

const loader = record({
    name: identifier("loader name", NAME_MAX).describe("Loader name; its raw schema and login role derive from it."),
    tool: oneOf(LOADER_TOOLS).describe("Meltano (Singer taps), Airbyte, Fivetran, Stitch, or any container image."),
    version: pinnedVersion().optional().describe("Pinned tool version (meltano) or connector image tag (airbyte). Required for those tools."),
    image: pinnedImage().optional().describe("Container image with a pinned tag or digest; required for `image`, optional override for meltano/airbyte."),
    source: text("an extractor or source name such as tap-salesforce").regex(/^[a-z0-9][a-z0-9_.-]{0,99}$/, { error: `is not an extractor or source name (lowercase letters, digits, . _ -), e.g. "tap-salesforce"` }).describe("Extractor (Meltano tap), Airbyte source, or Fivetran/Stitch connector."),
    schema: schemaName().optional().describe("Raw schema the loader writes; `raw_<name>` by default."),
    schedule: cron().default("0 */6 * * *").describe("When the loader runs (cron, UTC)."),
    settings: z
        .record(z.string(), z.union([z.string(), z.number(), z.boolean()]), { error: "is not a map of setting names to strings, numbers or booleans" })
        .refine((s) => Object.keys(s).every(isSettingKey), { error: "has a setting name that is not letters, digits, _ . - (at most 100 characters)" })
        .default({})
        .describe("Non-secret settings passed to the runtime."),
    secrets: list(envName(), "setting names").default([]).describe("Names of secret settings; values come from the stack secret `dataops:loaderSecrets`, never from committed text."),
    branchMode: oneOf(BRANCH_MODES).optional().describe("How the loader behaves in branch environments; the branch policy's `loaderMode` when absent."),
});

const functionalRole = record({
    read: list(schemaPattern(), "schema patterns").default([]).describe("Schemas the role reads (SELECT)."),
    write: list(schemaPattern(), "schema patterns").default([]).describe("Schemas the role writes (CREATE, and all DML on tables)."),
});

const user = record({
    name: identifier("user name", NAME_MAX).describe("Login name; the environment prefix is put in front of it."),
    roles: list(identifier("role name", NAME_MAX), "role names").min(1, { error: "needs at least one role" }).describe("Functional roles (or `owner`) the user is a member of."),
});

const access = record({
    roles: z
        .record(identifier("role name", NAME_MAX), functionalRole, { error: "is not a map of role names to {read, write}" })
        .default({
            transformer: { read: ["raw_*"], write: ["staging", "marts"] },
            reporter: { read: ["marts"], write: [] },
        })
        .describe("Functional roles with the schemas they read and write."),
    users: list(user, "users").default([]).describe("Human users and the roles they are members of."),
});

const branches = record({
    target: oneOf(TARGETS).default("server").describe("Where branch environments run."),
    allowedTargets: list(oneOf(TARGETS), "targets").optional().describe("Targets `dataops up --target` may choose; only `target` when absent."),
    ttl: duration().default("72h").describe("How long a branch environment lives after its last `up`."),
    data: oneOf(BRANCH_DATA)
        .default("empty")
        .describe(
            "What a branch starts with: `empty` objects; `schema`, the template database's objects with no rows; `sample`, the same with a bounded sample of each raw table's rows; `clone`, all of its data (a copy-on-write clone of production's cluster on aws).",
        ),
    allowedData: list(oneOf(BRANCH_DATA), "data modes").optional().describe("Data modes `dataops up --data` may choose; only `data` when absent."),
    templateDatabase: identifier("database name").optional().describe("On a server: the database a branch copies for `schema`, `sample` and `clone` (production's, or a snapshot of it; never postgres, template0, template1 or a branch's)."),
    sample: record({
        rows: integer(1, 10_000_000).optional().describe("At most this many rows of each raw table."),
        percent: z
            .number({ error: "is not a number (a percentage greater than 0 and at most 100)" })
            .gt(0, { error: "is not a percentage greater than 0 and at most 100" })
            .max(100, { error: "is not a percentage greater than 0 and at most 100" })
            .optional()
            .describe("About this percentage of each raw table's rows (a random sample of rows)."),
    })
        .default({ rows: 1000 })
        .describe("How much of each raw table `sample` copies: `rows` or `percent`, one of them."),
    copyWaitSeconds: integer(0, 3600)
        .default(60)
        .describe("How long a copy waits for the template database's other sessions to end (PostgreSQL copies a database no one else is connected to); then the up fails, naming the database. dataops never ends those sessions."),
    caps: record({
        instanceClass: instanceClass().default("db.t4g.medium").describe("Largest instance class a branch gets."),
        instances: integer(1, 15).default(1).describe("Most instances a branch gets."),
        storageGb: integer(20, 65536).default(20).describe("Most storage a branch gets, GiB."),
    })
        .default({ instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 })
        .describe("Size caps for branch warehouses."),
    allowVersionAhead: flag()
        .default(false)
        .describe("Whether a merge request may pin a newer `engineVersion` than production runs, so that its branch rehearses the upgrade before it merges (`dataops audit --base` checks it)."),
    loaderMode: oneOf(BRANCH_MODES).default("paused").describe("Default loader behaviour in branches: a branch must not hammer production sources."),
    server: serverConnection.optional().describe("A shared server for branches on the `server` target; the embedded local PostgreSQL when absent."),
});

const branchesDefault = { target: "server", ttl: "72h", data: "empty", sample: { rows: 1000 }, copyWaitSeconds: 60, allowVersionAhead: false, caps: { instanceClass: "db.t4g.medium", instances: 1, storageGb: 20 }, loaderMode: "paused" } as const;

export const dataopsConfigSchema = record({
    warehouse: warehouse.describe("The versioned PostgreSQL warehouse: engine version, where it runs, size, backups, protection, schema layout."),
    loaders: list(loader, "loaders").default([]).describe("Loader connectors."),
    access: access.default({ roles: { transformer: { read: ["raw_*"], write: ["staging", "marts"] }, reporter: { read: ["marts"], write: [] } }, users: [] }).describe("Functional roles and users."),
    branches: branches.default(branchesDefault).describe("Production's policy for branch environments."),
}).superRefine(crossChecks);

export type DataopsConfigInput = z.input<typeof dataopsConfigSchema>;
export type DataopsConfig = z.output<typeof dataopsConfigSchema>;
export type WarehouseConfig = DataopsConfig["warehouse"];
export type LoaderConfig = DataopsConfig["loaders"][number];
export type AccessConfig = DataopsConfig["access"];
export type BranchPolicy = DataopsConfig["branches"];
export type ServerConnection = z.output<typeof serverConnection>;

/** The raw schema a loader writes. */
export function loaderSchema(l: Pick<LoaderConfig, "name" | "schema">): string {
    return l.schema ?? `raw_${l.name}`;
}

/** Every schema of an environment: the layout plus each loader's raw schema. */
export function allSchemas(c: Pick<DataopsConfig, "warehouse" | "loaders">): string[] {
    return [...c.warehouse.schemas, ...c.loaders.map(loaderSchema)];
}

type Ctx = z.RefinementCtx;

// Rules that span keys. Each names the exact key path, what is allowed and what was given.
function crossChecks(c: DataopsConfig, ctx: Ctx): void {
    const add = (path: (string | number)[], message: string, input?: unknown) => ctx.addIssue({ code: "custom", path, message, input });
    const w = c.warehouse;
    if (w.target === "aws" && !w.aws) add(["warehouse", "aws"], "is required when warehouse.target is aws (vpcId, subnetIds)");
    if (w.target === "server" && !w.server) add(["warehouse", "server"], "is required when warehouse.target is server (host, port, adminUser)");

    // Duplicate names would collide as schemas or roles in the same database.
    const seenSchemas = new Map<string, string>();
    w.schemas.forEach((s, i) => noteUnique(seenSchemas, s, `warehouse.schemas[${i}]`, ["warehouse", "schemas", i], add));
    const loaderNames = new Set<string>();
    c.loaders.forEach((l, i) => {
        if (loaderNames.has(l.name)) add(["loaders", i, "name"], "is used by another loader (loader names must be unique)", l.name);
        loaderNames.add(l.name);
        noteUnique(seenSchemas, loaderSchema(l), `loaders[${i}].schema`, ["loaders", i, "schema"], add);
        if ((l.tool === "meltano" || l.tool === "airbyte") && !l.version && !l.image) add(["loaders", i, "version"], `is required for tool ${l.tool} (a pinned version such as "3.5.4")`);
        if (l.tool === "image" && !l.image) add(["loaders", i, "image"], "is required for tool image (a container image with a pinned tag or digest)");
    });

    const schemas = allSchemas(c);
    for (const [role, grants] of Object.entries(c.access.roles)) {
        if ((RESERVED_ROLES as readonly string[]).includes(role) || role.startsWith("loader_"))
            add(["access", "roles", role], `is a reserved role name (not allowed: ${RESERVED_ROLES.join(", ")}, loader_*)`, role);
        for (const kind of ["read", "write"] as const) {
            grants[kind].forEach((p, i) => {
                // A prefix such as raw_* may match nothing yet (no loaders); an exact name must exist.
                if (!p.endsWith("*") && !schemas.includes(p))
                    add(["access", "roles", role, kind, i], `matches no schema of the environment (schemas: ${schemas.join(", ")})`, p);
            });
        }
    }
    const roleNames = new Set([...Object.keys(c.access.roles), "owner"]);
    const userNames = new Set<string>();
    c.access.users.forEach((u, i) => {
        if (userNames.has(u.name)) add(["access", "users", i, "name"], "is used by another user (user names must be unique)", u.name);
        if (roleNames.has(u.name) || u.name.startsWith("loader_")) add(["access", "users", i, "name"], "collides with a role name (a user needs a name of its own)", u.name);
        userNames.add(u.name);
        u.roles.forEach((r, j) => {
            if (!roleNames.has(r)) add(["access", "users", i, "roles", j], `is not a role of this config (allowed: ${[...roleNames].join(", ")})`, r);
        });
    });

    const b = c.branches;
    if (b.allowedTargets && !b.allowedTargets.includes(b.target))
        add(["branches", "allowedTargets"], `must include branches.target (${b.target})`, b.allowedTargets);
    if (b.data !== "empty" && b.target === "docker")
        add(["branches", "data"], "is not available on the docker target, whose new container has nothing to copy (allowed there: empty)", b.data);
    if (b.allowedData && !b.allowedData.includes(b.data)) add(["branches", "allowedData"], `must include branches.data (${b.data})`, b.allowedData);
    const copying = [...new Set([b.data, ...(b.allowedData ?? [])])].filter((d) => d !== "empty" && (d !== "clone" || b.target !== "aws"));
    if (copying.length > 0 && b.target === "server" && !b.templateDatabase)
        add(["branches", "templateDatabase"], `is required when branches.data is ${copying.join(" or ")} on the ${b.target} target (the database to copy)`);
    if (b.templateDatabase) {
        const problem = templateProblem(b.templateDatabase);
        if (problem) add(["branches", "templateDatabase"], problem, b.templateDatabase);
    }
    if ((b.data === "schema" || b.data === "sample") && b.target === "aws")
        add(["branches", "data"], "is not available on the aws target (allowed there: empty | clone)", b.data);
    if ((b.sample.rows === undefined) === (b.sample.percent === undefined))
        add(["branches", "sample"], "needs exactly one of rows or percent (e.g. rows: 1000)", b.sample);
    if (b.data === "clone" && b.target === "aws" && w.target !== "aws")
        add(["branches", "data"], "on the aws target needs production on aws (a copy-on-write clone of its cluster)", b.data);
}

function noteUnique(seen: Map<string, string>, schema: string, where: string, path: (string | number)[], add: (p: (string | number)[], m: string, i?: unknown) => void) {
    const first = seen.get(schema);
    if (first !== undefined) add(path, `is already used by ${first} (schema names must be unique)`, schema);
    else seen.set(schema, where);
}

/** Databases a branch must never copy: the server's own, and branches' (disposable, and another team's work). */
export function templateProblem(database: string, allow: { branches?: boolean } = {}): string | undefined {
    if (["postgres", "template0", "template1"].includes(database))
        return "is a database of the server itself, not an environment's (name production's database, or a snapshot of it)";
    if (database.startsWith("br_") && !allow.branches) return "is a branch environment's database (br_…), which is disposable and another branch's work (name production's database, or a snapshot of it)";
    return undefined;
}
