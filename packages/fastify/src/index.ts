/** @coordis/fastify: not built yet (see its issue). @packageDocumentation */
export {};
