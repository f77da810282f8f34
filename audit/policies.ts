// Policies on a valid stack config, kept as data: each rule has an id, a severity,
// the key it looks at, and a one-line fix. Production-only rules apply to
// Pulumi.prod.yaml; the others to every committed stack.
import { accessMatrix } from "../components/privileges";
import { matchesPattern } from "../config/rules";
import { type DataopsConfig, loaderSchema } from "../config/schema";
import { PRODUCTION_STACK } from "../naming";
import type { Finding, Severity } from "./types";

export const PRODUCTION_FILE = `Pulumi.${PRODUCTION_STACK}.yaml`;
export const MIN_RETENTION_DAYS = 7;
/** libpq modes that refuse an unencrypted connection. */
export const ENCRYPTED_SSL_MODES = ["require", "verify-ca", "verify-full"] as const;
/** Image tags and versions that move: a channel name, or a bare major version. */
const MOVING = /^(v?\d+|[A-Za-z_.-]+)$/;

type Rule = (file: string, c: DataopsConfig, values: Readonly<Record<string, unknown>>) => Finding[];

const f = (id: string, severity: Severity, file: string, key: string, message: string, fix: string): Finding => ({ id, severity, file, key, message, fix });

const productionRules: Rule[] = [
    (file, c) =>
        c.warehouse.target === "aws" && !c.warehouse.protection.deletionProtection
            ? [f("prod-deletion-protection", "error", file, "dataops:warehouse.protection.deletionProtection", "is false: AWS would let production's cluster be deleted", "set dataops:warehouse.protection.deletionProtection: true")]
            : [],
    (file, c) =>
        !c.warehouse.protection.protect
            ? [f("prod-protect", "error", file, "dataops:warehouse.protection.protect", "is false: pulumi destroy would delete production's warehouse and database", "set dataops:warehouse.protection.protect: true")]
            : [],
    // Storage is always encrypted on aws (the component sets it); what config can weaken is the connection.
    (file, c) => {
        const mode = c.warehouse.target === "server" ? c.warehouse.server?.sslMode : undefined;
        return mode !== undefined && !(ENCRYPTED_SSL_MODES as readonly string[]).includes(mode)
            ? [f("prod-encryption", "error", file, "dataops:warehouse.server.sslMode", `"${mode}" allows unencrypted connections to production (allowed: ${ENCRYPTED_SSL_MODES.join(" | ")})`, "set dataops:warehouse.server.sslMode: verify-full (or require)")]
            : [];
    },
    (file, c) =>
        c.warehouse.backups.retentionDays < MIN_RETENTION_DAYS
            ? [f("prod-backups", "error", file, "dataops:warehouse.backups.retentionDays", `${c.warehouse.backups.retentionDays} is below the ${MIN_RETENTION_DAYS} days production keeps backups`, `set dataops:warehouse.backups.retentionDays to ${MIN_RETENTION_DAYS} or more (at most 35)`)]
            : [],
    (file, c) => {
        const a = c.warehouse.aws;
        if (!a) return [];
        const out: Finding[] = [];
        if (a.publiclyAccessible)
            out.push(f("prod-public-access", "error", file, "dataops:warehouse.aws.publiclyAccessible", "is true: production's instances get a public address", "set dataops:warehouse.aws.publiclyAccessible: false"));
        a.allowedCidrs.forEach((cidr, i) => {
            if (cidr.endsWith("/0"))
                out.push(f("prod-public-access", "error", file, `dataops:warehouse.aws.allowedCidrs[${i}]`, `"${cidr}" opens port 5432 to every address`, "list only the networks that need the warehouse, e.g. your VPC's CIDR"));
        });
        return out;
    },
    // The schema has defaults for both; production's file must state them, because it is the audit trail.
    (file, _c, values) => {
        const b = asRecord(values.branches);
        return b?.ttl === undefined
            ? [f("branch-ttl", "warning", file, "dataops:branches.ttl", "is not set: branch environments live for the default 72h, which nobody reviewed", "set dataops:branches.ttl explicitly, e.g. ttl: 72h")]
            : [];
    },
    (file, _c, values) => {
        const caps = asRecord(asRecord(values.branches)?.caps);
        if (caps === undefined)
            return [f("branch-caps", "warning", file, "dataops:branches.caps", "is not set: branch warehouses get the default size caps, which nobody reviewed", "set dataops:branches.caps with instanceClass, instances and storageGb")];
        return ["instanceClass", "instances", "storageGb"]
            .filter((k) => caps[k] === undefined)
            .map((k) => f("branch-caps", "warning", file, `dataops:branches.caps.${k}`, "is not set: branch warehouses get the default, which nobody reviewed", `set dataops:branches.caps.${k} explicitly`));
    },
];

const everyStackRules: Rule[] = [
    // The schema refuses "latest" and unpinned tools; a moving channel tag or a bare major version gets through.
    (file, c) =>
        c.loaders.flatMap((l, i) => {
            const out: Finding[] = [];
            if (l.version !== undefined && MOVING.test(l.version))
                out.push(f("loader-pin", "error", file, `dataops:loaders[${i}].version`, `"${l.version}" moves (a bare major version or a channel), so loader ${l.name} is not reproducible`, `pin a full release such as "3.5.4"`));
            const tag = l.image !== undefined && !l.image.includes("@") ? l.image.slice(l.image.lastIndexOf(":") + 1) : undefined;
            if (tag !== undefined && MOVING.test(tag))
                out.push(f("loader-pin", "error", file, `dataops:loaders[${i}].image`, `"${l.image}" has the moving tag "${tag}", so loader ${l.name} is not reproducible`, `pin a release tag such as ":1.4.2" or a sha256 digest`));
            return out;
        }),
    // Only a loader writes its raw schema: anyone else writing there could corrupt what was loaded.
    (file, c) => {
        const loaders = c.loaders.map((l) => ({ name: l.name, schema: loaderSchema(l) }));
        const matrix = accessMatrix(c.access, [...c.warehouse.schemas, ...loaders.map((l) => l.schema)], loaders);
        const out: Finding[] = [];
        for (const [role, grants] of Object.entries(c.access.roles)) {
            for (const l of loaders) {
                if (matrix[role]?.[l.schema] !== "write") continue;
                const i = grants.write.findIndex((p) => matchesPattern(p, l.schema));
                out.push(
                    f("raw-write", "error", file, `dataops:access.roles.${role}.write[${i}]`, `"${grants.write[i]}" lets ${role} write ${l.schema}, the raw schema of loader ${l.name} (only loader_${l.name} may write there)`, `remove "${grants.write[i]}" from ${role}'s write list (read ${l.schema} instead)`),
                );
            }
        }
        return out;
    },
];

function asRecord(v: unknown): Record<string, unknown> | undefined {
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Policy findings for one valid stack: production rules on Pulumi.prod.yaml only. */
export function policyFindings(file: string, config: DataopsConfig, values: Readonly<Record<string, unknown>>): Finding[] {
    const rules = file === PRODUCTION_FILE ? [...productionRules, ...everyStackRules] : everyStackRules;
    return rules.flatMap((rule) => rule(file, config, values));
}
