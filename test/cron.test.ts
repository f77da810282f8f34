import { describe, it, expect } from "vitest";
import fc from "fast-check";
import { toEventBridgeCron } from "../components/cron";
import { isCron } from "../config/rules";

describe("toEventBridgeCron", () => {
    it.each([
        // five-field cron, EventBridge six-field cron
        ["0 */6 * * *", "0 */6 * * ? *"],
        ["*/30 * * * *", "*/30 * * * ? *"],
        ["15 * * * *", "15 * * * ? *"],
        ["0 9 1 * *", "0 9 1 * ? *"],
        ["0 9 * * 1-5", "0 9 ? * 2,3,4,5,6 *"],
        ["0 9 * * 1,3,5", "0 9 ? * 2,4,6 *"],
        ["0 9 * * 0", "0 9 ? * 1 *"],
        ["0 9 * * 7", "0 9 ? * 1 *"],
        ["0 9 * * 6", "0 9 ? * 7 *"],
        ["0 9 * * 5-7", "0 9 ? * 1,6,7 *"],
        ["0 0 * * 0-6", "0 0 ? * * *"],
        ["0 0 * * 0-7", "0 0 ? * * *"],
        ["0 9 * * 1-7/2", "0 9 ? * 1,2,4,6 *"],
        ["0 9 * * */2", "0 9 ? * 1,3,5,7 *"],
        ["  0  9 * * 1-5 ", "0 9 ? * 2,3,4,5,6 *"],
    ])("GIVEN %s THEN %s", (cron, eventBridge) => {
        expect(toEventBridgeCron(cron)).toBe(eventBridge);
    });

    it("refuses to restrict both day of month and day of week", () => {
        // GIVEN cron's OR of the 1st and Mondays, which EventBridge cannot express
        // WHEN translated  THEN it throws with the expression
        expect(() => toEventBridgeCron("0 0 1 * 1")).toThrow(
            `cron "0 0 1 * 1": restricting both day of month and day of week cannot be scheduled on EventBridge`,
        );
    });

    // Regression: stepped ranges ending at 7 once gained Sunday (2-7/2 became 3-7/2,1).
    it("keeps a stepped range ending at 7 to the days the step lands on", () => {
        expect(toEventBridgeCron("0 9 * * 2-7/2")).toBe("0 9 ? * 3,5,7 *");
    });

    it("schedules the same weekdays as cron for any day-of-week field", () => {
        fc.assert(
            fc.property(dayOfWeekField, (field) => {
                const cron = `0 9 * * ${field}`;
                expect(isCron(cron)).toBe(true);
                const eventBridge = toEventBridgeCron(cron).split(" ")[4];
                expect([cron, weekdays(eventBridge, eventBridgeDays)]).toEqual([cron, weekdays(field, cronDays)]);
            }),
            { numRuns: 1000 },
        );
    });
});

describe("isCron", () => {
    it.each([
        "0 */6 * * *",
        "*/30 * * * *",
        "15 * * * *",
        "0 9 * * 1-5",
        "0 0 1 * *",
        "0,30 8-18 * * 1-5",
        "0 0 * * 0",
        "0 0 * * 7",
        "59 23 31 12 *",
        "0 0 1-15/2 * *",
    ])("accepts %s", (cron) => {
        expect(isCron(cron)).toBe(true);
    });

    it.each([
        ["61 * * * *", "minute over 59"],
        ["0 24 * * *", "hour over 23"],
        ["0 0 0 * *", "day of month 0"],
        ["0 0 32 * *", "day of month over 31"],
        ["0 0 * 13 *", "month 13"],
        ["0 0 * * 8", "day of week over 7"],
        ["0 0 1 * 1", "both day of month and day of week"],
        ["0 0 1 * 1-5", "both day of month and a weekday range"],
        ["5-1 * * * *", "a backwards range"],
        ["*/0 * * * *", "a step of 0"],
        ["@daily", "a macro"],
        ["0 0 * * MON", "a day name"],
        ["0 0 * JAN *", "a month name"],
        ["* * * *", "four fields"],
        ["0 0 * * * *", "six fields"],
        ["", "nothing"],
        ["0 0 ? * 1", "EventBridge's ?"],
        ["0 0 L * *", "EventBridge's L"],
    ])("refuses %s (%s)", (cron) => {
        expect(isCron(cron)).toBe(false);
    });
});

// Day-of-week fields as cron writes them: lists of *, */S, N, N-M and N-M/S over 0-7.
const day = fc.integer({ min: 0, max: 7 });
const step = fc.integer({ min: 1, max: 7 });
const range = fc.tuple(day, day).map(([a, b]) => (a <= b ? [a, b] : [b, a]));
const part = fc.oneof(
    fc.constant("*"),
    step.map((s) => `*/${s}`),
    day.map(String),
    range.map(([a, b]) => `${a}-${b}`),
    fc.tuple(range, step).map(([[a, b], s]) => `${a}-${b}/${s}`),
);
// A lone * leaves the day of week unrestricted (EventBridge's ?), so it is not a case here.
const dayOfWeekField = fc
    .array(part, { minLength: 1, maxLength: 3 })
    .map((parts) => parts.join(","))
    .filter((f) => f !== "*");

const NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/** Expands one part of a day-of-week field to day numbers, given the field's full range. */
function expand(part: string, first: number, last: number): number[] {
    const [r, s] = part.split("/");
    const stepBy = s === undefined ? 1 : Number(s);
    const [lo, hi] = r === "*" ? [first, last] : r.includes("-") ? r.split("-").map(Number) : s === undefined ? [Number(r), Number(r)] : [Number(r), last];
    const out: number[] = [];
    for (let d = lo; d <= hi; d += stepBy) out.push(d);
    return out;
}

// cron: 0-7, Sunday is 0 and 7. EventBridge: 1-7, Sunday is 1.
const cronDays = (part: string) => expand(part, 0, 7).map((d) => NAMES[d % 7]);
const eventBridgeDays = (part: string) => expand(part, 1, 7).map((d) => NAMES[d - 1]);

function weekdays(field: string, days: (part: string) => string[]): string[] {
    const set = new Set(field.split(",").flatMap(days));
    return NAMES.filter((n) => set.has(n));
}
