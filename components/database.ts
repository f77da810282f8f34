// The environment's database inside the warehouse: owner role, database, layout
// schemas, and CONNECT taken from PUBLIC so only the environment's roles get in.
import * as pulumi from "@pulumi/pulumi";
import type { CopySpec } from "./catalog";
import type { GrantQueue } from "./grantQueue";
import type { Named, PgObjects } from "./pg";

export interface EnvironmentDatabaseArgs {
    /** Physical database name (already prefixed and validated by the naming module). */
    readonly database: string;
    /** The role that owns the database and every schema in it. */
    readonly ownerRole: string;
    /** Layout schemas (loaders add their own raw schemas). */
    readonly schemas: readonly string[];
    /** Start from another database's data (`branches.data`; the sql engine only). */
    readonly copy?: CopySpec;
    /** Text for `COMMENT ON DATABASE`: what the environment was built from. */
    readonly comment: string;
    readonly pg: PgObjects;
    readonly grants: GrantQueue;
    /** Pulumi `protect` on the database. @default false */
    readonly protect?: boolean;
}

export class EnvironmentDatabase extends pulumi.ComponentResource {
    readonly name: pulumi.Output<string>;
    readonly owner: Named;
    readonly database: Named;
    readonly schemas: Readonly<Record<string, Named>>;

    constructor(name: string, args: EnvironmentDatabaseArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("dataops:warehouse:EnvironmentDatabase", name, {}, opts);
        const o = { parent: this };
        const pg = args.pg;
        this.owner = pg.role(`${name}-owner`, { name: args.ownerRole, login: false }, o);
        this.database = pg.database(
            `${name}-database`,
            {
                name: args.database,
                owner: this.owner.name,
                // A new database gets fixed encoding and collation, so every environment sorts text the
                // same way whatever the server's locale (a copy keeps its source's).
                template: "template0",
                encoding: "UTF8",
                lcCollate: "C",
                lcCtype: "C",
                ...(args.copy ? { copy: args.copy } : {}),
                allowConnections: true,
            },
            { ...o, protect: args.protect ?? false },
        );
        this.name = this.database.name;

        // PUBLIC may connect to a new database by default and, before PostgreSQL 15, create in `public`.
        args.grants.push(
            "database",
            pg.grant(`${name}-revoke-public-connect`, { database: this.database.name, role: "public", objectType: "database", privileges: [] }, o),
        );
        args.grants.push(
            "schema:public",
            pg.grant(
                `${name}-revoke-public-schema`,
                { database: this.database.name, role: "public", schema: "public", objectType: "schema", privileges: [] },
                args.grants.after("schema:public", o),
            ),
        );
        this.schemas = Object.fromEntries(
            args.schemas.map((s) => [
                s,
                pg.schema(
                    `${name}-schema-${s}`,
                    // dropCascade: a branch must go away even after tables were created in it.
                    { name: s, database: this.database.name, owner: this.owner.name, dropCascade: true },
                    o,
                ),
            ]),
        );
        pg.comment(`${name}-comment`, { database: this.database.name, comment: args.comment }, o);

        this.registerOutputs({ name: this.name, owner: this.owner.name, schemas: Object.keys(this.schemas) });
    }
}
