// Prints the expanded source of one generated script (after `npm run build`):
//   node test/bench/callgrind/script-source.mjs <package> <script>     e.g. ratelimit consume
const [, , pkg, name] = process.argv;
const here = new URL("../../../", import.meta.url);
const mod = await import(new URL(`packages/${pkg}/dist/scripts.generated.js`, here).href);
const scripts = Object.values(mod).find((v) => typeof v === "object" && v !== null && name in v);
if (scripts === undefined) throw new Error(`no script ${name} in packages/${pkg}`);
process.stdout.write(scripts[name].source);
