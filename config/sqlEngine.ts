// `dataops:sqlEngine`: how the objects inside the warehouse are made (components/pg.ts).
export type SqlEngine = "provider" | "sql";
export const SQL_ENGINES: readonly SqlEngine[] = ["provider", "sql"];
