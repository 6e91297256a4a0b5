/** @coordis/cache: not built yet (see its issue). @packageDocumentation */
export {};
