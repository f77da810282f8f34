// Generated configs for the growth benchmark: N loaders of rotating tools, the
// production access model, two users, on the embedded server.
import type { EmbeddedServer } from "../local/embedded";

const TOOLS = [
    { tool: "meltano", version: "3.5.4", source: "tap-postgres" },
    { tool: "airbyte", version: "3.6.28", source: "source-mysql" },
    { tool: "fivetran", source: "salesforce" },
    { tool: "image", image: "ghcr.io/acme/tap-events:1.0.0", source: "tap-events" },
] as const;

export function generatedConfig(loaders: number, server: EmbeddedServer): Record<string, unknown> {
    return {
        warehouse: {
            engineVersion: "16.4",
            target: "server",
            database: "analytics",
            schemas: ["staging", "marts"],
            server: { host: server.host, port: server.port, adminUser: server.user, sslMode: "disable" },
        },
        loaders: Array.from({ length: loaders }, (_, i) => ({ name: `source_${String(i + 1).padStart(3, "0")}`, schedule: "0 */6 * * *", ...TOOLS[i % TOOLS.length] })),
        access: {
            roles: { transformer: { read: ["raw_*"], write: ["staging", "marts"] }, reporter: { read: ["marts"] } },
            users: [
                { name: "alice", roles: ["transformer"] },
                { name: "bob", roles: ["reporter"] },
            ],
        },
        sqlEngine: "sql",
    };
}
