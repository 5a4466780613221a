// The HTTP server's deliberate limits, seen from a client over a real socket.
import { connect } from 'node:net'
import t from 'tap'
import { testApp, testDatabase } from './helpers.js'

function rawRequest (port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(request))
    let response = ''
    socket.on('data', (d) => { response += String(d) })
    socket.on('end', () => resolve(response))
    socket.on('error', reject)
  })
}

t.test('timeouts and header limits', async (t) => {
  const app = await testApp(t, await testDatabase(t, 'pglite'))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  t.equal(app.server.requestTimeout, 30_000, 'a whole request must arrive within 30 s')
  t.equal(app.server.headersTimeout, 10_000, 'headers within 10 s')
  t.equal(app.server.keepAliveTimeout, 65_000, 'idle keep-alive outlives nginx\'s 60 s')

  const ok = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(ok.headers.get('keep-alive'), 'timeout=65', 'clients are told the keep-alive timeout')

  const big = await rawRequest(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(17 * 1024)}\r\nConnection: close\r\n\r\n`)
  t.match(big, /^HTTP\/1\.1 431 /, 'headers over 16 KiB: 431')
  const fits = await rawRequest(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(15 * 1024)}\r\nConnection: close\r\n\r\n`)
  t.match(fits, /^HTTP\/1\.1 200 /, 'headers under 16 KiB are fine')
})
