// Shared by the end-to-end suites that prove access by connecting as each role.
import { Client } from "pg";

/** Run SQL and return "ok" or the PostgreSQL error code (42501: insufficient privilege). */
export async function attempt(c: Client, sql: string): Promise<string> {
    try {
        await c.query(sql);
        return "ok";
    } catch (e) {
        return (e as { code?: string }).code ?? String(e);
    }
}

/** Run `fn` connected as the server's admin, in `database`; the session is closed whatever happens. */
export async function asAdmin<T>(server: { host: string; port: number; user: string; password: string }, fn: (c: Client) => Promise<T>, database = "postgres"): Promise<T> {
    const c = new Client({ host: server.host, port: server.port, user: server.user, password: server.password, database });
    await c.connect();
    try {
        return await fn(c);
    } finally {
        await c.end();
    }
}

/** The databases and roles of a branch's environment still on the server (found by its name prefix). */
export async function leftoversOf(server: { host: string; port: number; user: string; password: string }, prefix: string): Promise<string[]> {
    return asAdmin(server, async (c) => {
        const start = `${prefix}_`;
        const rows = await c.query<{ n: string }>("SELECT datname AS n FROM pg_database WHERE starts_with(datname, $1) UNION ALL SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", [start]);
        return rows.rows.map((r) => r.n);
    });
}
