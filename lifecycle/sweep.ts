// What an environment left on its server, found by name: every database and role of an
// environment starts with its prefix (naming/index.ts), which carries a hash of the stack
// name, so no other environment's object can match. Used after destroy, to remove what a
// killed first up created but never recorded, or what a killed destroy did not reach, and
// for an environment whose state is lost.
import { Client } from "pg";

export interface ServerAdmin {
    readonly host: string;
    readonly port: number;
    readonly user: string;
    readonly password: string;
    readonly sslMode: string;
}

export interface Leftovers {
    readonly databases: string[];
    readonly roles: string[];
}

function client(a: ServerAdmin, database: string): Client {
    const c = new Client({
        host: a.host,
        port: a.port,
        user: a.user,
        password: a.password,
        database,
        ssl: a.sslMode === "disable" || a.sslMode === "prefer" ? false : { rejectUnauthorized: a.sslMode.startsWith("verify") },
        connectionTimeoutMillis: 30_000,
    });
    c.on("error", () => undefined);
    return c;
}

async function withClient<T>(a: ServerAdmin, database: string, fn: (c: Client) => Promise<T>): Promise<T> {
    const c = client(a, database);
    await c.connect();
    try {
        return await fn(c);
    } finally {
        await c.end().catch(() => undefined);
    }
}

/** The environment's databases and roles still on the server. */
export async function findLeftovers(a: ServerAdmin, prefix: string): Promise<Leftovers> {
    const start = `${prefix}_`;
    return withClient(a, "postgres", async (c) => ({
        // starts_with, not LIKE: `_` in a prefix is a LIKE wildcard.
        databases: (await c.query<{ n: string }>("SELECT datname AS n FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", [start])).rows.map((r) => r.n),
        roles: (await c.query<{ n: string }>("SELECT rolname AS n FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY 1", [start])).rows.map((r) => r.n),
    }));
}

/** Drop the environment's databases (sessions ended) and roles (what they own elsewhere handed to the admin and dropped). */
export async function sweep(a: ServerAdmin, prefix: string): Promise<Leftovers> {
    const found = await findLeftovers(a, prefix);
    for (const db of found.databases) await withClient(a, "postgres", (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(db)} WITH (FORCE)`));
    if (found.roles.length === 0) return found;
    const roles = (c: Client) => found.roles.map((r) => c.escapeIdentifier(r)).join(", ");
    try {
        await withClient(a, "postgres", (c) => c.query(`DROP ROLE IF EXISTS ${roles(c)}`));
    } catch (e) {
        if ((e as { code?: string }).code !== "2BP01") throw e;
        // A role still owns or holds something in another database: hand it over and drop it there.
        const databases = await withClient(a, "postgres", async (c) => (await c.query<{ d: string }>("SELECT datname AS d FROM pg_database WHERE datallowconn")).rows.map((r) => r.d));
        for (const db of databases) {
            await withClient(a, db, async (c) => {
                const existing = (await c.query<{ n: string }>("SELECT rolname AS n FROM pg_roles WHERE rolname = ANY($1)", [found.roles])).rows.map((r) => c.escapeIdentifier(r.n));
                if (existing.length === 0) return;
                await c.query(`REASSIGN OWNED BY ${existing.join(", ")} TO CURRENT_USER`);
                await c.query(`DROP OWNED BY ${existing.join(", ")}`);
            });
        }
        await withClient(a, "postgres", (c) => c.query(`DROP ROLE IF EXISTS ${roles(c)}`));
    }
    return found;
}
