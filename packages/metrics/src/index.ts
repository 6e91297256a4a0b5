/** @coordis/metrics: not built yet (see its issue). @packageDocumentation */
export {};
