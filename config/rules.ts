// Validation rules kept as data: each one knows what it allows, so every
// message can say what is allowed as well as what was given.
import { z } from "zod";

/** Longest schema or database identifier we accept; leaves room for the environment prefix within PostgreSQL's 63 bytes. */
export const IDENTIFIER_MAX = 40;
/** Longest loader, role or user name; these become suffixes of role names (`<prefix>_loader_<name>`). */
export const NAME_MAX = 30;

const IDENTIFIER = /^[a-z][a-z0-9_]*$/;

export function identifierRule(max: number): string {
    return `lowercase letters, digits and _, starting with a letter, not starting with pg_; at most ${max} characters`;
}

export function isIdentifier(value: string, max: number = IDENTIFIER_MAX): boolean {
    return IDENTIFIER.test(value) && value.length <= max && !value.startsWith("pg_");
}

/** Message for a value of the wrong type or a missing one; zod v4 hands the raw input to the error map. */
function typeError(expected: string, allowed: string) {
    return (issue: { input?: unknown }) =>
        issue.input === undefined ? `is required (${allowed})` : `is not ${expected} (${allowed})`;
}

export function text(allowed: string) {
    return z.string({ error: typeError("a string", allowed) });
}

export function identifier(what = "identifier", max: number = IDENTIFIER_MAX) {
    const rule = identifierRule(max);
    return text(rule).refine((v) => isIdentifier(v, max), { error: `is not a valid ${what} (${rule})`, abort: true });
}

/**
 * Schemas PostgreSQL (or every database) already has. An environment that declared one would
 * share it with PUBLIC and drop it on destroy, which cannot work (`public` belongs to the
 * database owner and holds what PUBLIC made), so they are refused by name.
 */
export const RESERVED_SCHEMAS = ["public", "information_schema"] as const;

export function schemaName() {
    return identifier("schema name").refine((v) => !(RESERVED_SCHEMAS as readonly string[]).includes(v), {
        error: `is a reserved schema (not allowed: ${RESERVED_SCHEMAS.join(", ")}, pg_*; choose a schema of the environment's own, e.g. staging)`,
        abort: true,
    });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
    const allowed = values.join(" | ");
    return z.enum(values, {
        error: (issue) => (issue.input === undefined ? `is required (allowed: ${allowed})` : `is not allowed (allowed: ${allowed})`),
    });
}

export function integer(min: number, max: number) {
    const allowed = `a whole number from ${min} to ${max}`;
    return z
        .number({ error: typeError("a number", allowed) })
        .int({ error: `is not ${allowed}`, abort: true })
        .min(min, { error: `is not ${allowed}`, abort: true })
        .max(max, { error: `is not ${allowed}`, abort: true });
}

export function flag() {
    return z.boolean({ error: typeError("true or false", "true or false") });
}

export function list<T extends z.ZodType>(item: T, what: string) {
    return z.array(item, { error: typeError("a list", `a list of ${what}`) });
}

/** A strict object: an unknown key (a typo) is an error that lists the known keys. */
export function record<S extends z.ZodRawShape>(shape: S) {
    const known = Object.keys(shape).join(", ");
    return z.strictObject(shape, {
        error: (issue) => {
            if (issue.code === "unrecognized_keys") return `is not a known key (allowed: ${known})`;
            return issue.input === undefined ? `is required (an object with keys: ${known})` : `is not an object (keys: ${known})`;
        },
    });
}

// PostgreSQL "16.4": the major decides the image, the embedded server and the AWS engine family.
export const SUPPORTED_MAJORS = [13, 14, 15, 16, 17] as const;
const ENGINE_VERSION = /^(\d+)\.(\d+)$/;
export function engineVersion() {
    const rule = `a pinned PostgreSQL version MAJOR.MINOR with major ${SUPPORTED_MAJORS.join(", ")}, e.g. "16.4"`;
    return text(rule).refine(
        (v) => {
            const m = ENGINE_VERSION.exec(v);
            return m !== null && (SUPPORTED_MAJORS as readonly number[]).includes(Number(m[1]));
        },
        { error: `is not ${rule}`, abort: true },
    );
}

export function majorOf(version: string): number {
    return Number(version.split(".")[0]);
}

// Durations for TTLs: hours or days, so "72h" or "7d".
const DURATION = /^([1-9]\d{0,3})([hd])$/;
export const TTL_MAX_HOURS = 30 * 24;
export function duration() {
    const rule = `a duration like "72h" or "7d", at least 1h and at most ${TTL_MAX_HOURS / 24}d`;
    return text(rule).refine(
        (v) => {
            const hours = durationHours(v);
            return hours !== undefined && hours <= TTL_MAX_HOURS;
        },
        { error: `is not ${rule}`, abort: true },
    );
}

export function durationHours(v: string): number | undefined {
    const m = DURATION.exec(v);
    if (!m) return undefined;
    return Number(m[1]) * (m[2] === "d" ? 24 : 1);
}

// Five-field cron (minute hour day-of-month month day-of-week), each field a list of
// `*`, `N`, `N-M`, optionally `/STEP`. Names and @-macros are refused to keep the
// translation to EventBridge's cron() exact.
const CRON_FIELDS: ReadonlyArray<[string, number, number]> = [
    ["minute", 0, 59],
    ["hour", 0, 23],
    ["day of month", 1, 31],
    ["month", 1, 12],
    ["day of week", 0, 7],
];
const CRON_PART = /^(\*|(\d+)(?:-(\d+))?)(?:\/([1-9]\d*))?$/;

export function isCron(expr: string): boolean {
    const fields = expr.trim().split(/\s+/);
    if (fields.length !== 5) return false;
    // Cron ORs a restricted day of month with a restricted day of week; EventBridge cannot say that.
    if (fields[2] !== "*" && fields[4] !== "*") return false;
    return fields.every((field, i) => {
        const [, min, max] = CRON_FIELDS[i];
        return field.split(",").every((part) => {
            const m = CRON_PART.exec(part);
            if (!m) return false;
            if (m[1] === "*") return true;
            const lo = Number(m[2]);
            const hi = m[3] === undefined ? lo : Number(m[3]);
            return lo >= min && hi <= max && lo <= hi;
        });
    });
}

export function cron() {
    const rule = `a five-field cron expression "minute hour day-of-month month day-of-week" using *, N, N-M, /STEP and commas, not restricting both day of month and day of week, e.g. "0 */6 * * *"`;
    return text(rule).refine(isCron, { error: `is not ${rule}`, abort: true });
}

// A container image with a pinned tag or digest; "latest" or no tag is not a version.
const IMAGE = /^[a-z0-9]+(?:[._\/-][a-z0-9]+)*(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$/;
export function isPinnedImage(v: string): boolean {
    if (!IMAGE.test(v)) return false;
    const tag = v.includes("@") ? "digest" : v.slice(v.lastIndexOf(":") + 1);
    return tag !== "latest";
}
export function pinnedImage() {
    const rule = `a container image with a pinned tag or sha256 digest (not "latest"), e.g. "ghcr.io/acme/tap-orders:1.4.2"`;
    return text(rule).refine(isPinnedImage, { error: `is not ${rule}`, abort: true });
}

const VERSION = /^v?\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.-]+)?$/;
export function pinnedVersion() {
    const rule = `a pinned version such as "3.5.4" or "v1.2.0" (not "latest")`;
    return text(rule).refine((v) => VERSION.test(v), { error: `is not ${rule}`, abort: true });
}

// Names of secret settings become environment variables of the loader's runtime.
const ENV_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
export function envName() {
    const rule = "upper-case letters, digits and _, starting with a letter; at most 64 characters";
    return text(rule).refine((v) => ENV_NAME.test(v), { error: `is not a valid setting name (${rule})`, abort: true });
}

const SETTING_KEY = /^[A-Za-z_][A-Za-z0-9_.-]{0,99}$/;
export function isSettingKey(v: string): boolean {
    return SETTING_KEY.test(v);
}

// Access patterns: a schema name, optionally ending in * ("raw_*"), or "*".
const PATTERN = /^(\*|[a-z][a-z0-9_]*\*?)$/;
export function schemaPattern() {
    const rule = `a schema name or a prefix ending in *, e.g. "marts" or "raw_*"`;
    return text(rule).refine((v) => PATTERN.test(v) && v.length <= IDENTIFIER_MAX + 1, { error: `is not ${rule}`, abort: true });
}

export function matchesPattern(pattern: string, schema: string): boolean {
    return pattern.endsWith("*") ? schema.startsWith(pattern.slice(0, -1)) : schema === pattern;
}

const HOST = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;
export function hostname() {
    const rule = "a host name or IP address";
    return text(rule).refine((v) => HOST.test(v), { error: `is not ${rule}`, abort: true });
}

const CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
export function cidr() {
    const rule = `an IPv4 CIDR block such as "10.0.0.0/16"`;
    return text(rule).refine(
        (v) => {
            const m = CIDR.exec(v);
            return m !== null && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
        },
        { error: `is not ${rule}`, abort: true },
    );
}

const AWS_ID = (prefix: string) => new RegExp(`^${prefix}-[0-9a-f]{8,17}$`);
export function awsId(prefix: string) {
    const rule = `an AWS id "${prefix}-" followed by 8 to 17 hex digits`;
    return text(rule).refine((v) => AWS_ID(prefix).test(v), { error: `is not ${rule}`, abort: true });
}

const INSTANCE_CLASS = /^db\.[a-z0-9]+\.[a-z0-9]+$/;
export function instanceClass() {
    const rule = `an RDS instance class such as "db.r6g.large"`;
    return text(rule).refine((v) => INSTANCE_CLASS.test(v), { error: `is not ${rule}`, abort: true });
}
