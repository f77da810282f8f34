// Wiring only: the program is stack.ts, shared with the CLI's in-process runs.
import { defineStack } from "./stack";

const { outputs } = defineStack();

export const environment = outputs.environment;
export const userPasswords = outputs.userPasswords;
export const adminConnection = outputs.adminConnection;
export const loaderConnections = outputs.loaderConnections;
