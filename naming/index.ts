// Every name a user sees comes from here: branch → stack → environment prefix →
// database and role names. Pure and deterministic, so the CLI, the program and
// the audit always agree.
import { createHash } from "node:crypto";

export const PRODUCTION_STACK = "prod";
export const DEVELOPMENT_STACK = "dev";
export const BRANCH_STACK_PREFIX = "br-";
/** Pulumi's limit for a stack name. */
export const STACK_NAME_MAX = 100;
/** PostgreSQL's limit for an identifier, in bytes. */
export const PG_IDENTIFIER_MAX = 63;
/** Longest environment prefix: leaves `_` + a 40-character identifier within 63 bytes. */
export const PREFIX_MAX = 22;

const HASH_LENGTH = 8;

export function shortHash(text: string): string {
    return createHash("sha256").update(text, "utf8").digest("hex").slice(0, HASH_LENGTH);
}

function slug(text: string, separator: string): string {
    const re = new RegExp(`^${separator}+|${separator}+$`, "g");
    return text.toLowerCase().replace(/[^a-z0-9]+/g, separator).replace(re, "");
}

/**
 * `feature/JIRA-12_New loader` → `br-feature-jira-12-new-loader_1a2b3c4d`.
 * The slug stands alone only when it *is* the branch name; where it had to change or
 * be cut, `_` and a hash of the exact branch name follow. Plain slugs never contain
 * `_`, so a hashed name can never equal an unhashed one.
 */
export function stackNameForBranch(branch: string): string {
    if (branch.length === 0) throw new Error("branch: an empty branch name has no stack (give a branch name)");
    const s = slug(branch, "-");
    const plain = `${BRANCH_STACK_PREFIX}${s}`;
    if (s === branch && plain.length <= STACK_NAME_MAX) return plain;
    const room = STACK_NAME_MAX - BRANCH_STACK_PREFIX.length - 1 - HASH_LENGTH;
    const cut = s.slice(0, room).replace(/-+$/, "");
    return `${BRANCH_STACK_PREFIX}${cut || "branch"}_${shortHash(branch)}`;
}

export function isBranchStack(stack: string): boolean {
    return stack.startsWith(BRANCH_STACK_PREFIX);
}

const PLAIN_PREFIX = /^[a-z][a-z0-9]{0,15}$/;

/**
 * The prefix of an environment's database and role names (roles are global to a
 * PostgreSQL server, and several environments share one). `prod` and `dev` keep
 * their names; any other stack gets a cut slug plus `_` and a hash of the stack name,
 * so it can never equal a plain prefix (those have no `_`) nor another stack's.
 */
export function environmentPrefix(stack: string): string {
    if (PLAIN_PREFIX.test(stack) && !isBranchStack(stack)) return stack;
    const body = isBranchStack(stack) ? stack.slice(BRANCH_STACK_PREFIX.length) : stack;
    let s = slug(body, "_").slice(0, 12).replace(/_+$/, "");
    s = isBranchStack(stack) ? `br_${s}`.slice(0, 12).replace(/_+$/, "") : /^[a-z]/.test(s) ? s : `s${s}`.slice(0, 12);
    return `${s}_${shortHash(stack)}`;
}

export interface EnvironmentNames {
    readonly prefix: string;
    readonly database: string;
    readonly ownerRole: string;
    role(name: string): string;
    loaderRole(loader: string): string;
    user(name: string): string;
}

export function environmentNames(prefix: string, database: string): EnvironmentNames {
    const join = (suffix: string) => checked(`${prefix}_${suffix}`);
    return {
        prefix,
        database: join(database),
        ownerRole: join("owner"),
        role: join,
        loaderRole: (loader) => join(`loader_${loader}`),
        user: join,
    };
}

function checked(identifier: string): string {
    if (Buffer.byteLength(identifier, "utf8") > PG_IDENTIFIER_MAX)
        throw new Error(`name ${identifier} is longer than PostgreSQL's ${PG_IDENTIFIER_MAX} bytes`);
    return identifier;
}
