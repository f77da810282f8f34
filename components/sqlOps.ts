// Retired. Before the SqlCatalog (components/sql.ts), the `sql` engine made one dynamic
// resource per role, schema and grant, and their state names this module as the place of
// their statements. An update now replaces them by one SqlCatalog, which takes over the very
// same objects; Pulumi then deletes the old resources from the state, and that delete must
// leave the objects alone. An old stack destroyed without an update first is cleaned by
// destroy's sweep of the environment's prefix (lifecycle/sweep.ts).

export async function apply(): Promise<string> {
    throw new Error("this resource comes from an older dataops-environments; run `dataops up` once to move it into the environment's SqlCatalog");
}

export async function remove(): Promise<void> {}

export function diff(): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
    return { changes: false, replaces: [], deleteBeforeReplace: false };
}
