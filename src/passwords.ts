// argon2id with OWASP's minimum parameters (19 MiB, t=2, p=1). @node-rs/argon2
// runs hash and verify on libuv's thread pool, off the event loop.
import { hash, verify, type Options } from '@node-rs/argon2'

// Algorithm is an ambient const enum (not importable as a value here): 2 is Argon2id.
const ARGON2ID = 2 as NonNullable<Options['algorithm']>

export const argon2Options: Options = {
  algorithm: ARGON2ID,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1
}

export function hashPassword (password: string): Promise<string> {
  return hash(password, argon2Options)
}

export async function verifyPassword (passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password)
  } catch {
    return false // a malformed stored hash never authenticates
  }
}

/**
 * A hash of a password nobody knows, with the same parameters, so a login for
 * an unknown username costs the same argon2 work as a wrong password.
 */
let dummyHash: Promise<string> | undefined
export function dummyPasswordHash (): Promise<string> {
  dummyHash ??= hashPassword(`unknown-user-${Math.random()}`)
  return dummyHash
}

/** Usernames compare case-insensitively after NFC normalisation. */
export function normaliseUsername (username: string): string {
  return username.normalize('NFC').toLowerCase()
}
