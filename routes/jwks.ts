// GET /.well-known/jwks.json (JWT_ALGORITHM=EdDSA only): the public keys any
// other service verifies our tokens with, without holding anything secret.
// The one cacheable response: verifiers fetch it again after max-age, and a
// matching If-None-Match costs them a 304 without the body.
import { createHash } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const base64url43 = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', minLength: 43, maxLength: 43 })

export const PublicJwk = Type.Object({
  kty: Type.Literal('OKP'),
  crv: Type.Literal('Ed25519'),
  x: { ...base64url43, description: 'The public key, base64url (RFC 8037).' },
  kid: { ...base64url43, description: 'The RFC 7638 thumbprint of the key: tokens name their key by it in the header.' },
  alg: Type.Literal('EdDSA'),
  use: Type.Literal('sig')
}, { additionalProperties: false })

const KeySet = Type.Object({
  keys: Type.Array(PublicJwk, { minItems: 1, maxItems: 100, description: 'The signing key first, then the next and the retired keys (JWT_PUBLIC_KEYS_FILE) in file order.' })
}, { additionalProperties: false })

/** Whether an If-None-Match header names this ETag (weak comparison, RFC 9110 13.1.2), or is `*`. */
export function matchesEtag (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  return ifNoneMatch.split(',').some((candidate) => {
    const tag = candidate.trim()
    return tag === '*' || tag === etag || tag === `W/${etag}`
  })
}

const jwksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const body = { keys: [...app.tokens.publicKeys] }
  // The set only changes with a restart, so its validator is computed once.
  const etag = `"${createHash('sha256').update(JSON.stringify(body)).digest('base64url')}"`
  const cacheControl = `public, max-age=${app.config.JWKS_MAX_AGE}`

  app.get('/.well-known/jwks.json', {
    schema: {
      summary: 'The public keys that sign tokens (EdDSA mode)',
      description: 'Another service verifies tokenlab\'s tokens with these keys and no secret: pick the key whose `kid` the token\'s header names. Cacheable for JWKS_MAX_AGE seconds; fetch again on a `kid` you do not hold. Only in EdDSA mode: with HS256 the key is a secret and this route does not exist (404).',
      tags: ['keys'],
      headers: Type.Object({ 'if-none-match': Type.Optional(Type.String({ maxLength: 1024, pattern: '^[\\x20-\\x7e]*$', description: 'The ETag of a key set already held: 304 when it is still current.' })) }),
      response: {
        200: { ...KeySet, description: 'The key set (RFC 7517), with Cache-Control: public, max-age and an ETag.' },
        304: Type.Null({ description: 'Not modified: the key set named by If-None-Match is current.' }),
        ...errors()
      }
    }
  }, async (request, reply) => {
    reply.header('cache-control', cacheControl).header('etag', etag)
    // No body at all (not even `null`), so no Content-Type or Content-Length either.
    if (matchesEtag(request.headers['if-none-match'], etag)) return await (reply as FastifyReply).code(304).send()
    return body
  })
}

export default jwksRoutes
