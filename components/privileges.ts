// The privilege matrix as data: who reads and writes which schema, and the exact privilege
// lists each access means. Pure (no Pulumi), so the audit and the CLI load it cheaply; the
// AccessRoles component turns it into grants and default privileges.
import { matchesPattern } from "../config/rules";
import type { AccessConfig } from "../config/schema";

export const READ_TABLE = ["SELECT"] as const;
export const WRITE_TABLE = ["DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"] as const;
export const READ_SCHEMA = ["USAGE"] as const;
export const WRITE_SCHEMA = ["CREATE", "USAGE"] as const;
export const WRITE_SEQUENCE = ["SELECT", "UPDATE", "USAGE"] as const;
/** A loader's login role on its own raw schema. */
export const LOADER_SCHEMA = ["CREATE", "USAGE"] as const;
/** On the database: every role connects; a role that writes also makes temporary tables. */
export const READ_DATABASE = ["CONNECT"] as const;
export const WRITE_DATABASE = ["CONNECT", "TEMPORARY"] as const;

export type Access = "read" | "write";
/** role → schema → access. Roles are config names (`transformer`, `loader_salesforce`), not physical names. */
export type AccessMatrix = Record<string, Record<string, Access>>;

/** Who can do what where: functional roles from their patterns (write wins over read), each loader on its raw schema. */
export function accessMatrix(access: AccessConfig, schemas: readonly string[], loaders: ReadonlyArray<{ name: string; schema: string }>): AccessMatrix {
    const matrix: AccessMatrix = {};
    for (const [role, grants] of Object.entries(access.roles)) {
        const row: Record<string, Access> = {};
        for (const s of schemas) {
            if (grants.write.some((p) => matchesPattern(p, s))) row[s] = "write";
            else if (grants.read.some((p) => matchesPattern(p, s))) row[s] = "read";
        }
        matrix[role] = row;
    }
    for (const l of loaders) matrix[`loader_${l.name}`] = { [l.schema]: "write" };
    return matrix;
}

/**
 * What a role holds on the environment's database. The tools that write stage their work
 * in temporary tables: Singer targets (meltanolabs and pipelinewise target-postgres) for
 * every batch, dbt for incremental models and snapshots. So a role that writes any schema
 * gets TEMPORARY; a role that only reads gets CONNECT, and no role gets CREATE.
 */
export function databasePrivileges(row: Readonly<Record<string, Access>>): readonly string[] {
    return Object.values(row).includes("write") ? WRITE_DATABASE : READ_DATABASE;
}

/** Roles that create tables in a schema: whoever writes it. Their future tables need default privileges. */
export function creators(matrix: AccessMatrix, schema: string): string[] {
    return Object.keys(matrix).filter((r) => matrix[r][schema] === "write");
}
