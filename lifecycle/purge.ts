// What a state backend keeps for one stack, and its removal when the stack is destroyed.
// The DIY backend writes, per stack (project-scoped layout, as the engine pinned here writes it):
//   .pulumi/stacks/<project>/<stack>.json        the checkpoint (all the stack's state, secrets encrypted)
//   .pulumi/stacks/<project>/<stack>.json.bak    the previous checkpoint
//   .pulumi/stacks/<project>/<stack>.pulumi-tags the tags
//   .pulumi/backups/<project>/<stack>/…          one whole checkpoint per update, kept for ever
//   .pulumi/history/<project>/<stack>/…          one history record and checkpoint per update
//   .pulumi/locks/organization/<project>/<stack>/… a lock per running engine
// and dataops adds its leases (.dataops/leases/<project>/<stack>/…) and, on a file backend,
// sets aside unreadable checkpoints as `<stack>.json.corrupt-<time>`. `pulumi stack rm` leaves
// the backups and the `.bak` unless asked, so a bucket grew by a whole checkpoint per push of
// every branch, for ever.
import type { StateStore } from "../local/stateStore";
import { checkpointKey, DEFAULT_LEASE_SECONDS, leaseDir, lockDir, parseLease, PROJECT } from "./locks";

function escape(s: string): string {
    return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether `key` is something the backend kept for `stack` (its own; never another stack's whose name starts alike). */
export function belongsTo(key: string, stack: string): boolean {
    const dirs = [`.pulumi/backups/${PROJECT}/${stack}/`, `.pulumi/history/${PROJECT}/${stack}/`, lockDir(stack), leaseDir(stack)];
    if (dirs.some((d) => key.startsWith(d))) return true;
    return new RegExp(`^\\.pulumi/stacks/${escape(PROJECT)}/${escape(stack)}\\.(json|pulumi-tags)(\\..*)?$`).test(key);
}

/** Every object the backend holds for the stack. */
export async function stackObjects(store: StateStore, stack: string): Promise<string[]> {
    const prefixes = [`.pulumi/stacks/${PROJECT}/${stack}.`, `.pulumi/backups/${PROJECT}/${stack}/`, `.pulumi/history/${PROJECT}/${stack}/`, lockDir(stack), leaseDir(stack)];
    const lists = await Promise.all(prefixes.map((p) => store.list(p)));
    return lists.flat().map((o) => o.key).filter((k) => belongsTo(k, stack));
}

/**
 * After `pulumi stack rm` of a destroyed stack: remove what is left of it (leases of dead runs,
 * set-aside checkpoints, and unless `keepHistory` its backups). Neither a lock nor the live
 * checkpoint or tags are removed here: `stack rm` held the stack's only lock and removed those,
 * so any there now belong to a run that started after it (a new push of the same branch). Nor a
 * lease renewed within its period (max of `periodSeconds` and the one it states): such a run is
 * alive, and its lease is what lets a waiter tell its lock from a dead run's.
 */
export async function purgeStack(store: StateStore, stack: string, keepHistory: boolean, periodSeconds = DEFAULT_LEASE_SECONDS, now: () => number = Date.now): Promise<string[]> {
    const live = new RegExp(`^\\.pulumi/stacks/${escape(PROJECT)}/${escape(stack)}\\.(json(\\.gz|\\.zst)?|pulumi-tags)$`);
    const kept = (k: string) => k.startsWith(lockDir(stack)) || live.test(k) || (keepHistory && (k.startsWith(`.pulumi/backups/${PROJECT}/${stack}/`) || k === `${checkpointKey(stack)}.bak`));
    const left = new Set((await stackObjects(store, stack)).filter((k) => !kept(k)));
    // A lease's last renewal, by its object's modification time (the backend's clock, near enough this one's for a period).
    for (const o of await store.list(leaseDir(stack))) {
        if (!left.has(o.key)) continue;
        const stated = parseLease(await store.read(o.key).catch(() => undefined))?.period;
        const period = Math.max(periodSeconds, typeof stated === "number" && Number.isFinite(stated) ? stated : 0) * 1000;
        if (now() - o.modified.getTime() < period) left.delete(o.key);
    }
    if (left.size > 0) await store.remove([...left]);
    return [...left];
}
