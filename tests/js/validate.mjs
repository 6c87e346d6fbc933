// Validate documents against kvschema's published JSON Schemas with ajv (draft 2020-12).
// Usage: node validate.mjs SCHEMA_DIR < cases.json
//   cases.json: [{"id": "...", "schema": "cache-groups-config", "document": {...}}, ...]
// Prints one JSON object: {"<id>": {"valid": true|false, "errors": [...]}, ...}
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";

const schemaDir = process.argv[2];
// Strict mode, less strictRequired: a `required` inside oneOf names a property defined one level up.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
const validators = {};
for (const file of readdirSync(schemaDir)) {
  if (!file.endsWith(".schema.json")) continue;
  const name = file.slice(0, -".schema.json".length);
  validators[name] = ajv.compile(JSON.parse(readFileSync(join(schemaDir, file), "utf8")));
}
const cases = JSON.parse(readFileSync(0, "utf8"));
const verdicts = {};
for (const { id, schema, document } of cases) {
  const validate = validators[schema];
  if (!validate) throw new Error(`no schema named ${schema}`);
  const valid = validate(document);
  verdicts[id] = { valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
}
process.stdout.write(JSON.stringify(verdicts));
