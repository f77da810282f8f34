// Functional roles, users and grants. The privilege matrix is computed once, as data
// (`accessMatrix`), so the audit can diff it and tests can assert it exactly; the
// component turns it into PostgreSQL grants and default privileges.
import * as pulumi from "@pulumi/pulumi";
import type { AccessConfig } from "../config/schema";
import { accessMatrix, type AccessMatrix, creators, databasePrivileges, READ_SCHEMA, READ_TABLE, WRITE_SCHEMA, WRITE_SEQUENCE, WRITE_TABLE } from "./privileges";
import { GeneratedPassword } from "./generated";
import type { GrantQueue } from "./grantQueue";
import type { Named, PgObjects } from "./pg";

export { READ_TABLE, WRITE_TABLE, READ_SCHEMA, WRITE_SCHEMA, WRITE_SEQUENCE, LOADER_SCHEMA, READ_DATABASE, WRITE_DATABASE, accessMatrix, databasePrivileges, creators } from "./privileges";
export type { Access, AccessMatrix } from "./privileges";

export interface AccessRolesArgs {
    readonly access: AccessConfig;
    /** Physical name of a config role (`transformer` → `br_x_1a2b3c4d_transformer`; `loader_x` → its login role). */
    readonly physical: (role: string) => string;
    readonly ownerRole: string;
    readonly database: pulumi.Input<string>;
    /** Every schema of the environment, created before the grants. */
    readonly schemas: readonly string[];
    readonly loaders: ReadonlyArray<{ name: string; schema: string }>;
    readonly pg: PgObjects;
    readonly grants: GrantQueue;
    /**
     * The resource that creates each schema, and each loader's role. A grant waits for exactly its
     * schema (and a default privilege for its creator role), not for whole components: every
     * dependency is stored with every resource, and the state is rewritten after each operation.
     */
    readonly schemaResources: Readonly<Record<string, pulumi.Resource>>;
    readonly loaderRoles: Readonly<Record<string, pulumi.Resource>>;
}

export class AccessRoles extends pulumi.ComponentResource {
    readonly matrix: AccessMatrix;
    /** Config role name → physical role name. */
    readonly roleNames: Record<string, string>;
    /** User name → physical login name. */
    readonly userNames: Record<string, string>;
    /** Secret: user name → generated password. */
    readonly userPasswords: pulumi.Output<Record<string, string>>;
    private readonly users: AccessConfig["users"];

    constructor(name: string, args: AccessRolesArgs, opts: pulumi.ComponentResourceOptions = {}) {
        super("dataops:access:AccessRoles", name, {}, opts);
        const o = { parent: this };
        const pg = args.pg;
        const on = (schema: string, ...more: (pulumi.Resource | undefined)[]) => ({
            ...o,
            dependsOn: [args.schemaResources[schema], ...more].filter((r): r is pulumi.Resource => r !== undefined),
        });
        const q = args.grants;
        this.matrix = accessMatrix(args.access, args.schemas, args.loaders);
        this.roleNames = {};

        const roles: Record<string, Named> = {};
        for (const role of Object.keys(args.access.roles)) {
            const physical = args.physical(role);
            this.roleNames[role] = physical;
            roles[role] = pg.role(`${name}-role-${role}`, { name: physical, login: false }, o);
            const privileges = [...databasePrivileges(this.matrix[role])];
            q.push("database", pg.grant(`${name}-${role}-connect`, { database: args.database, role: roles[role].name, objectType: "database", privileges }, q.after("database", o)));
        }

        for (const [role, row] of Object.entries(this.matrix)) {
            if (role.startsWith("loader_")) continue; // a loader's grants on its own schema come with its connector
            for (const [schema, access] of Object.entries(row)) {
                const grantee = roles[role].name;
                const write = access === "write";
                const at = (kind: string) => `${name}-${role}-${kind}-${schema}`;
                q.push(`schema:${schema}`, pg.grant(at("schema"), { database: args.database, role: grantee, schema, objectType: "schema", privileges: [...(write ? WRITE_SCHEMA : READ_SCHEMA)] }, q.after(`schema:${schema}`, on(schema))));
                q.push(`tables:${schema}`, pg.grant(at("tables"), { database: args.database, role: grantee, schema, objectType: "table", privileges: [...(write ? WRITE_TABLE : READ_TABLE)] }, q.after(`tables:${schema}`, on(schema))));
                if (write) q.push(`sequences:${schema}`, pg.grant(at("sequences"), { database: args.database, role: grantee, schema, objectType: "sequence", privileges: [...WRITE_SEQUENCE] }, q.after(`sequences:${schema}`, on(schema))));
                // Tables created later by another writer of this schema (a loader, the transformer) must be
                // readable too. A writer also gets them on its own future tables: the privileges an owner
                // holds implicitly are then written in each new table's ACL, which is where the provider
                // engine's refresh reads a table grant (an ACL left empty reads as the grant missing).
                for (const creator of creators(this.matrix, schema)) {
                    const key = `defaults:${creator}:${schema}`;
                    q.push(key, pg.defaultPrivileges(`${name}-${role}-defaults-${schema}-${creator}`, {
                        database: args.database,
                        owner: args.physical(creator),
                        role: grantee,
                        schema,
                        objectType: "table",
                        privileges: [...(write ? WRITE_TABLE : READ_TABLE)],
                    }, q.after(key, on(schema, creator.startsWith("loader_") ? args.loaderRoles[creator.slice("loader_".length)] : roles[creator]))));
                }
            }
        }

        // Users log in with a generated password and act through their roles. A user with one
        // writing role switches to it at login, so the tables they create belong to the role and
        // its default privileges apply.
        this.userNames = {};
        const passwords: Record<string, pulumi.Output<string>> = {};
        for (const user of args.access.users) {
            const physical = args.physical(user.name);
            this.userNames[user.name] = physical;
            const password = new GeneratedPassword(`${name}-user-${user.name}-password`, {}, { parent: this });
            passwords[user.name] = password.value;
            const memberOf = user.roles.map((r) => (r === "owner" ? args.ownerRole : this.roleNames[r]));
            const writers = this.writingRoles(user.roles);
            pg.role(`${name}-user-${user.name}`, {
                name: physical,
                login: true,
                password: password.value,
                roles: memberOf,
                assumeRole: writers.length === 1 ? (writers[0] === "owner" ? args.ownerRole : this.roleNames[writers[0]]) : undefined,
            }, { ...o, dependsOn: Object.values(roles) });
        }
        this.userPasswords = pulumi.secret(pulumi.all(passwords));
        this.users = args.access.users;

        this.registerOutputs({ roles: this.roleNames, users: this.userNames, matrix: this.matrix });
    }

    private writingRoles(roles: readonly string[]): string[] {
        return roles.filter((r) => r === "owner" || Object.values(this.matrix[r] ?? {}).includes("write"));
    }

    /** Whether a user acts through a role that writes somewhere (the one who runs dbt). */
    writesAsUser(user: string): boolean {
        const u = this.users.find((x) => x.name === user);
        return u !== undefined && this.writingRoles(u.roles).length > 0;
    }
}
