// One loader: its raw schema, a login role that can write only there, a generated
// password kept as a secret, and where it runs (a container, a scheduled Fargate
// task, or connection details handed to a SaaS tool).
import { awsModule } from "./aws";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type LoaderMode, SAMPLE_ROWS } from "../config/environment";
import type { LoaderConfig, Target } from "../config/schema";
import { LOADER_SCHEMA, WRITE_DATABASE } from "./accessRoles";
import { toEventBridgeCron } from "./cron";
import { GeneratedPassword } from "./generated";
import type { GrantQueue } from "./grantQueue";
import type { Named, PgObjects } from "./pg";

/**
 * Where the loader's process runs. `cli`: on an existing server (the embedded default, a shared
 * branch server) `dataops load` runs it from the machine that asks. `none`: a SaaS tool loads by
 * itself; its connection details are an output.
 */
export type LoaderRuntime = "container" | "fargate" | "cli" | "none";

export interface AwsLoaderArgs {
    readonly clusterArn: pulumi.Input<string>;
    readonly subnetIds: readonly string[];
    readonly securityGroupId: pulumi.Input<string>;
    readonly region?: string;
}

export interface LoaderConnectorArgs {
    readonly loader: LoaderConfig;
    /** Scheduled (production-like stacks), or the branch mode. */
    readonly mode: LoaderMode;
    readonly target: Target;
    readonly schema: string;
    readonly roleName: string;
    readonly database: pulumi.Input<string>;
    /** Owner of the raw schema (the environment's owner role). */
    readonly schemaOwner: pulumi.Input<string>;
    readonly host: pulumi.Input<string>;
    readonly port: pulumi.Input<number>;
    readonly pg: PgObjects;
    readonly grants: GrantQueue;
    /** Values of the loader's secret settings (stack secrets). Branches get none from production. @default {} */
    readonly secretValues?: pulumi.Input<Record<string, string>>;
    /** Physical name prefix for cloud and container resources (lowercase, hyphens). */
    readonly physicalName: string;
    /** Required when the target is `aws` and the tool runs on our side. */
    readonly aws?: AwsLoaderArgs;
    readonly tags?: Record<string, string>;
}

export { SAMPLE_ROWS };

export function loaderRuntime(tool: LoaderConfig["tool"], target: Target): LoaderRuntime {
    if (tool === "fivetran" || tool === "stitch") return "none";
    return target === "docker" ? "container" : target === "aws" ? "fargate" : "cli";
}

/** The image a loader runs: the pinned override, or the tool's image at the pinned version. */
export function loaderImage(l: LoaderConfig): string | undefined {
    if (l.image) return l.image;
    if (l.tool === "meltano") return `meltano/meltano:v${l.version!.replace(/^v/, "")}`;
    if (l.tool === "airbyte") return `airbyte/${l.source}:${l.version}`;
    return undefined;
}

/** Non-secret settings as environment variables, by the tool's convention (Meltano: TAP_X_SETTING). */
export function settingsEnv(l: LoaderConfig): Record<string, string> {
    const prefix = l.tool === "meltano" ? `${l.source.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}_` : "";
    return Object.fromEntries(Object.entries(l.settings).map(([k, v]) => [`${prefix}${k.toUpperCase().replace(/[^A-Z0-9]+/g, "_")}`, String(v)]));
}

export class LoaderConnector extends pulumi.ComponentResource {
    readonly roleName: pulumi.Output<string>;
    readonly schemaName: pulumi.Output<string>;
    /** Secret. */
    readonly password: pulumi.Output<string>;
    /** Secret: what a SaaS tool or a person needs to load into this schema. */
    readonly connection: pulumi.Output<{ host: string; port: number; database: string; schema: string; user: string; password: string }>;
    readonly runtime: LoaderRuntime;
    readonly role: Named;
    readonly schema: Named;

    constructor(name: string, args: LoaderConnectorArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("dataops:loader:LoaderConnector", name, {}, opts);
        const l = args.loader;
        this.runtime = loaderRuntime(l.tool, args.target);
        if (this.runtime === "fargate" && !args.aws) throw new Error(`LoaderConnector ${name}: target aws needs [aws] (clusterArn, subnetIds, securityGroupId)`);
        const o = { parent: this };
        const pg = args.pg;

        const password = new GeneratedPassword(`${name}-password`, {}, { parent: this });
        this.password = password.value;
        this.role = pg.role(`${name}-role`, { name: args.roleName, login: true, password: password.value, connectionLimit: 10 }, o);
        this.schema = pg.schema(
            `${name}-schema`,
            { name: args.schema, database: args.database, owner: args.schemaOwner, dropCascade: true },
            o,
        );
        // CONNECT and TEMPORARY on its database (Singer targets stage each batch in a temporary
        // table), USAGE and CREATE on its own schema; nothing anywhere else.
        args.grants.push(
            "database",
            pg.grant(
                `${name}-connect`,
                { database: args.database, role: this.role.name, objectType: "database", privileges: [...WRITE_DATABASE] },
                args.grants.after("database", o),
            ),
        );
        args.grants.push(
            `schema:${args.schema}`,
            pg.grant(
                `${name}-schema-grant`,
                { database: args.database, role: this.role.name, schema: this.schema.name, objectType: "schema", privileges: [...LOADER_SCHEMA] },
                args.grants.after(`schema:${args.schema}`, o),
            ),
        );
        this.roleName = this.role.name;
        this.schemaName = this.schema.name;
        this.connection = pulumi.secret(
            pulumi.all([args.host, args.port, args.database, this.schema.name, this.role.name, password.value]).apply(([host, port, database, schema, user, pw]) => ({
                host,
                port,
                database,
                schema,
                user,
                password: pw,
            })),
        );

        if (this.runtime === "container") this.container(name, args);
        if (this.runtime === "fargate") this.fargate(name, args, args.aws!);

        this.registerOutputs({ roleName: this.roleName, schemaName: this.schemaName, runtime: this.runtime, mode: args.mode });
    }

    private env(args: LoaderConnectorArgs): Record<string, string> {
        return {
            ...settingsEnv(args.loader),
            DATAOPS_LOADER: args.loader.name,
            DATAOPS_LOADER_MODE: args.mode,
            ...(args.mode === "sample" ? { DATAOPS_SAMPLE_ROWS: String(SAMPLE_ROWS) } : {}),
            TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA: args.schema,
        };
    }

    private container(name: string, args: LoaderConnectorArgs) {
        const image = new docker.RemoteImage(`${name}-image`, { name: loaderImage(args.loader)!, keepLocally: true }, { parent: this });
        const env = this.env(args);
        const envs = pulumi
            .all([this.connection, args.secretValues ?? {}])
            .apply(([c, secrets]) => [
                ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
                `TARGET_POSTGRES_HOST=${c.host === "localhost" ? "host.docker.internal" : c.host}`,
                `TARGET_POSTGRES_PORT=${c.port}`,
                `TARGET_POSTGRES_DATABASE=${c.database}`,
                `TARGET_POSTGRES_USER=${c.user}`,
                `TARGET_POSTGRES_PASSWORD=${c.password}`,
                ...Object.entries(secrets).map(([k, v]) => `${k}=${v}`),
            ]);
        new docker.Container(
            `${name}-container`,
            {
                name: `${args.physicalName}-loader-${args.loader.name.replace(/_/g, "-")}`,
                image: image.imageId,
                envs: pulumi.secret(envs),
                // A paused loader exists (so it can be run by hand) but does not start.
                start: args.mode !== "paused",
                mustRun: false,
                restart: "no",
                hosts: [{ host: "host.docker.internal", ip: "host-gateway" }],
            },
            { parent: this },
        );
    }

    private fargate(name: string, args: LoaderConnectorArgs, a: AwsLoaderArgs) {
        const aws = awsModule();
        const parent = { parent: this };
        const tags = args.tags ?? {};
        const l = args.loader;
        const physical = `${args.physicalName}-loader-${l.name.replace(/_/g, "-")}`;
        const logs = new aws.cloudwatch.LogGroup(`${name}-logs`, { name: `/dataops/${physical}`, retentionInDays: 30, tags }, parent);
        // Database credentials and the source's secret settings, in one secret the task reads at start.
        const secret = new aws.secretsmanager.Secret(`${name}-secret`, { name: `dataops/${physical}`, recoveryWindowInDays: 0, tags }, parent);
        new aws.secretsmanager.SecretVersion(
            `${name}-secret-value`,
            {
                secretId: secret.id,
                secretString: pulumi.secret(
                    pulumi.all([this.password, args.secretValues ?? {}]).apply(([pw, s]) => JSON.stringify({ TARGET_POSTGRES_PASSWORD: pw, ...s })),
                ),
            },
            parent,
        );
        const assumeEcs = aws.iam.assumeRolePolicyForPrincipal({ Service: "ecs-tasks.amazonaws.com" });
        const execution = new aws.iam.Role(`${name}-execution-role`, { name: `${physical}-exec`.slice(0, 64), assumeRolePolicy: assumeEcs, tags }, parent);
        // Least privilege: read this one secret, write this one log group; nothing else.
        new aws.iam.RolePolicy(
            `${name}-execution-policy`,
            {
                role: execution.id,
                policy: pulumi.jsonStringify({
                    Version: "2012-10-17",
                    Statement: [
                        { Effect: "Allow", Action: ["secretsmanager:GetSecretValue"], Resource: [secret.arn] },
                        { Effect: "Allow", Action: ["logs:CreateLogStream", "logs:PutLogEvents"], Resource: [pulumi.interpolate`${logs.arn}:*`] },
                        { Effect: "Allow", Action: ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], Resource: ["*"] },
                    ],
                }),
            },
            parent,
        );
        const secretNames = ["TARGET_POSTGRES_PASSWORD", ...l.secrets];
        const env = this.env(args);
        const task = new aws.ecs.TaskDefinition(
            `${name}-task`,
            {
                family: physical,
                requiresCompatibilities: ["FARGATE"],
                networkMode: "awsvpc",
                cpu: "512",
                memory: "1024",
                executionRoleArn: execution.arn,
                containerDefinitions: pulumi.jsonStringify([
                    {
                        name: "loader",
                        image: loaderImage(l),
                        essential: true,
                        environment: [
                            ...Object.entries(env).map(([k, v]) => ({ name: k, value: v })),
                            { name: "TARGET_POSTGRES_HOST", value: args.host },
                            { name: "TARGET_POSTGRES_PORT", value: pulumi.output(args.port).apply(String) },
                            { name: "TARGET_POSTGRES_DATABASE", value: args.database },
                            { name: "TARGET_POSTGRES_USER", value: this.roleName },
                        ],
                        secrets: secretNames.map((n) => ({ name: n, valueFrom: pulumi.interpolate`${secret.arn}:${n}::` })),
                        logConfiguration: {
                            logDriver: "awslogs",
                            options: { "awslogs-group": logs.name, "awslogs-region": a.region ?? aws.config.region ?? "us-east-1", "awslogs-stream-prefix": "loader" },
                        },
                    },
                ]),
                tags,
            },
            parent,
        );
        const assumeScheduler = aws.iam.assumeRolePolicyForPrincipal({ Service: "scheduler.amazonaws.com" });
        const invoker = new aws.iam.Role(`${name}-scheduler-role`, { name: `${physical}-sched`.slice(0, 64), assumeRolePolicy: assumeScheduler, tags }, parent);
        new aws.iam.RolePolicy(
            `${name}-scheduler-policy`,
            {
                role: invoker.id,
                policy: pulumi.jsonStringify({
                    Version: "2012-10-17",
                    Statement: [
                        { Effect: "Allow", Action: ["ecs:RunTask"], Resource: [task.arn] },
                        { Effect: "Allow", Action: ["iam:PassRole"], Resource: [execution.arn] },
                    ],
                }),
            },
            parent,
        );
        new aws.scheduler.Schedule(
            `${name}-schedule`,
            {
                name: physical.slice(0, 64),
                scheduleExpression: `cron(${toEventBridgeCron(l.schedule)})`,
                scheduleExpressionTimezone: "UTC",
                // A paused loader keeps its task and schedule, disabled, so it can be run by hand.
                state: args.mode === "paused" ? "DISABLED" : "ENABLED",
                flexibleTimeWindow: { mode: "OFF" },
                target: {
                    arn: a.clusterArn,
                    roleArn: invoker.arn,
                    ecsParameters: {
                        taskDefinitionArn: task.arn,
                        launchType: "FARGATE",
                        networkConfiguration: { subnets: [...a.subnetIds], securityGroups: [a.securityGroupId], assignPublicIp: false },
                    },
                },
            },
            parent,
        );
    }
}
