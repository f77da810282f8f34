// A branch environment's config is derived, never written: production's committed,
// non-secret config, changed only where production's own `branches` policy says.
// Every change is returned with its reason, so the audit can show the mirror diff.
import { type BranchData, type BranchMode, type DataopsConfig, type ServerConnection, type Target, templateProblem } from "./schema";

export interface Difference {
    /** Key path, as in error messages (`warehouse.target`). */
    readonly path: string;
    readonly production: unknown;
    readonly branch: unknown;
    /** The policy key that allows it. */
    readonly reason: string;
}

export interface BranchOverrides {
    /** `dataops up --target`; must be one of `branches.allowedTargets`. */
    readonly target?: Target;
    /** Where a `server` branch runs (the embedded default sets this). */
    readonly server?: ServerConnection;
    /** `dataops up --data`; must be one of `branches.allowedData`. */
    readonly data?: BranchData;
    /** `dataops up --from`: the database to copy on the embedded server (the CLI allows it only there). */
    readonly templateDatabase?: string;
}

export interface Mirror {
    readonly config: DataopsConfig;
    readonly differences: Difference[];
}

export class MirrorError extends Error {}

// RDS sizes within a family, smallest first; "db.r6g.2xlarge" → "2xlarge".
const SIZES = ["nano", "micro", "small", "medium", "large", "xlarge"];
function sizeRank(instanceClass: string): number {
    const size = instanceClass.split(".").pop() ?? "";
    const m = /^(\d+)xlarge$/.exec(size);
    return m ? SIZES.length + Number(m[1]) : SIZES.indexOf(size);
}

/** The cap, unless production's class is already smaller: a branch never grows past production. */
export function smallerClass(production: string, cap: string): string {
    const p = sizeRank(production);
    return p >= 0 && p < sizeRank(cap) ? production : cap;
}

export function deriveBranchConfig(prod: DataopsConfig, overrides: BranchOverrides = {}): Mirror {
    const policy = prod.branches;
    const differences: Difference[] = [];
    const note = (path: string, production: unknown, branch: unknown, reason: string) => {
        if (JSON.stringify(production) !== JSON.stringify(branch)) differences.push({ path, production, branch, reason });
    };

    const allowed = policy.allowedTargets ?? [policy.target];
    const target = overrides.target ?? policy.target;
    if (!allowed.includes(target))
        throw new MirrorError(`dataops:target: "${target}" is not allowed for branch environments by production's policy (allowed: ${allowed.join(" | ")})`);

    if (target === "aws" && !prod.warehouse.aws)
        throw new MirrorError(`dataops:target: aws needs production's warehouse.aws (VPC and subnets) to mirror, and Pulumi.prod.yaml has none (allowed here: ${allowed.filter((t) => t !== "aws").join(" | ") || "none"})`);
    const allowedData = policy.allowedData ?? [policy.data];
    const data = overrides.data ?? policy.data;
    if (!allowedData.includes(data))
        throw new MirrorError(`dataops:data: "${data}" is not allowed for branch environments by production's policy (branches.allowedData; allowed: ${allowedData.join(" | ")})`);
    const templateDatabase = overrides.templateDatabase ?? policy.templateDatabase;
    if (overrides.templateDatabase !== undefined) {
        const problem = templateProblem(overrides.templateDatabase, { branches: true });
        if (problem) throw new MirrorError(`dataops:templateDatabase: "${overrides.templateDatabase}" ${problem}`);
    }
    // The data policy must work on the target actually chosen, which `--target` may change.
    const key = overrides.data ? "dataops:data" : "branches.data";
    if (data !== "empty" && target === "docker")
        throw new MirrorError(`${key}: docker cannot start from ${data} data; a new container has nothing to copy (allowed on docker: empty)`);
    if (data !== "empty" && target === "server" && !templateDatabase)
        throw new MirrorError(`${key}: ${data} on the server target needs branches.templateDatabase (the database to copy)`);
    if ((data === "schema" || data === "sample") && target === "aws")
        throw new MirrorError(`${key}: aws cannot start from ${data} data (allowed there: empty | clone)`);
    if (data === "clone" && target === "aws" && prod.warehouse.target !== "aws")
        throw new MirrorError(`${key}: clone on the aws target needs production on aws (a copy-on-write clone of its cluster)`);

    const pw = prod.warehouse;
    const caps = policy.caps;
    const warehouse: DataopsConfig["warehouse"] = {
        ...pw,
        target,
        sizing: {
            instanceClass: smallerClass(pw.sizing.instanceClass, caps.instanceClass),
            instances: Math.min(pw.sizing.instances, caps.instances),
            storageGb: Math.min(pw.sizing.storageGb, caps.storageGb),
        },
        // A disposable environment keeps the least backups AWS allows and nothing that blocks its teardown.
        backups: { ...pw.backups, retentionDays: 1 },
        protection: { deletionProtection: false, protect: false },
        // A branch rehearses a version change at once, a major one included: it holds nothing to lose.
        upgrade: { allowMajor: true, applyImmediately: true },
        aws: target === "aws" && pw.aws ? { ...pw.aws, publiclyAccessible: false } : undefined,
        docker: target === "docker" ? {} : undefined,
        server: target === "server" ? (overrides.server ?? policy.server) : undefined,
    };
    if (target === "server" && !warehouse.server)
        throw new MirrorError(
            "dataops:server: a branch on the server target needs a server: set branches.server in Pulumi.prod.yaml, or run `npm run up` (the embedded default sets dataops:server)",
        );

    note("warehouse.target", pw.target, warehouse.target, overrides.target ? "dataops:target (allowed by branches.allowedTargets)" : "branches.target");
    note("warehouse.sizing", pw.sizing, warehouse.sizing, "branches.caps");
    note("warehouse.backups.retentionDays", pw.backups.retentionDays, 1, "branch environments are disposable");
    note("warehouse.protection", pw.protection, warehouse.protection, "branch environments are disposable");
    note("warehouse.upgrade", pw.upgrade, warehouse.upgrade, "branch environments are disposable");
    note("warehouse.aws", pw.aws, warehouse.aws, "branches.target");
    note("warehouse.docker", pw.docker, warehouse.docker, "branches.target");
    note("warehouse.server", pw.server, warehouse.server, overrides.server ? "dataops:server (the branch stack's server)" : target === "server" ? "branches.server" : "branches.target");

    const loaders = prod.loaders.map((l, i) => {
        const mode: BranchMode = l.branchMode ?? policy.loaderMode;
        if (l.branchMode === undefined) note(`loaders[${i}].branchMode`, undefined, mode, "branches.loaderMode");
        return { ...l, branchMode: mode };
    });

    // Where the branch's data comes from is part of the branch's config, as chosen.
    const branchPolicy = { ...policy, data, templateDatabase };
    note("branches.data", policy.data, data, "dataops:data (allowed by branches.allowedData)");
    note("branches.templateDatabase", policy.templateDatabase, templateDatabase, "dataops:templateDatabase (dataops up --from, on the embedded server)");

    return { config: { ...prod, warehouse, loaders, branches: branchPolicy }, differences };
}
