// The versioned PostgreSQL an environment runs in. Three targets, one set of outputs,
// so everything above the warehouse is the same on AWS, in Docker and on a server.
import { awsModule } from "./aws";
import * as docker from "@pulumi/docker";
import { DataMajor } from "./dataMajor";
import * as pulumi from "@pulumi/pulumi";
import * as postgresql from "@pulumi/postgresql";
import type { Target } from "../config/schema";
import { type AdminConnection, GeneratedPassword } from "./generated";
import type { SqlEngine } from "./pg";

export interface AwsWarehouseArgs {
    /** Aurora PostgreSQL cluster or a single RDS instance. */
    readonly engine: "aurora" | "rds";
    readonly vpcId: string;
    /** At least two private subnets in different availability zones. */
    readonly subnetIds: readonly string[];
    /** Networks allowed to reach port 5432. @default [] */
    readonly allowedCidrs?: readonly string[];
    /** Security groups allowed to reach port 5432 (the loaders' tasks). @default [] */
    readonly allowedSecurityGroupIds?: readonly pulumi.Input<string>[];
    /** @default false */
    readonly publiclyAccessible?: boolean;
    /** Customer-managed KMS key; AWS's default key for RDS when absent. Storage is always encrypted. */
    readonly kmsKeyId?: string;
    /** Aurora only: make this cluster a copy-on-write clone of the named cluster (a branch mirror with `data: clone`). */
    readonly cloneFromCluster?: string;
}

export interface ServerWarehouseArgs {
    readonly host: string;
    readonly port: number;
    readonly adminUser: string;
    readonly adminPassword: pulumi.Input<string>;
    readonly sslMode: string;
}

export interface WarehouseArgs {
    readonly target: Target;
    /** Pinned PostgreSQL version, MAJOR.MINOR. */
    readonly engineVersion: string;
    /** Physical name of cloud and container resources: lowercase letters, digits and hyphens. */
    readonly physicalName: string;
    readonly sizing: { readonly instanceClass: string; readonly instances: number; readonly storageGb: number };
    readonly backups: { readonly retentionDays: number; readonly window: string };
    readonly protection: { readonly deletionProtection: boolean; readonly protect: boolean };
    /** How a version change is applied (`warehouse.upgrade`). @default neither */
    readonly upgrade?: { readonly allowMajor: boolean; readonly applyImmediately: boolean };
    /** Required for target `aws`. */
    readonly aws?: AwsWarehouseArgs;
    /** For target `docker`: the host port; Docker picks a free one when absent. */
    readonly docker?: { readonly hostPort?: number };
    /** Required for target `server`. */
    readonly server?: ServerWarehouseArgs;
    /** Tags on every AWS resource. @default {} */
    readonly tags?: Record<string, string>;
    /** How objects inside the warehouse are made: `provider` (@pulumi/postgresql) or `sql` (in-process). @default "provider" */
    readonly sqlEngine?: SqlEngine;
}

const PHYSICAL_NAME = /^[a-z](?:[a-z0-9]|-(?!-)){0,50}[a-z0-9]$/;

/**
 * A PostgreSQL warehouse on one of three targets. Whatever the target, it exposes
 * where to connect, admin credentials (secret) and a `postgresql.Provider` for the
 * objects inside it.
 */
export class Warehouse extends pulumi.ComponentResource {
    readonly host: pulumi.Output<string>;
    readonly port: pulumi.Output<number>;
    readonly adminUser: pulumi.Output<string>;
    /** Secret. */
    readonly adminPassword: pulumi.Output<string>;
    readonly sslMode: pulumi.Output<string>;
    readonly engineVersion: string;
    /** The @pulumi/postgresql provider, with the `provider` SQL engine. */
    readonly provider?: postgresql.Provider;
    /** Secret: where and as whom to connect as admin. */
    readonly admin: pulumi.Output<AdminConnection>;
    /** The cloud cluster identifier on `aws`; what a branch clone is made from. */
    readonly clusterIdentifier?: pulumi.Output<string>;
    /** The resource that holds the data (Aurora cluster, RDS instance or Docker volume); protected in production. */
    readonly storage?: pulumi.CustomResource;

    constructor(name: string, args: WarehouseArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("dataops:warehouse:Warehouse", name, {}, opts);
        if (!PHYSICAL_NAME.test(args.physicalName))
            throw new Error(`Warehouse ${name}: physicalName must be lowercase letters, digits and single hyphens, 2 to 52 characters; given "${args.physicalName}"`);
        const needs = { aws: args.aws, docker: args.docker, server: args.server }[args.target];
        if (!needs) throw new Error(`Warehouse ${name}: target ${args.target} needs [${args.target}] settings; only one of [aws], [docker] or [server] applies`);
        this.engineVersion = args.engineVersion;
        const protect = args.protection.protect;

        let endpoint: { host: pulumi.Output<string>; port: pulumi.Output<number>; user: pulumi.Output<string>; password: pulumi.Output<string>; sslMode: string };
        if (args.target === "aws") {
            const made = this.onAws(name, args, args.aws!, protect);
            endpoint = made;
            this.clusterIdentifier = made.clusterIdentifier;
            this.storage = made.storage;
        } else if (args.target === "docker") {
            const made = this.inDocker(name, args, protect);
            endpoint = made;
            this.storage = made.storage;
        } else {
            const s = args.server!;
            endpoint = { host: pulumi.output(s.host), port: pulumi.output(s.port), user: pulumi.output(s.adminUser), password: pulumi.secret(s.adminPassword), sslMode: s.sslMode };
        }
        this.host = endpoint.host;
        this.port = endpoint.port;
        this.adminUser = endpoint.user;
        this.adminPassword = pulumi.secret(endpoint.password);
        this.sslMode = pulumi.output(endpoint.sslMode);

        this.admin = pulumi.secret(
            pulumi.all([this.host, this.port, this.adminUser, this.adminPassword, this.sslMode]).apply(([host, port, user, password, sslMode]) => ({ host, port, user, password, sslMode })),
        );
        if ((args.sqlEngine ?? "provider") === "sql") {
            this.registerOutputs({ host: this.host, port: this.port, adminUser: this.adminUser, adminPassword: this.adminPassword, engineVersion: this.engineVersion });
            return;
        }
        this.provider = new postgresql.Provider(
            `${name}-provider`,
            {
                host: this.host,
                port: this.port,
                username: this.adminUser,
                password: this.adminPassword,
                sslmode: endpoint.sslMode,
                database: "postgres",
                // RDS and Aurora's master user is not a superuser; the provider must not assume one.
                superuser: args.target !== "aws",
                expectedVersion: args.engineVersion,
                connectTimeout: 30,
            },
            { parent: this },
        );

        this.registerOutputs({ host: this.host, port: this.port, adminUser: this.adminUser, adminPassword: this.adminPassword, engineVersion: this.engineVersion });
    }

    private onAws(name: string, args: WarehouseArgs, a: AwsWarehouseArgs, protect: boolean) {
        const aws = awsModule();
        const parent = { parent: this };
        const tags = args.tags ?? {};
        const major = args.engineVersion.split(".")[0];
        const aurora = a.engine === "aurora";
        const sg = new aws.ec2.SecurityGroup(
            `${name}-sg`,
            {
                vpcId: a.vpcId,
                description: `PostgreSQL for ${args.physicalName}`,
                ingress: [
                    {
                        protocol: "tcp",
                        fromPort: 5432,
                        toPort: 5432,
                        cidrBlocks: [...(a.allowedCidrs ?? [])],
                        securityGroups: [...(a.allowedSecurityGroupIds ?? [])],
                        description: "PostgreSQL clients",
                    },
                ],
                egress: [],
                tags: { ...tags, Name: `${args.physicalName}-warehouse` },
            },
            parent,
        );
        const subnets = new aws.rds.SubnetGroup(`${name}-subnets`, { name: `${args.physicalName}-warehouse`, subnetIds: [...a.subnetIds], tags }, parent);
        // Encrypted connections only, and slow statements logged: the same on every environment.
        const parameters = [
            { name: "rds.force_ssl", value: "1" },
            { name: "log_min_duration_statement", value: "1000" },
        ];
        const final = args.protection.deletionProtection ? { skipFinalSnapshot: false, finalSnapshotIdentifier: `${args.physicalName}-final` } : { skipFinalSnapshot: true };
        // A major version change is a new parameter-group family, so each family gets a group of its
        // own name: the new one is made before the old one goes, and AWS upgrades the engine only
        // when the change is acknowledged (warehouse.upgrade.allowMajor; a branch always is).
        const upgrade = args.upgrade ?? { allowMajor: false, applyImmediately: false };
        const common = {
            engineVersion: args.engineVersion,
            allowMajorVersionUpgrade: upgrade.allowMajor,
            applyImmediately: upgrade.applyImmediately,
            dbSubnetGroupName: subnets.name,
            vpcSecurityGroupIds: [sg.id],
            manageMasterUserPassword: true,
            masterUsername: "dataops_admin",
            storageEncrypted: true,
            kmsKeyId: a.kmsKeyId,
            backupRetentionPeriod: args.backups.retentionDays,
            preferredBackupWindow: args.backups.window,
            deletionProtection: args.protection.deletionProtection,
            copyTagsToSnapshot: true,
            tags,
            ...final,
        };

        let secretArn: pulumi.Output<string>;
        let host: pulumi.Output<string>;
        let port: pulumi.Output<number>;
        let clusterIdentifier: pulumi.Output<string> | undefined;
        let storage: pulumi.CustomResource;
        if (aurora) {
            const params = new aws.rds.ClusterParameterGroup(`${name}-params`, { name: `${args.physicalName}-warehouse-pg${major}`, family: `aurora-postgresql${major}`, parameters, tags }, parent);
            const cluster = new aws.rds.Cluster(
                `${name}-cluster`,
                {
                    ...common,
                    clusterIdentifier: `${args.physicalName}-warehouse`,
                    engine: "aurora-postgresql",
                    dbClusterParameterGroupName: params.name,
                    restoreToPointInTime: a.cloneFromCluster
                        ? { sourceClusterIdentifier: a.cloneFromCluster, restoreType: "copy-on-write", useLatestRestorableTime: true }
                        : undefined,
                },
                { parent: this, protect },
            );
            for (let i = 0; i < args.sizing.instances; i++) {
                new aws.rds.ClusterInstance(
                    `${name}-instance-${i}`,
                    {
                        clusterIdentifier: cluster.id,
                        identifier: `${args.physicalName}-warehouse-${i}`,
                        instanceClass: args.sizing.instanceClass,
                        engine: "aurora-postgresql",
                        engineVersion: args.engineVersion,
                        applyImmediately: upgrade.applyImmediately,
                        publiclyAccessible: a.publiclyAccessible ?? false,
                        dbSubnetGroupName: subnets.name,
                        tags,
                    },
                    { parent: this, protect },
                );
            }
            secretArn = cluster.masterUserSecrets.apply((s) => s[0]?.secretArn ?? "");
            host = cluster.endpoint;
            port = cluster.port;
            clusterIdentifier = cluster.clusterIdentifier;
            storage = cluster;
        } else {
            const params = new aws.rds.ParameterGroup(`${name}-params`, { name: `${args.physicalName}-warehouse-pg${major}`, family: `postgres${major}`, parameters, tags }, parent);
            const instance = new aws.rds.Instance(
                `${name}-instance`,
                {
                    ...common,
                    identifier: `${args.physicalName}-warehouse`,
                    engine: "postgres",
                    instanceClass: args.sizing.instanceClass,
                    allocatedStorage: args.sizing.storageGb,
                    parameterGroupName: params.name,
                    publiclyAccessible: a.publiclyAccessible ?? false,
                },
                { parent: this, protect },
            );
            secretArn = instance.masterUserSecrets.apply((s) => s[0]?.secretArn ?? "");
            host = instance.address;
            port = instance.port;
            storage = instance;
        }
        // The master password lives in Secrets Manager, rotated by AWS; read it for the provider only.
        const secret = aws.secretsmanager.getSecretVersionOutput({ secretId: secretArn }, parent);
        const password = pulumi.secret(secret.secretString.apply((s) => (JSON.parse(s) as { password: string }).password));
        return { host, port, user: pulumi.output("dataops_admin"), password, sslMode: "require", clusterIdentifier, storage };
    }

    private inDocker(name: string, args: WarehouseArgs, protect: boolean) {
        const parent = { parent: this };
        const password = new GeneratedPassword(`${name}-admin-password`, {}, parent);
        const image = new docker.RemoteImage(`${name}-image`, { name: `postgres:${args.engineVersion}`, keepLocally: true }, parent);
        const volume = new docker.Volume(`${name}-data`, { name: `${args.physicalName}-pgdata` }, { parent: this, protect });
        // A new major never meets the old major's files: the change stops here, before the container goes (components/dataMajor.ts).
        const major = Number(args.engineVersion.split(".")[0]);
        const dataMajor = new DataMajor(`${name}-data-major`, { major, container: `${args.physicalName}-warehouse`, volume: `${args.physicalName}-pgdata` }, parent);
        const container = new docker.Container(
            `${name}-container`,
            {
                name: `${args.physicalName}-warehouse`,
                image: image.imageId,
                envs: [pulumi.interpolate`POSTGRES_PASSWORD=${password.value}`, "POSTGRES_USER=postgres"],
                ports: [{ internal: 5432, external: args.docker?.hostPort }],
                volumes: [{ volumeName: volume.name, containerPath: "/var/lib/postgresql/data" }],
                restart: "unless-stopped",
                healthcheck: { tests: ["CMD-SHELL", "pg_isready -U postgres"], interval: "2s", timeout: "2s", retries: 30 },
                wait: true,
            },
            { parent: this, protect, dependsOn: [dataMajor] },
        );
        const port = container.ports.apply((p) => p?.[0]?.external ?? args.docker?.hostPort ?? 5432);
        return { host: pulumi.output("localhost"), port, user: pulumi.output("postgres"), password: password.value, sslMode: "disable", storage: volume };
    }
}
