// Standard five-field cron (validated by the config schema) to EventBridge's six-field
// form: one of day-of-month and day-of-week must be "?", a year field is added, and
// days of the week count 1-7 from Sunday instead of 0-6 (or 7). The day-of-week field
// is expanded to the exact set of days and written as a list, so ranges, steps and
// Sunday-as-7 need no special cases.
export function toEventBridgeCron(expr: string): string {
    const [minute, hour, dom, month, dow] = expr.trim().split(/\s+/);
    if (dow === "*") return `${minute} ${hour} ${dom} ${month} ? *`;
    if (dom !== "*") throw new Error(`cron "${expr}": restricting both day of month and day of week cannot be scheduled on EventBridge`);
    const days = weekdays(dow);
    const field = days.length === 7 ? "*" : days.map((d) => d + 1).join(",");
    return `${minute} ${hour} ? ${month} ${field} *`;
}

/** The days (0 = Sunday … 6) a cron day-of-week field selects. */
export function weekdays(field: string): number[] {
    const days = new Set<number>();
    for (const part of field.split(",")) {
        const [range, stepText] = part.split("/");
        const step = stepText === undefined ? 1 : Number(stepText);
        const [lo, hi] = range === "*" ? [0, 7] : range.includes("-") ? range.split("-").map(Number) : [Number(range), stepText === undefined ? Number(range) : 7];
        for (let d = lo; d <= hi; d += step) days.add(d % 7);
    }
    return [...days].sort((a, b) => a - b);
}
