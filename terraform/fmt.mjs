// Formatting check of every .tf file with hclwrite's Format — the function behind
// `terraform fmt` — through @cdktf/hcl-tools (a WebAssembly build, from npm, so no
// Terraform binary is needed). `node fmt.mjs FILE…` prints the files that differ and
// exits 1; `--write` rewrites them.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(process.env.HCL_TOOLS + "/");
const { format } = require("@cdktf/hcl-tools");

const write = process.argv.includes("--write");
let bad = 0;
for (const f of process.argv.slice(2).filter((a) => a !== "--write")) {
  const src = readFileSync(f, "utf8");
  const out = await format(src);
  if (out !== src) {
    bad++;
    if (write) {
      writeFileSync(f, out);
      console.log(`formatted ${f}`);
    } else {
      console.log(`${f}: not formatted as terraform fmt would (node terraform/fmt.mjs --write ${f})`);
    }
  }
}
process.exit(bad && !write ? 1 : 0);
