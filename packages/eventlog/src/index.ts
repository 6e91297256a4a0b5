/** @coordis/eventlog: not built yet (see the package's issue). @packageDocumentation */
export {};
