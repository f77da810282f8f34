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
