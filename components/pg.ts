// How the objects inside a warehouse are made. `provider`: @pulumi/postgresql's
// resources through its provider plugin (the default). `sql`: the same objects by
// in-process SQL (components/sql.ts), for machines where that plugin cannot be
// installed, and the embedded default. Components call this interface and never
// know which one runs.
import type * as pulumi from "@pulumi/pulumi";
import * as postgresql from "@pulumi/postgresql";
import type { AdminConnection } from "./generated";
import { SqlObject } from "./sql";

export type SqlEngine = "provider" | "sql";
export const SQL_ENGINES: readonly SqlEngine[] = ["provider", "sql"];

export type Named = pulumi.CustomResource & { readonly name: pulumi.Output<string> };

export interface PgObjects {
    readonly engine: SqlEngine;
    role(name: string, args: postgresql.RoleArgs, opts: pulumi.CustomResourceOptions): Named;
    database(name: string, args: postgresql.DatabaseArgs, opts: pulumi.CustomResourceOptions): Named;
    schema(name: string, args: postgresql.SchemaArgs, opts: pulumi.CustomResourceOptions): Named;
    grant(name: string, args: postgresql.GrantArgs, opts: pulumi.CustomResourceOptions): pulumi.CustomResource;
    defaultPrivileges(name: string, args: postgresql.DefaultPrivilegesArgs, opts: pulumi.CustomResourceOptions): pulumi.CustomResource;
}

export function providerObjects(provider: postgresql.Provider): PgObjects {
    const o = (opts: pulumi.CustomResourceOptions) => ({ ...opts, provider });
    return {
        engine: "provider",
        role: (n, a, opts) => new postgresql.Role(n, a, o(opts)),
        database: (n, a, opts) => new postgresql.Database(n, a, o(opts)),
        schema: (n, a, opts) => new postgresql.Schema(n, a, o(opts)),
        grant: (n, a, opts) => new postgresql.Grant(n, a, o(opts)),
        defaultPrivileges: (n, a, opts) => new postgresql.DefaultPrivileges(n, a, o(opts)),
    };
}

export function sqlObjects(admin: pulumi.Input<AdminConnection>): PgObjects {
    const make = (kind: ConstructorParameters<typeof SqlObject>[0]) => (n: string, a: object, opts: pulumi.CustomResourceOptions) =>
        new SqlObject(kind, n, admin, { ...a }, opts);
    return {
        engine: "sql",
        role: make("role"),
        database: make("database"),
        schema: make("schema"),
        grant: make("grant"),
        defaultPrivileges: make("defaultPrivileges"),
    };
}
