import { Type } from "@fastify/type-provider-typebox";
import { API_KEY_ID_PATTERN, API_KEY_PATTERN } from "./apikeys.js";
import { IDEMPOTENCY_KEY_PATTERN } from "./idempotency.js";

/**
 * A player id: 1–64 characters of letters, digits, `_`, `.`, `-`, other than `.` and `..` (path segments that URL
 * clients remove: a player of such an id could never be read or deleted again).
 */
export const PlayerId = Type.String({
  pattern: "^(?!\\.{1,2}$)[A-Za-z0-9_.-]{1,64}$",
  description: "player id (not `.` or `..`)",
});

/**
 * A display name: 1–40 characters (code points), none of them a control character (C0, DEL, C1) or an unpaired
 * surrogate (JSON can carry a lone surrogate, but it is no Unicode text, and Redis would store U+FFFD instead), and at
 * least one of them visible: not only spaces and format characters (zero-width space, joiners, BOM), a blank row.
 */
export const PlayerName = Type.String({
  minLength: 1,
  maxLength: 40,
  pattern: "^(?=[\\s\\S]*[^\\s\\p{Cf}])[^\\u0000-\\u001f\\u007f-\\u009f\\ud800-\\udfff]+$",
  description: "display name: 1–40 characters, no control characters, not blank",
});

/** The leaderboards: today's and all-time. */
export const Board = Type.Union([Type.Literal("daily"), Type.Literal("all")], { description: "leaderboard" });

/** Body of `POST /v1/scores`. */
export const ScoreBody = Type.Object(
  {
    playerId: PlayerId,
    score: Type.Integer({ minimum: 0, maximum: 1_000_000_000 }),
    name: Type.Optional(PlayerName),
  },
  { additionalProperties: false },
);

/** Body of `PUT /v1/players/:id`. */
export const ProfileBody = Type.Object({ name: PlayerName }, { additionalProperties: false });

/** `:board` route parameter. */
export const BoardParams = Type.Object({ board: Board });

/** `:board` and `:id` route parameters. */
export const BoardPlayerParams = Type.Object({ board: Board, id: PlayerId });

/** `:id` route parameter. */
export const PlayerParams = Type.Object({ id: PlayerId });

/** `?n=` of the top-N query. */
export const TopQuery = Type.Object({ n: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })) });

/** `?radius=` of the neighbours query. */
export const AroundQuery = Type.Object({
  radius: Type.Optional(Type.Integer({ minimum: 0, maximum: 25, default: 2 })),
});

/** `?cursor=&limit=` of the audit log (newest first). */
export const AuditQuery = Type.Object({
  cursor: Type.Optional(
    Type.String({ pattern: "^[0-9]{1,20}-[0-9]{1,20}$", description: "`next` of the previous page" }),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
});

/** `:key` of the rate-limit endpoints: an API key's id (the part before the dot; not a secret). */
export const KeyParams = Type.Object({ key: Type.String({ pattern: API_KEY_ID_PATTERN, description: "API key id" }) });

/**
 * `x-api-key` header: a key this service issued (`<id>.<signature>`). Optional: without it the client's address is
 * the budget. A malformed key is a 400 and a key that does not verify a 401, both before any budget is spent.
 */
export const ApiKeyHeaders = Type.Object({
  "x-api-key": Type.Optional(Type.String({ pattern: API_KEY_PATTERN, description: "an issued API key" })),
});

/**
 * Headers of `POST /v1/scores`: the API key, and an optional `Idempotency-Key` (1–255 printable ASCII characters,
 * spaces only inside; anything else is a 400).
 */
export const ScoreHeaders = Type.Object({
  "x-api-key": ApiKeyHeaders.properties["x-api-key"],
  "idempotency-key": Type.Optional(
    Type.String({
      pattern: IDEMPOTENCY_KEY_PATTERN,
      description:
        "1–255 printable ASCII characters (spaces only inside), unique per submission, e.g. a UUID. A retry with the same key and body within 24 h gets the first answer again (`Idempotency-Replayed: true`) and counts once; the key with another body is a 422; a retry while the first request runs is a 409 (`Retry-After`). Keys are scoped per API key (without one, per client address).",
    }),
  ),
});

/** `:id` of a job of the stats queue. */
export const JobParams = Type.Object({
  id: Type.String({ pattern: "^[A-Za-z0-9_.:-]{1,200}$", description: "job id (`statsJob` of a score submission)" }),
});

/** Body of `POST /v1/admin/keys`. */
export const IssueKeysBody = Type.Object(
  { count: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 1 })) },
  { additionalProperties: false },
);

/** RFC 9457 problem details, the body of every error. */
export const Problem = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
});
