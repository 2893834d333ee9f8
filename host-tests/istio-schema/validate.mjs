// Checks WasmPlugin manifests against Istio's published schema, with no cluster and no file from
// outside the repository.
//
// Why this exists: the full check (Istio's CRD with its CEL rules, proven on Istio's own examples)
// needs a copy of the CRD that a user's clone does not have. @kubernetes-models/istio is a
// maintained npm package generated from Istio's CRDs; it carries the WasmPlugin schema in two forms,
// and both are used:
//   - its compiled JSON-schema validator (types, enums, lengths, ranges, required fields);
//   - its TypeScript declarations, type-checked with excess-property checks, because the schema
//     itself allows unknown fields (the API server prunes them; `kubectl --validate=strict`
//     rejects them, and so does this).
//
// Input (stdin): a JSON array of {"name": string, "manifest": object}.
// Output (stdout): a JSON array of {"name": string, "errors": [string]}, in the same order.
// Exit status: 0 when every manifest is valid, 1 when any is not, 2 when the input is unusable.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import ts from "typescript";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";

const here = path.dirname(fileURLToPath(import.meta.url));

function readInput() {
  let items;
  try {
    items = JSON.parse(readFileSync(0, "utf8"));
  } catch (e) {
    throw new Error(`stdin is not JSON: ${e.message}`);
  }
  if (!Array.isArray(items) || items.some((i) => typeof i?.name !== "string" || !("manifest" in i))) {
    throw new Error('stdin must be a JSON array of {"name": string, "manifest": object}');
  }
  return items;
}

// "data/spec/match/0/ports" -> "spec.match[0].ports"
function dottedPath(instancePath) {
  return instancePath
    .split("/")
    .filter((p) => p !== "")
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join("");
}

// The package's compiled validator. Its errors carry the instance path and an English message.
function schemaErrors(manifest) {
  try {
    // The model fills in apiVersion/kind when they are absent; a manifest must state them itself.
    const model = new WasmPlugin(manifest);
    model.validate();
    return [];
  } catch (e) {
    if (!Array.isArray(e.errors)) return [`schema: ${e.message}`];
    return e.errors.map((err) => {
      const where = dottedPath(err.instancePath) || "(root)";
      const allowed = err.params?.allowedValues ? ` ${JSON.stringify(err.params.allowedValues)}` : "";
      return `schema: ${where}: ${err.message}${allowed}`;
    });
  }
}

// The JSON path of the property or element a diagnostic points at, e.g. spec.match[0].prts.
function pathAt(sourceFile, position) {
  let node = sourceFile;
  for (;;) {
    const child = node.getChildren(sourceFile).find((c) => c.getStart(sourceFile) <= position && position < c.getEnd());
    if (!child) break;
    node = child;
  }
  const parts = [];
  for (let n = node; n && !ts.isVariableDeclaration(n); n = n.parent) {
    if (ts.isPropertyAssignment(n)) {
      parts.unshift(n.name.text ?? n.name.getText(sourceFile));
    } else if (n.parent && ts.isArrayLiteralExpression(n.parent)) {
      parts.unshift(n.parent.elements.indexOf(n));
    }
  }
  return parts.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("") || "(root)";
}

// One TypeScript program for all manifests: `const m<i>: IWasmPlugin = <manifest>;` each, so an
// unknown or misspelt field anywhere is an excess-property error at its position.
function typeErrors(items) {
  const file = path.join(here, "__manifests.ts");
  const starts = [];
  let source = 'import type { IWasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";\n';
  items.forEach((item, i) => {
    starts.push(source.length);
    source += `export const m${i}: IWasmPlugin = ${JSON.stringify(item.manifest, null, 1)};\n`;
  });
  const options = {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    types: [],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const readFromDisk = host.getSourceFile;
  const sourceFile = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true);
  host.getSourceFile = (name, ...rest) => (name === file ? sourceFile : readFromDisk(name, ...rest));
  const program = ts.createProgram([file], options, host);
  const errors = items.map(() => []);
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    // 2307: cannot find module. Then IWasmPlugin would be `any` and every manifest would pass.
    if (diagnostic.file !== sourceFile || diagnostic.start === undefined || diagnostic.code === 2307) {
      // The declarations themselves failed to load: every manifest is unchecked.
      throw new Error(`type check could not run: ${message}`);
    }
    let index = starts.length - 1;
    while (index > 0 && starts[index] > diagnostic.start) index--;
    // Keep the first sentence: the rest spells out the whole expected type.
    const short = message.replace(/ in type '[\s\S]*$/, "").replace(/'"([^"']*)"'/g, "'$1'");
    errors[index].push(`type: ${pathAt(sourceFile, diagnostic.start)}: ${short}`);
  }
  return errors;
}

function main() {
  let items;
  try {
    items = readInput();
  } catch (e) {
    process.stderr.write(`validate.mjs: ${e.message}\n`);
    return 2;
  }
  let typed;
  try {
    typed = typeErrors(items);
  } catch (e) {
    process.stderr.write(`validate.mjs: ${e.message}\n`);
    return 2;
  }
  const results = items.map((item, i) => {
    const errors = [...schemaErrors(item.manifest), ...typed[i]];
    return { name: item.name, errors };
  });
  process.stdout.write(JSON.stringify(results, null, 1) + "\n");
  return results.some((r) => r.errors.length > 0) ? 1 : 0;
}

process.exitCode = main();
