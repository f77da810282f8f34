// How the objects inside a warehouse are made. `provider`: one @pulumi/postgresql
// resource per object, through its provider plugin. `sql`: the same objects recorded
// into one catalog and reconciled in-process (components/sql.ts), where that plugin is
// not installed. Components declare through this interface and never know which runs.
import type * as pulumi from "@pulumi/pulumi";
import * as postgresql from "@pulumi/postgresql";
import { type AdminConnection, DatabaseComment } from "./generated";
import { ServerVersion } from "./serverVersion";
import { CatalogObjects } from "./sql";

import type { SqlEngine } from "../config/sqlEngine";

export { SQL_ENGINES, type SqlEngine } from "../config/sqlEngine";

export type Named = pulumi.CustomResource & { readonly name: pulumi.Output<string> };

export interface PgObjects {
    readonly engine: SqlEngine;
    role(name: string, args: postgresql.RoleArgs, opts: pulumi.CustomResourceOptions): Named;
    database(name: string, args: postgresql.DatabaseArgs, opts: pulumi.CustomResourceOptions): Named;
    schema(name: string, args: postgresql.SchemaArgs, opts: pulumi.CustomResourceOptions): Named;
    grant(name: string, args: postgresql.GrantArgs, opts: pulumi.CustomResourceOptions): pulumi.CustomResource;
    defaultPrivileges(name: string, args: postgresql.DefaultPrivilegesArgs, opts: pulumi.CustomResourceOptions): pulumi.CustomResource;
    /** `COMMENT ON DATABASE`: what the environment was built from. */
    comment(name: string, args: { database: pulumi.Input<string>; comment: pulumi.Input<string> }, opts: pulumi.CustomResourceOptions): pulumi.CustomResource;
    /** Every object is declared: the `sql` engine makes its catalog now. */
    finish(): void;
}

export interface ProviderObjects extends PgObjects {
    /** The server's real version, checked against the pin before any object changes. */
    readonly serverVersion: pulumi.Output<string>;
}

/**
 * The `provider` engine. Every object depends on one ServerVersion check, so a server that does
 * not run the pinned version is refused before any of them changes (as the `sql` engine does).
 */
export function providerObjects(provider: postgresql.Provider, admin: pulumi.Input<AdminConnection>, check: { name: string; engineVersion: string; opts: pulumi.CustomResourceOptions }): ProviderObjects {
    const version = new ServerVersion(check.name, { connection: admin, engineVersion: check.engineVersion }, check.opts);
    const o = (opts: pulumi.CustomResourceOptions) => {
        const deps = opts.dependsOn === undefined ? [] : Array.isArray(opts.dependsOn) ? opts.dependsOn : [opts.dependsOn as pulumi.Input<pulumi.Resource>];
        return { ...opts, provider, dependsOn: [...deps, version] };
    };
    return {
        engine: "provider",
        serverVersion: version.serverVersion,
        role: (n, a, opts) => new postgresql.Role(n, a, o(opts)),
        database: (n, a, opts) => new postgresql.Database(n, a, o(opts)),
        schema: (n, a, opts) => new postgresql.Schema(n, a, o(opts)),
        grant: (n, a, opts) => new postgresql.Grant(n, a, o(opts)),
        defaultPrivileges: (n, a, opts) => new postgresql.DefaultPrivileges(n, a, o(opts)),
        comment: (n, a, opts) => new DatabaseComment(n, { ...a, connection: admin }, { ...opts, dependsOn: [version] }),
        finish: () => undefined,
    };
}

/** The `sql` engine: one SqlCatalog named `name`, made when `finish` is called. */
export function sqlObjects(name: string, admin: pulumi.Input<AdminConnection>, opts: pulumi.CustomResourceOptions = {}, engineVersion?: string): PgObjects {
    return new CatalogObjects(name, admin, opts, engineVersion);
}
