// `dataops dev down`: the embedded default's teardown. `dev up` is `up` (cli/lifecycle.ts),
// which brings the embedded server up when production's policy names no shared server.
import { destroyStack } from "../lifecycle/environments";
import { stopEmbeddedServer } from "../local/embedded";
import { localContext, workspace } from "../local/workspace";
import { isBranchStack, stackNameForBranch } from "../naming";

export interface DevIo {
    out(line: string): void;
    err(line: string): void;
    signal?: AbortSignal;
}

export async function devDown(root: string, branch: string, io: DevIo, opts: { keepServer?: boolean } = {}): Promise<void> {
    const stackName = stackNameForBranch(branch);
    const ctx = await localContext(root, io.err);
    const r = await destroyStack(ctx, stackName, io.err, (t) => process.stderr.write(t), 600, io.signal);
    io.out(r.destroyed ? `dataops: ${stackName} destroyed and its stack removed` : `dataops: ${stackName} has no stack here; nothing to destroy`);
    const others = (await (await workspace(ctx)).listStacks()).map((s) => s.name).filter(isBranchStack);
    if (opts.keepServer || others.length > 0) {
        io.out(`dataops: the embedded server keeps running${others.length > 0 ? ` for ${others.join(", ")}` : ""}`);
        return;
    }
    if (await stopEmbeddedServer(root)) io.out("dataops: embedded PostgreSQL stopped (its data stays in .dataops/pg, and .dataops/pg-<major> for other majors)");
}
