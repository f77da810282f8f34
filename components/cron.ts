// Standard five-field cron (validated by the config schema) to EventBridge's six-field
// form: one of day-of-month and day-of-week must be "?", a year field is added, and
// days of the week count 1-7 from Sunday instead of 0-6 (or 7).
export function toEventBridgeCron(expr: string): string {
    const [minute, hour, dom, month, dow] = expr.trim().split(/\s+/);
    if (dow === "*") return `${minute} ${hour} ${dom} ${month} ? *`;
    if (dom !== "*") throw new Error(`cron "${expr}": restricting both day of month and day of week cannot be scheduled on EventBridge`);
    return `${minute} ${hour} ? ${month} ${dow.split(",").map(weekdayPart).join(",")} *`;
}

function weekdayPart(part: string): string {
    const [range, step] = part.split("/");
    const suffix = step === undefined ? "" : `/${step}`;
    if (range === "*") return `*${suffix}`;
    const [lo, hi] = range.split("-").map(Number);
    const day = (n: number) => (n % 7) + 1;
    if (hi === undefined) return `${day(lo)}${suffix}`;
    if (lo === 0 && hi >= 6) return `1-7${suffix}`;
    // Sunday as 7 ends a range at the week's end: 5-7 is FRI-SAT plus SUN.
    if (hi === 7 && lo > 0) return lo === 7 ? `1${suffix}` : `${day(lo)}-7${suffix},1`;
    return `${day(lo)}-${day(hi)}${suffix}`;
}
