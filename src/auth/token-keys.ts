// The keys tokens are signed and verified with, read once at startup:
// HS256 shared secrets (JWT_SECRET, JWT_PREVIOUS_SECRETS) or Ed25519 key
// pairs (JWT_PRIVATE_KEY_FILE, JWT_PUBLIC_KEYS_FILE). Each key has a `kid`
// derived from the key alone, so every replica and every verifier names it
// the same way, and the exact header segment this service writes for it:
// the only headers plugins/jwt.ts lets through to the verifier.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, isMemory, list, resolveJwtSecret, type Config } from '../config.js'

export type JwtAlgorithm = Config['JWT_ALGORITHM']

/** fast-jwt takes clockTolerance in milliseconds (maxAge and expiresIn in seconds). */
export const CLOCK_TOLERANCE_MS = 5_000

/** An Ed25519 public key as the key set publishes it (RFC 8037), and nothing more: never `d`. */
export interface PublicJwk {
  kty: 'OKP'
  crv: 'Ed25519'
  x: string
  kid: string
  alg: 'EdDSA'
  use: 'sig'
}

export interface TokenKey {
  kid: string
  /** The header segment this service writes for this key, byte for byte. */
  header: string
  /** What @fastify/jwt verifies with: the HS256 secret, or the SPKI PEM of an Ed25519 public key. */
  verifyKey: string
  /** EdDSA: the key as the key set publishes it. */
  jwk?: PublicJwk
}

export interface TokenKeys {
  algorithm: JwtAlgorithm
  /** The key new tokens are signed with; `signKey` is the HS256 secret or the PKCS#8 PEM. */
  signing: TokenKey & { signKey: string }
  /** Every key a token may name, the signing key first: the next key and retired ones after it. */
  keys: TokenKey[]
  /** Set when the signing key was generated for development: where it is kept. */
  generated?: string | undefined
}

/** The header segment this service signs for a key: fast-jwt writes {alg, typ, kid} in this order. */
export function headerSegment (kid: string, algorithm: JwtAlgorithm = 'HS256'): string {
  return Buffer.from(JSON.stringify({ alg: algorithm, typ: 'JWT', kid })).toString('base64url')
}

/** An HS256 key's id: a short hash of it, so the same key has the same kid on every replica. */
export function keyId (secret: string): string {
  return 'k' + createHash('sha256').update(secret).digest('base64url').slice(0, 12)
}

/** RFC 7638: SHA-256 over the required members in lexical order, no whitespace, base64url. */
export function thumbprint (x: string): string {
  return createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":${JSON.stringify(x)}}`).digest('base64url')
}

function hsKey (secret: string): TokenKey {
  const kid = keyId(secret)
  return { kid, header: headerSegment(kid, 'HS256'), verifyKey: secret }
}

function edKey (publicKey: KeyObject): TokenKey {
  const { x } = publicKey.export({ format: 'jwk' }) as { x: string }
  const kid = thumbprint(x)
  return {
    kid,
    header: headerSegment(kid, 'EdDSA'),
    verifyKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' }
  }
}

const pemBlock = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[A-Za-z0-9+/=\r\n]+-----END \1-----/g

/** The PEM blocks of a file with their labels; anything else in it but whitespace is an error. */
function pemBlocks (variable: string, text: string): Array<{ label: string, pem: string }> {
  const blocks = [...text.matchAll(pemBlock)].map((m) => ({ label: m[1]!, pem: m[0] }))
  if (text.replace(pemBlock, '').trim() !== '') throw new ConfigError(`${variable}: not a PEM file (text outside -----BEGIN/END----- blocks)`)
  return blocks
}

async function readKeyFile (variable: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

/** The one PKCS#8 Ed25519 private key in a PEM file. */
export function parsePrivateKey (variable: string, text: string): KeyObject {
  const blocks = pemBlocks(variable, text)
  if (blocks.length !== 1) throw new ConfigError(`${variable}: must hold exactly one PEM private key, found ${blocks.length} PEM blocks`)
  const { label, pem } = blocks[0]!
  if (label === 'PUBLIC KEY') throw new ConfigError(`${variable}: holds a public key; the signing key must be the private key (openssl genpkey -algorithm ed25519)`)
  if (label !== 'PRIVATE KEY') throw new ConfigError(`${variable}: a "${label}" block; expected an unencrypted PKCS#8 "PRIVATE KEY" (openssl genpkey -algorithm ed25519)`)
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    throw new ConfigError(`${variable}: the PEM private key cannot be read`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(`${variable}: not an Ed25519 key (${key.asymmetricKeyType ?? 'unknown type'})`)
  return key
}

/** Zero or more SPKI Ed25519 public keys in a PEM file; a private key there is refused (it would be published). */
export function parsePublicKeys (variable: string, text: string): KeyObject[] {
  return pemBlocks(variable, text).map(({ label, pem }, i) => {
    if (label !== 'PUBLIC KEY') throw new ConfigError(`${variable}: block ${i + 1} is a "${label}"; list only public keys ("PUBLIC KEY", SPKI)`)
    let key: KeyObject
    try {
      key = createPublicKey(pem)
    } catch {
      throw new ConfigError(`${variable}: public key ${i + 1} cannot be read`)
    }
    if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(`${variable}: public key ${i + 1} is not an Ed25519 key (${key.asymmetricKeyType ?? 'unknown type'})`)
    return key
  })
}

/** In development only: a key pair generated once and kept in DATA_DIR (mode 0600), as the HS256 secret is. */
async function developmentPrivateKey (config: Config): Promise<{ key: KeyObject, where: string }> {
  const fresh = () => generateKeyPairSync('ed25519').privateKey
  if (isMemory(config.DATA_DIR)) return { key: fresh(), where: 'memory (a new key at every start)' }
  const file = join(config.DATA_DIR, 'jwt-ed25519.pem')
  try {
    return { key: parsePrivateKey(file, await readFile(file, 'utf8')), where: file }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const key = fresh()
  await mkdir(config.DATA_DIR, { recursive: true })
  await writeFile(file, key.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'w' })
  await chmod(file, 0o600)
  return { key, where: file }
}

/** The configured keys; every problem is a ConfigError naming the variable (exit 78). */
export async function loadTokenKeys (config: Config): Promise<TokenKeys> {
  if (config.JWT_ALGORITHM === 'HS256') {
    const { secret, generated } = await resolveJwtSecret(config)
    const signing = { ...hsKey(secret), signKey: secret }
    const keys = [signing]
    for (const previous of list(config.JWT_PREVIOUS_SECRETS)) {
      const key = hsKey(previous)
      if (!keys.some((k) => k.kid === key.kid)) keys.push({ ...key, signKey: previous })
    }
    return { algorithm: 'HS256', signing, keys, generated: generated ? (isMemory(config.DATA_DIR) ? 'memory' : join(config.DATA_DIR, 'jwt-secret')) : undefined }
  }

  const { key: privateKey, where } = config.JWT_PRIVATE_KEY_FILE !== undefined
    ? { key: parsePrivateKey('JWT_PRIVATE_KEY_FILE', await readKeyFile('JWT_PRIVATE_KEY_FILE', config.JWT_PRIVATE_KEY_FILE)), where: undefined }
    : await developmentPrivateKey(config)
  const signing = { ...edKey(createPublicKey(privateKey)), signKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
  const keys: TokenKey[] = [signing]
  if (config.JWT_PUBLIC_KEYS_FILE !== undefined) {
    for (const publicKey of parsePublicKeys('JWT_PUBLIC_KEYS_FILE', await readKeyFile('JWT_PUBLIC_KEYS_FILE', config.JWT_PUBLIC_KEYS_FILE))) {
      const key = edKey(publicKey)
      // The signing key's public half listed again is published once.
      if (!keys.some((k) => k.kid === key.kid)) keys.push(key)
    }
  }
  return { algorithm: 'EdDSA', signing, keys, generated: where }
}
