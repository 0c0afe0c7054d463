// Run as `node --import tsx test/support/loaded-modules.mjs MODULE...`: imports each module (a path
// relative to the working directory, or a package name) and prints, as one JSON line, every URL
// the module loader resolved on the way (module.registerHooks sees each resolution in this thread,
// tsx's included).
import { registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';

const resolved = new Set();
registerHooks({
  resolve(specifier, context, next) {
    const result = next(specifier, context);
    resolved.add(result.url);
    return result;
  },
});
for (const target of process.argv.slice(2)) {
  await import(target.startsWith('.') || target.startsWith('/') ? pathToFileURL(target).href : target);
}
process.stdout.write(`${JSON.stringify([...resolved])}\n`);
