// Run by test/harness.test.ts as a test file of its own (not matched by
// .taprc's include): one Postgres test, as every database test file starts.
// With a DATABASE_URL whose role may not create databases, this process must
// end by itself with the harness's message, not stay alive until a timeout.
import t from 'tap'
import { testDatabase } from '../helpers.js'

t.test('a test on the Postgres server', async (t) => {
  await testDatabase(t, 'postgres')
  t.pass('the throwaway database was created')
})
