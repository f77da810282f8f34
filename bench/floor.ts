// The plain-SQL floor: the same database, schemas, roles, grants and default
// privileges an environment gets, as one psql script generated from the same config.
// What any tool must at least spend; every figure is reported as a ratio to it.
import { randomBytes } from "node:crypto";
import { accessMatrix, creators, READ_SCHEMA, READ_TABLE, WRITE_SCHEMA, WRITE_SEQUENCE, WRITE_TABLE } from "../components/accessRoles";
import type { DataopsConfig } from "../config/schema";
import { loaderSchema } from "../config/schema";
import { environmentNames } from "../naming";

const q = (id: string) => `"${id.replace(/"/g, '""')}"`;
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

export function floorScripts(prefix: string, c: DataopsConfig): { create: string; drop: string } {
    const n = environmentNames(prefix, c.warehouse.database);
    const loaders = c.loaders.map((l) => ({ name: l.name, schema: loaderSchema(l) }));
    const schemas = [...c.warehouse.schemas, ...loaders.map((l) => l.schema)];
    const matrix = accessMatrix(c.access, schemas, loaders);
    const pw = () => lit(randomBytes(24).toString("base64url"));
    const create: string[] = [
        "\\set ON_ERROR_STOP on",
        `CREATE ROLE ${q(n.ownerRole)} NOLOGIN;`,
        `CREATE DATABASE ${q(n.database)} OWNER ${q(n.ownerRole)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';`,
        ...loaders.map((l) => `CREATE ROLE ${q(n.loaderRole(l.name))} LOGIN CONNECTION LIMIT 10 PASSWORD ${pw()};`),
        ...Object.keys(c.access.roles).map((r) => `CREATE ROLE ${q(n.role(r))} NOLOGIN;`),
        ...c.access.users.map((u) => `CREATE ROLE ${q(n.user(u.name))} LOGIN PASSWORD ${pw()} IN ROLE ${u.roles.map((r) => q(r === "owner" ? n.ownerRole : n.role(r))).join(", ")};`),
        `\\connect ${n.database}`,
        `COMMENT ON DATABASE ${q(n.database)} IS ${lit(`floor ${prefix}`)};`,
        `REVOKE ALL ON DATABASE ${q(n.database)} FROM PUBLIC;`,
        "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
        ...schemas.map((s) => `CREATE SCHEMA ${q(s)} AUTHORIZATION ${q(n.ownerRole)};`),
    ];
    for (const [role, row] of Object.entries(matrix)) {
        const grantee = q(role.startsWith("loader_") ? n.loaderRole(role.slice("loader_".length)) : n.role(role));
        create.push(`GRANT CONNECT ON DATABASE ${q(n.database)} TO ${grantee};`);
        for (const [schema, access] of Object.entries(row)) {
            const write = access === "write";
            create.push(`GRANT ${(write ? WRITE_SCHEMA : READ_SCHEMA).join(", ")} ON SCHEMA ${q(schema)} TO ${grantee};`);
            if (role.startsWith("loader_")) continue;
            create.push(`GRANT ${(write ? WRITE_TABLE : READ_TABLE).join(", ")} ON ALL TABLES IN SCHEMA ${q(schema)} TO ${grantee};`);
            if (write) create.push(`GRANT ${WRITE_SEQUENCE.join(", ")} ON ALL SEQUENCES IN SCHEMA ${q(schema)} TO ${grantee};`);
            for (const creator of creators(matrix, schema).filter((x) => x !== role)) {
                const owner = q(creator.startsWith("loader_") ? n.loaderRole(creator.slice("loader_".length)) : n.role(creator));
                create.push(`ALTER DEFAULT PRIVILEGES FOR ROLE ${owner} IN SCHEMA ${q(schema)} GRANT ${(write ? WRITE_TABLE : READ_TABLE).join(", ")} ON TABLES TO ${grantee};`);
            }
        }
    }
    const roles = [n.ownerRole, ...loaders.map((l) => n.loaderRole(l.name)), ...Object.keys(c.access.roles).map((r) => n.role(r)), ...c.access.users.map((u) => n.user(u.name))];
    const drop = ["\\set ON_ERROR_STOP on", `DROP DATABASE IF EXISTS ${q(n.database)} WITH (FORCE);`, ...[...roles].reverse().map((r) => `DROP ROLE IF EXISTS ${q(r)};`)];
    return { create: create.join("\n") + "\n", drop: drop.join("\n") + "\n" };
}
