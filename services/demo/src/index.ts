/** @coordis/demo: not built yet (see its issue). @packageDocumentation */
export {};
