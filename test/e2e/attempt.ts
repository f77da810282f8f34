// Shared by the end-to-end suites that prove access by connecting as each role.
import type { Client } from "pg";

/** Run SQL and return "ok" or the PostgreSQL error code (42501: insufficient privilege). */
export async function attempt(c: Client, sql: string): Promise<string> {
    try {
        await c.query(sql);
        return "ok";
    } catch (e) {
        return (e as { code?: string }).code ?? String(e);
    }
}
