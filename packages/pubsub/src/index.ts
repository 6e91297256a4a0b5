/** @coordis/pubsub: not built yet (see the package's issue). @packageDocumentation */
export {};
