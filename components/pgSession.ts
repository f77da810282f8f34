// One admin session on an environment's server: how the `sql` engine's statements reach
// PostgreSQL (components/catalogSql.ts, components/copySql.ts).
import { Client } from "pg";
import type { AdminConnection } from "./generated";

export type Query = Pick<Client, "query" | "escapeIdentifier" | "escapeLiteral">;

/** `connectTimeoutMs`: give up connecting (and logging in) after this long; @default no limit but the OS's */
export async function withClient<T>(c: AdminConnection, database: string, fn: (client: Client) => Promise<T>, opts: { readonly connectTimeoutMs?: number } = {}): Promise<T> {
    const client = new Client({
        host: c.host,
        port: c.port,
        user: c.user,
        password: c.password,
        database,
        ssl: c.sslMode === "disable" || c.sslMode === "prefer" ? false : { rejectUnauthorized: c.sslMode.startsWith("verify") },
        connectionTimeoutMillis: opts.connectTimeoutMs ?? 0,
    });
    // A terminated session also surfaces as an 'error' event; the failed query already reports it.
    client.on("error", () => undefined);
    await client.connect();
    try {
        return await fn(client);
    } finally {
        await client.end().catch(() => undefined);
    }
}

export async function transaction<T>(c: Client, fn: () => Promise<T>): Promise<T> {
    await c.query("BEGIN");
    try {
        const r = await fn();
        await c.query("COMMIT");
        return r;
    } catch (e) {
        await c.query("ROLLBACK").catch(() => undefined);
        throw e;
    }
}

