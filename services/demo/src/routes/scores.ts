import { addressKey } from "@coordis/fastify";
import type { SubmitResult } from "@coordis/leaderboard";
import type { FastifyPluginAsyncTypebox, Static } from "@fastify/type-provider-typebox";
import { type Answer, checkIdempotencyKey, Idempotency } from "../idempotency.js";
import { toEntry } from "../model.js";
import { API_SECURITY } from "../openapi.js";
import { problem } from "../problem.js";
import {
  ApiKeyHeaders,
  AroundQuery,
  BoardParams,
  BoardPlayerParams,
  ScoreBody,
  ScoreHeaders,
  TopQuery,
} from "../schemas.js";
import type { Demo } from "../services.js";
import { statsJobId } from "../stats.js";

/**
 * Most times one submission is counted: each further try needs a delete of the player racing the one before, so the
 * bound only stops a storm of them. A submission that gave up early (4 tries) could leave its score on the boards of a
 * player a racing delete had just removed.
 */
const RECORD_ROUNDS = 32;

/**
 * Scores and leaderboards (public API, rate limited): submitting a score updates the daily and all-time boards in
 * one script (with the player's name when the submission set it on the profile), adds a job to the stats queue that
 * recomputes the player's stats (its id derived from the submission, so adding it again creates nothing), and a new
 * top-10 entry is published to every replica's event stream. With an `Idempotency-Key` a retry gets the first answer
 * again and counts once (idempotency.ts).
 */
export const scoreRoutes: FastifyPluginAsyncTypebox<{ demo: Demo }> = async (app, { demo }) => {
  const { board, profiles, replica, limits, queue } = demo;

  const idempotency = new Idempotency(app.coordis.redis, demo.config.prefix);

  /** Records a submission: counted on the profile, on both boards, its stats job added, a new top-10 published. */
  const submit = async ({ playerId, score, name }: Static<typeof ScoreBody>): Promise<Answer> => {
    let profile = await profiles.recordSubmission(playerId, name, score);
    let result: SubmitResult;
    let shown: string;
    for (let round = 1; ; round++) {
      // Only a request that set the profile's name stores it on the boards, then makes them agree with the profile
      // (a concurrent request may have renamed the player since); one without a name keeps what the boards show.
      result = await board.submit(playerId, score, profile.named ? { meta: { name: profile.name } } : {});
      shown = profile.named
        ? await profiles.settleName(playerId, profile.name, (n) => board.setMeta(playerId, { name: n }))
        : profile.name;
      // A delete (admin) since the submission was counted took the count with it, and its board removal may have
      // come before the score above: the submission then comes after the delete, counted and submitted again.
      if (round === RECORD_ROUNDS || (await profiles.unchanged(playerId, profile.createdAt))) break;
      profile = await profiles.recordSubmission(playerId, name, score);
    }
    const job = await queue.add({ playerId }, { id: statsJobId(playerId, profile.createdAt, profile.submission) });
    const ranks = { daily: result.periods.daily?.rank ?? 0, all: result.periods.all?.rank ?? 0 };
    const updated = result.periods.daily?.updated === true || result.periods.all?.updated === true;
    if (updated && (ranks.daily <= 10 || ranks.all <= 10)) {
      const [daily, all] = await Promise.all([board.top(10, { period: "daily" }), board.top(10, { period: "all" })]);
      await demo.publish({
        type: "top10",
        replica,
        playerId,
        name: shown,
        score,
        ranks,
        top: { daily: daily.map(toEntry), all: all.map(toEntry) },
      });
    }
    await profiles.invalidate(playerId);
    return {
      status: 201,
      body: {
        playerId,
        score,
        best: { daily: result.periods.daily?.score ?? score, all: result.periods.all?.score ?? score },
        ranks,
        statsJob: job.id,
        replica,
      },
    };
  };

  app.post(
    "/v1/scores",
    {
      config: limits.api,
      schema: {
        tags: ["scores"],
        summary: "Submit a score to the daily and all-time boards",
        body: ScoreBody,
        headers: ScoreHeaders,
        security: API_SECURITY,
      },
      preValidation: checkIdempotencyKey,
    },
    async (req, reply) => {
      const key = req.headers["idempotency-key"];
      if (key === undefined) {
        const answer = await submit(req.body);
        return reply.code(answer.status).send(answer.body);
      }
      // Keys are scoped by the request's budget: its verified API key (onRequest checked it), else its address.
      const header = req.headers["x-api-key"];
      const id = typeof header === "string" ? demo.keys.verify(header) : undefined;
      const scope = id === undefined ? `ip:${addressKey(req.ip)}` : `key:${id}`;
      return idempotency.handle(req, reply, scope, key, () => submit(req.body));
    },
  );

  app.get(
    "/v1/leaderboards/:board/top",
    {
      config: limits.api,
      schema: {
        tags: ["leaderboards"],
        summary: "Top N of a board",
        params: BoardParams,
        querystring: TopQuery,
        headers: ApiKeyHeaders,
        security: API_SECURITY,
      },
    },
    async (req) => ({
      board: req.params.board,
      entries: (await board.top(req.query.n ?? 10, { period: req.params.board })).map(toEntry),
      replica,
    }),
  );

  app.get(
    "/v1/leaderboards/:board/players/:id",
    {
      config: limits.api,
      schema: {
        tags: ["leaderboards"],
        summary: "A player's rank and neighbours",
        params: BoardPlayerParams,
        querystring: AroundQuery,
        headers: ApiKeyHeaders,
        security: API_SECURITY,
      },
    },
    async (req, reply) => {
      const period = req.params.board;
      const standing = await board.rank(req.params.id, { period });
      if (standing === null)
        return problem(reply, 404, "Not Found", `Player ${req.params.id} is not on the ${period} board`);
      const neighbours = await board.around(req.params.id, req.query.radius ?? 2, { period });
      return { board: period, player: toEntry(standing), count: standing.count, neighbours: neighbours.map(toEntry) };
    },
  );
};
