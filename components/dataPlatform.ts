// One environment, composed: warehouse → database and layout → loaders → access.
import type * as Aws from "@pulumi/aws";
import { awsModule } from "./aws";
import * as pulumi from "@pulumi/pulumi";
import type { Environment } from "../config/environment";
import { loaderSchema } from "../config/schema";
import { environmentNames, environmentPrefix, PRODUCTION_STACK } from "../naming";
import { AccessRoles } from "./accessRoles";
import { EnvironmentDatabase } from "./database";
import { GrantQueue } from "./grantQueue";
import { LoaderConnector } from "./loaderConnector";
import type { Catalog, CopySpec, Provenance } from "./catalog";
import { providerObjects, type ProviderObjects, type SqlEngine, sqlObjects } from "./pg";
import { CatalogObjects } from "./sql";
import { Warehouse } from "./warehouse";

export interface BuildInfo {
    /** The project's version (package.json). */
    readonly projectVersion: string;
    /** The git commit the environment was built from. */
    readonly commit: string;
}

export interface DataPlatformArgs {
    readonly environment: Environment;
    readonly build: BuildInfo;
    /** Secret: the admin password of an existing server (`server` target). */
    readonly serverAdminPassword?: pulumi.Input<string>;
    /** Secret: loader name → secret setting → value. Branch stacks have their own, never production's. @default {} */
    readonly loaderSecrets?: pulumi.Input<Record<string, Record<string, string>>>;
    /** How objects inside the warehouse are made (see components/pg.ts). @default "provider" */
    readonly sqlEngine?: SqlEngine;
}

/**
 * How a branch's database starts (`branches.data`, as derived for this branch): a TEMPLATE copy
 * of `branches.templateDatabase` on a server; on aws, production's database inside the
 * copy-on-write clone of production's cluster, renamed to the branch's.
 */
export function copySpec(c: Environment["config"]): CopySpec | undefined {
    const b = c.branches;
    if (b.data === "empty") return undefined;
    const base = { mode: b.data, rawSchemas: c.loaders.map(loaderSchema).sort(), waitSeconds: b.copyWaitSeconds, ...(b.data === "sample" ? { sample: { ...b.sample } } : {}) };
    if (c.warehouse.target === "aws") {
        const prod = environmentPrefix(PRODUCTION_STACK);
        return { ...base, via: "rename", from: environmentNames(prod, c.warehouse.database).database, cluster: `${physicalName(prod)}-warehouse` };
    }
    // The mirror (config/mirror.ts) refuses a copy mode on a server without a template first.
    if (!b.templateDatabase) throw new Error(`branches.templateDatabase: is required for branches.data ${b.data} on the ${c.warehouse.target} target`);
    return { ...base, via: "template", from: b.templateDatabase };
}

/** AWS and Docker names: the prefix with hyphens (`br_main_1a2b3c4d` → `br-main-1a2b3c4d`). */
export function physicalName(prefix: string): string {
    return prefix.replace(/_/g, "-");
}

export class DataPlatform extends pulumi.ComponentResource {
    readonly warehouse: Warehouse;
    readonly database: EnvironmentDatabase;
    readonly loaders: Record<string, LoaderConnector>;
    readonly access: AccessRoles;
    /** The `sql` engine's catalog (roles, schemas, grants) as declared; undefined with the provider engine. */
    readonly catalog?: pulumi.Output<Catalog>;
    /** Everything a person needs to find and reach the environment; no secrets. */
    readonly summary: pulumi.Output<EnvironmentSummary>;

    constructor(name: string, args: DataPlatformArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("dataops:platform:DataPlatform", name, {}, opts);
        const env = args.environment;
        const c = env.config;
        const w = c.warehouse;
        if (w.target === "server" && args.serverAdminPassword === undefined)
            throw new Error(`DataPlatform ${name}: the server target needs [serverAdminPassword] (the secret dataops:serverAdminPassword)`);
        const names = environmentNames(env.prefix, w.database);
        const physical = physicalName(env.prefix);
        const tags: Record<string, string> = {
            "dataops:environment": env.stack,
            "dataops:kind": env.kind,
            "dataops:version": args.build.projectVersion,
            "dataops:commit": args.build.commit,
            ...(env.branch ? { "dataops:branch": env.branch } : {}),
            ManagedBy: "pulumi",
        };
        const parent = { parent: this };
        const loadersOnAws = w.target === "aws" && c.loaders.some((l) => l.tool !== "fivetran" && l.tool !== "stitch");

        // Loader tasks get their own security group, which the warehouse admits.
        let loaderNetwork: { cluster: Aws.ecs.Cluster; sg: Aws.ec2.SecurityGroup } | undefined;
        if (loadersOnAws) {
            const aws = awsModule();
            loaderNetwork = {
                cluster: new aws.ecs.Cluster(`${name}-loaders`, { name: `${physical}-loaders`, tags }, parent),
                sg: new aws.ec2.SecurityGroup(
                    `${name}-loaders-sg`,
                    { vpcId: w.aws!.vpcId, description: `Loader tasks of ${env.stack}`, egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }], tags },
                    parent,
                ),
            };
        }

        const branches = c.branches;
        const cloneOnAws = env.kind === "branch" && w.target === "aws" && branches.data === "clone";
        this.warehouse = new Warehouse(
            `${name}-warehouse`,
            {
                target: w.target,
                engineVersion: w.engineVersion,
                physicalName: physical,
                sizing: w.sizing,
                backups: w.backups,
                protection: w.protection,
                upgrade: w.upgrade,
                aws: w.aws
                    ? {
                          ...w.aws,
                          allowedSecurityGroupIds: loaderNetwork ? [loaderNetwork.sg.id] : [],
                          cloneFromCluster: cloneOnAws ? `${physicalName(environmentPrefix(PRODUCTION_STACK))}-warehouse` : undefined,
                      }
                    : undefined,
                docker: w.docker,
                server: w.server ? { ...w.server, adminPassword: args.serverAdminPassword ?? "" } : undefined,
                tags,
                sqlEngine: args.sqlEngine,
            },
            parent,
        );

        const admin = this.warehouse.admin;
        const pg = this.warehouse.provider
            ? providerObjects(this.warehouse.provider, admin, { name: `${name}-server-version`, engineVersion: w.engineVersion, opts: parent })
            : // Every object inside the warehouse, as one resource; protected with production's database.
              sqlObjects(`${name}-catalog`, admin, { parent: this, protect: w.protection.protect }, w.engineVersion);
        const grants = new GrantQueue();
        const copy = env.kind === "branch" ? copySpec(c) : undefined;
        if (copy && pg.engine !== "sql")
            throw new Error(`DataPlatform ${name}: branches.data ${copy.mode} needs the sql engine (dataops:sqlEngine: sql), which makes the copy the branch's own; the provider engine cannot`);
        this.database = new EnvironmentDatabase(
            `${name}-db`,
            {
                database: names.database,
                ownerRole: names.ownerRole,
                schemas: w.schemas,
                copy,
                comment: `dataops environment ${env.stack} (${env.kind}${env.branch ? `, branch ${env.branch}` : ""}); dataops-environments ${args.build.projectVersion}, commit ${args.build.commit}`,
                pg,
                grants,
                protect: w.protection.protect,
            },
            parent,
        );

        const loaderSecrets = pulumi.output(args.loaderSecrets ?? {});
        this.loaders = {};
        for (const l of c.loaders) {
            this.loaders[l.name] = new LoaderConnector(
                `${name}-loader-${l.name}`,
                {
                    loader: l,
                    mode: env.loaderModes[l.name],
                    target: w.target,
                    schema: loaderSchema(l),
                    roleName: names.loaderRole(l.name),
                    database: this.database.name,
                    schemaOwner: this.database.owner.name,
                    host: this.warehouse.host,
                    port: this.warehouse.port,
                    pg,
                    grants,
                    secretValues: pulumi.secret(loaderSecrets.apply((s) => s[l.name] ?? {})),
                    physicalName: physical,
                    aws: loaderNetwork ? { clusterArn: loaderNetwork.cluster.arn, subnetIds: w.aws!.subnetIds, securityGroupId: loaderNetwork.sg.id, region: w.aws!.region } : undefined,
                    tags,
                },
                // Its schema and grants take the database's name and owner as outputs: that is the dependency.
                parent,
            );
        }

        const loaderList = c.loaders.map((l) => ({ name: l.name, schema: loaderSchema(l) }));
        this.access = new AccessRoles(
            `${name}-access`,
            {
                access: c.access,
                physical: names.role,
                ownerRole: names.ownerRole,
                database: this.database.name,
                schemas: [...w.schemas, ...loaderList.map((l) => l.schema)],
                loaders: loaderList,
                pg,
                grants,
                schemaResources: { ...this.database.schemas, ...Object.fromEntries(c.loaders.map((l) => [loaderSchema(l), this.loaders[l.name].schema])) },
                loaderRoles: Object.fromEntries(c.loaders.map((l) => [l.name, this.loaders[l.name].role])),
            },
            parent,
        );

        pg.finish();
        if (pg instanceof CatalogObjects) this.catalog = pg.catalog;
        // What the server really runs (both engines read it, after checking it against the pin).
        const serverVersion: pulumi.Output<string | null> = pg instanceof CatalogObjects ? pg.resource.serverVersion : "serverVersion" in pg ? (pg as ProviderObjects).serverVersion : pulumi.output(null);
        const copied: pulumi.Output<Provenance | null> = pg instanceof CatalogObjects ? pg.resource.copied.apply((p) => p ?? null) : pulumi.output(null);

        this.summary = pulumi.all([this.warehouse.host, this.warehouse.port, this.warehouse.sslMode, serverVersion, copied]).apply(([host, port, sslMode, running, data]) => {
            const url = (user: string) => `postgresql://${user}@${host}:${port}/${names.database}`;
            const roles: Record<string, string> = { owner: names.ownerRole, ...this.access.roleNames };
            return {
                stack: env.stack,
                kind: env.kind,
                branch: env.branch ?? null,
                ttl: env.ttl ?? null,
                target: w.target,
                engineVersion: w.engineVersion,
                serverVersion: running,
                data: data ?? null,
                host,
                port,
                sslMode,
                database: names.database,
                schemas: [...w.schemas, ...loaderList.map((l) => l.schema)],
                roles,
                users: Object.fromEntries(
                    c.access.users.map((u) => [u.name, { login: this.access.userNames[u.name], url: url(this.access.userNames[u.name]), roles: [...u.roles], writes: this.access.writesAsUser(u.name) }]),
                ),
                loaders: Object.fromEntries(
                    c.loaders.map((l) => [l.name, { tool: l.tool, role: names.loaderRole(l.name), schema: loaderSchema(l), runtime: this.loaders[l.name].runtime, mode: env.loaderModes[l.name], url: url(names.loaderRole(l.name)) }]),
                ),
                build: { ...args.build },
            };
        });

        this.registerOutputs({ summary: this.summary });
    }
}

export interface EnvironmentSummary {
    stack: string;
    kind: string;
    branch: string | null;
    ttl: string | null;
    target: string;
    /** Pinned, MAJOR.MINOR. */
    engineVersion: string;
    /** What the server runs, MAJOR.MINOR; null where it is not read (the provider engine). */
    serverVersion: string | null;
    /** Where a branch's data came from (`branches.data`); null when it started empty. */
    data: Provenance | null;
    host: string;
    port: number;
    /** libpq sslmode clients use. */
    sslMode: string;
    database: string;
    schemas: string[];
    roles: Record<string, string>;
    /** `writes`: the user acts through a role that writes (who runs dbt). */
    users: Record<string, { login: string; url: string; roles: string[]; writes: boolean }>;
    loaders: Record<string, { tool: string; role: string; schema: string; runtime: string; mode: string; url: string }>;
    build: BuildInfo;
}
