#!/usr/bin/env node
// Runs the Changesets CLI. Its bin calls module.enableCompileCache(), which Node 20 lacks (the CLI itself runs on
// Node 20.19+); this entry skips that optimisation. Use as `npm run changeset -- <command>`.
await import("@changesets/cli");
