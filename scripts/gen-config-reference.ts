// npm run docs:config: rewrite the README's config reference from the schema.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withReference } from "../config/reference";

const file = join(__dirname, "..", "README.md");
writeFileSync(file, withReference(readFileSync(file, "utf8")));
console.log(`${file}: config reference regenerated`);
