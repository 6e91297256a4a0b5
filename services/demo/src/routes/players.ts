import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { API_SECURITY } from "../openapi.js";
import { problem } from "../problem.js";
import type { Profile } from "../profiles.js";
import { ApiKeyHeaders, PlayerParams, ProfileBody } from "../schemas.js";
import type { Demo } from "../services.js";

/**
 * Player profiles (public API, rate limited), read through the two-tier cache: `loadedBy`/`loadedAt` show which
 * replica built the copy; `stats` is what the player-stats job stored last (each job drops the cached copy). A rename
 * drops the cached copy on every replica, renames the player on the leaderboards and announces it on the event
 * stream. (Deleting a player is an admin route.)
 */
export const playerRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { board, profiles, stats, replica, limits } = demo;

  const loadProfile = async (id: string): Promise<Profile | null> => {
    const stored = await profiles.read(id);
    if (stored === null) return null;
    const [all, daily, computed] = await Promise.all([
      board.rank(id, { period: "all" }),
      board.rank(id, { period: "daily" }),
      stats.read(id),
    ]);
    return {
      ...stored,
      best: all?.score ?? null,
      stats: computed,
      ranks: { all: all?.rank ?? null, daily: daily?.rank ?? null },
      loadedBy: replica,
      loadedAt: Date.now(),
    };
  };

  app.get(
    "/v1/players/:id",
    {
      config: limits.api,
      schema: {
        tags: ["players"],
        summary: "A player's profile (two-tier cache; loadedBy/loadedAt show the copy)",
        params: PlayerParams,
        headers: ApiKeyHeaders,
        security: API_SECURITY,
      },
    },
    async (req, reply) => {
      const profile = await profiles.get(req.params.id, () => loadProfile(req.params.id));
      if (profile === null) return problem(reply, 404, "Not Found", `No player ${req.params.id}`);
      return profile;
    },
  );

  app.put(
    "/v1/players/:id",
    {
      config: limits.api,
      schema: {
        tags: ["players"],
        summary: "Rename a player",
        params: PlayerParams,
        body: ProfileBody,
        headers: ApiKeyHeaders,
        security: API_SECURITY,
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const ok = await profiles.rename(id, req.body.name);
      if (!ok) return problem(reply, 404, "Not Found", `No player ${id}`);
      // The boards show the new name at once, every period's (metadata is stored once per player), and end with
      // the profile's name when another request renamed the player meanwhile.
      await board.setMeta(id, { name: req.body.name });
      await profiles.settleName(id, req.body.name, (n) => board.setMeta(id, { name: n }));
      await profiles.invalidate(id);
      await demo.publish({ type: "player", replica, playerId: id, action: "updated" });
      // A delete (admin) that came after the rename leaves nothing to show.
      const profile = await loadProfile(id);
      if (profile === null) return problem(reply, 404, "Not Found", `No player ${id}`);
      return profile;
    },
  );
};
