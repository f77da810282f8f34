// How to reach an environment as one identity, in the libpq convention every tool
// reads (psql, dbt's profile through env_var, Singer targets, BI drivers). Pure: the
// CLI hands it the stack's outputs, with secrets decrypted only for this.
import type { EnvironmentSummary } from "../components/dataPlatform";

export type Identity = { readonly kind: "user" | "loader"; readonly name: string } | { readonly kind: "admin" };

export interface LoaderConnection {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly schema: string;
    readonly user: string;
    readonly password: string;
}

export interface AdminOutput {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly password: string;
    readonly sslMode: string;
}

/** The stack outputs index.ts exports. */
export interface EnvironmentOutputs {
    readonly environment: EnvironmentSummary;
    readonly userPasswords: Readonly<Record<string, string>>;
    readonly loaderConnections: Readonly<Record<string, LoaderConnection>>;
    readonly adminConnection?: AdminOutput;
}

export const FORMATS = ["dotenv", "json", "shell"] as const;
export type Format = (typeof FORMATS)[number];

/** A name the stack does not have: the message lists the ones it has. */
export class UnknownIdentity extends Error {}

/**
 * PG* variables for the identity; for a loader also DATAOPS_SCHEMA (its raw schema) and the
 * TARGET_POSTGRES_* settings a Singer target-postgres reads from its environment.
 */
export function connectionVariables(o: EnvironmentOutputs, id: Identity): Record<string, string> {
    const s = o.environment;
    const ssl: Record<string, string> = s.sslMode ? { PGSSLMODE: s.sslMode } : {};
    const base = (user: string, password: string): Record<string, string> => ({ PGHOST: s.host, PGPORT: String(s.port), PGDATABASE: s.database, PGUSER: user, PGPASSWORD: password, ...ssl });
    if (id.kind === "admin") {
        if (!o.adminConnection) throw new UnknownIdentity(`stack ${s.stack} records no admin connection (made by an older version: run dataops up once)`);
        const a = o.adminConnection;
        return { ...base(a.user, a.password), PGHOST: a.host, PGPORT: String(a.port), PGSSLMODE: a.sslMode };
    }
    if (id.kind === "user") {
        const user = s.users[id.name];
        const password = o.userPasswords[id.name];
        if (!user || password === undefined) throw new UnknownIdentity(`--user ${id.name}: no such user in ${s.stack} (users: ${Object.keys(s.users).join(", ") || "none"})`);
        return base(user.login, password);
    }
    const loader = o.loaderConnections[id.name];
    if (!loader) throw new UnknownIdentity(`--loader ${id.name}: no such loader in ${s.stack} (loaders: ${Object.keys(o.loaderConnections).join(", ") || "none"})`);
    return {
        ...base(loader.user, loader.password),
        DATAOPS_SCHEMA: loader.schema,
        TARGET_POSTGRES_HOST: loader.host,
        TARGET_POSTGRES_PORT: String(loader.port),
        TARGET_POSTGRES_DATABASE: loader.database,
        TARGET_POSTGRES_USER: loader.user,
        TARGET_POSTGRES_PASSWORD: loader.password,
        TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA: loader.schema,
        ...(s.sslMode && s.sslMode !== "disable" ? { TARGET_POSTGRES_SSL_ENABLE: "true", TARGET_POSTGRES_SSL_MODE: s.sslMode } : ({} as Record<string, string>)),
    };
}

/** A value as one shell word: single-quoted, with every ' closed, escaped and reopened. */
export function shellQuote(value: string): string {
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function dotenvValue(value: string): string {
    // Plain when it cannot be misread; otherwise double-quoted with \ " $ and newlines escaped.
    return /^[A-Za-z0-9_@%+=:,./-]*$/.test(value) ? value : `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$/g, "\\$").replace(/\n/g, "\\n")}"`;
}

export function formatVariables(vars: Readonly<Record<string, string>>, format: Format): string {
    if (format === "json") return JSON.stringify(vars, null, 2);
    const entries = Object.entries(vars);
    if (format === "shell") return entries.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join("\n");
    return entries.map(([k, v]) => `${k}=${dotenvValue(v)}`).join("\n");
}
